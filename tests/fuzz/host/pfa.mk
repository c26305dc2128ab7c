FUZZ_TARGETS += pfa
FUZZ_SRCS_pfa := tests/fuzz/host/fuzz_pfa.c kernel/pfa.c kernel/pfa_check.c
