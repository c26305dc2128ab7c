UNIT_TESTS += mptable
UNIT_SRCS_mptable := tests/unit/test_mptable.c kernel/mptable.c
