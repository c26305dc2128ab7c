UNIT_TESTS += virtio_legacy
UNIT_SRCS_virtio_legacy := tests/unit/test_virtio_legacy.c drivers/virtio/virtio_pci_legacy.c drivers/virtio/virtio_pci_irq.c
