UNIT_TESTS += blk
UNIT_SRCS_blk := tests/unit/test_blk.c tests/unit/virtio_sim.c drivers/virtio/blk_core.c drivers/virtio/virtqueue.c drivers/virtio/vq_packed.c
