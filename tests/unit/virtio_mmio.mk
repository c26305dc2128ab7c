UNIT_TESTS += virtio_mmio
UNIT_SRCS_virtio_mmio := tests/unit/test_virtio_mmio.c drivers/virtio/virtio_mmio_parse.c kernel/parse.c
