FUZZ_TARGETS += swap_slots
FUZZ_SRCS_swap_slots := tests/fuzz/host/fuzz_swap_slots.c kernel/swap_slots.c
FUZZ_CFLAGS_swap_slots := -fsanitize-coverage-ignorelist=tests/fuzz/host/swap_slots.ignore
