UNIT_TESTS += replace
UNIT_SRCS_replace := tests/unit/test_replace.c kernel/replace.c
