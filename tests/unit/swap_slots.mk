UNIT_TESTS += swap_slots
UNIT_SRCS_swap_slots := tests/unit/test_swap_slots.c kernel/swap_slots.c
