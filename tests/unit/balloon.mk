UNIT_TESTS += balloon
UNIT_SRCS_balloon := tests/unit/test_balloon.c tests/unit/balloon_sim.c tests/unit/virtio_sim.c \
	drivers/virtio/balloon_core.c drivers/virtio/balloon_stats.c drivers/virtio/balloon_reporting.c \
	drivers/virtio/balloon_hint.c drivers/virtio/balloon_check.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c \
	kernel/pfa.c kernel/pfa_check.c
