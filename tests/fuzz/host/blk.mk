FUZZ_TARGETS += blk
FUZZ_SRCS_blk := tests/fuzz/host/fuzz_blk.c tests/unit/virtio_sim.c drivers/virtio/blk_core.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c
