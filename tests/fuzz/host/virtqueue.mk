FUZZ_TARGETS += virtqueue
FUZZ_SRCS_virtqueue := tests/fuzz/host/fuzz_virtqueue.c tests/unit/virtio_sim.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c
