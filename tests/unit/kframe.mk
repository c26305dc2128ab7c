UNIT_TESTS += kframe
UNIT_SRCS_kframe := tests/unit/test_kframe.c kernel/kframe.c kernel/pfa.c kernel/pfa_check.c
