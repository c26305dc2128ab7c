FUZZ_TARGETS += vq_packed
FUZZ_SRCS_vq_packed := tests/fuzz/host/fuzz_vq_packed.c tests/unit/virtio_sim.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c
