FUZZ_TARGETS += pfa
FUZZ_SRCS_pfa := tests/fuzz/host/fuzz_pfa.c kernel/pfa.c kernel/pfa_check.c
FUZZ_CFLAGS_pfa := -fsanitize-coverage-ignorelist=tests/fuzz/host/pfa.ignore
