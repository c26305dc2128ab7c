UNIT_TESTS += pff
UNIT_SRCS_pff := tests/unit/test_pff.c kernel/pff.c
