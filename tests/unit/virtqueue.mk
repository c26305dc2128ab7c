UNIT_TESTS += virtqueue
UNIT_SRCS_virtqueue := tests/unit/test_virtqueue.c tests/unit/virtio_sim.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c
