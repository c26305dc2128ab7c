UNIT_TESTS += clock_pick
UNIT_SRCS_clock_pick := tests/unit/test_clock_pick.c kernel/clock_pick.c
