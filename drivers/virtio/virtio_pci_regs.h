/*
 * virtio_pci_regs: register layout of the modern virtio PCI transport
 * (virtio 1.2, 4.1.4), one set of names for every user of the device:
 * the driver (virtio_pci.c, virtio_pci_cap.c) and the device fuzzer
 * (fuzz/fz_exec.c), which writes the same registers on purpose wrongly.
 * Registers are read and written through arch/x86_64/mmio.h.
 */
#ifndef BLIMP_VIRTIO_PCI_REGS_H
#define BLIMP_VIRTIO_PCI_REGS_H

/* cfg_type of a virtio vendor capability (4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5   /* a window onto the BARs through configuration space */

/* Fields of a virtio vendor capability, from its start in configuration
 * space (struct virtio_pci_cap, 4.1.4; the notify and window additions,
 * 4.1.4.4 and 4.1.4.9). */
#define VIRTIO_PCI_CAP_LEN 2
#define VIRTIO_PCI_CAP_CFG_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_CAP_NOTIFY_MULT 16 /* notify_off_multiplier */
#define VIRTIO_PCI_CAP_PCI_CFG_DATA 16 /* the window's data */

/* Common configuration registers (4.1.4.3) */
#define VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT 0x00
#define VIRTIO_PCI_COMMON_DEVICE_FEATURE 0x04
#define VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT 0x08
#define VIRTIO_PCI_COMMON_DRIVER_FEATURE 0x0c
#define VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR 0x10
#define VIRTIO_PCI_COMMON_NUM_QUEUES 0x12
#define VIRTIO_PCI_COMMON_DEVICE_STATUS 0x14
#define VIRTIO_PCI_COMMON_CONFIG_GENERATION 0x15
#define VIRTIO_PCI_COMMON_QUEUE_SELECT 0x16
#define VIRTIO_PCI_COMMON_QUEUE_SIZE 0x18
#define VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR 0x1a
#define VIRTIO_PCI_COMMON_QUEUE_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF 0x1e
#define VIRTIO_PCI_COMMON_QUEUE_DESC 0x20    /* le64, like the two below */
#define VIRTIO_PCI_COMMON_QUEUE_DRIVER 0x28
#define VIRTIO_PCI_COMMON_QUEUE_DEVICE 0x30
#define VIRTIO_PCI_COMMON_LEN 0x38           /* the registers above end here */
#define VIRTIO_PCI_NO_VECTOR 0xffff

#endif
