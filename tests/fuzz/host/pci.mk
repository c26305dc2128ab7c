FUZZ_TARGETS += pci
FUZZ_SRCS_pci := tests/fuzz/host/fuzz_pci.c drivers/pci/pci_cap.c drivers/virtio/virtio_pci_cap.c
