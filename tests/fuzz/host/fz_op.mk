FUZZ_TARGETS += fz_op
FUZZ_SRCS_fz_op := tests/fuzz/host/fuzz_fz_op.c fuzz/fz_op.c
