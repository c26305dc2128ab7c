FUZZ_TARGETS += mptable
FUZZ_SRCS_mptable := tests/fuzz/host/fuzz_mptable.c kernel/mptable.c
