FUZZ_TARGETS += balloon
FUZZ_SRCS_balloon := tests/fuzz/host/fuzz_balloon.c tests/unit/balloon_sim.c tests/unit/virtio_sim.c \
	drivers/virtio/balloon_core.c drivers/virtio/balloon_report.c drivers/virtio/balloon_check.c drivers/virtio/virtqueue.c \
	kernel/pfa.c kernel/pfa_check.c
FUZZ_CFLAGS_balloon := -fsanitize-coverage-ignorelist=tests/fuzz/host/balloon.ignore
