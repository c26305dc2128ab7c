FUZZ_TARGETS += mmio
FUZZ_SRCS_mmio := tests/fuzz/host/fuzz_mmio.c drivers/virtio/virtio_mmio_parse.c kernel/parse.c
