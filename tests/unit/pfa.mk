UNIT_TESTS += pfa
UNIT_SRCS_pfa := tests/unit/test_pfa.c kernel/pfa.c kernel/pfa_check.c
