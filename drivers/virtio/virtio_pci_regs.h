/*
 * virtio_pci_regs: register layout of the modern virtio PCI transport
 * (virtio 1.2, 4.1.4), shared by virtio_pci.c and virtio_pci_cap.c.
 */
#ifndef BLIMP_VIRTIO_PCI_REGS_H
#define BLIMP_VIRTIO_PCI_REGS_H

/* cfg_type of a virtio vendor capability (4.1.4) */
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4

/* Common configuration registers (4.1.4.3) */
#define C_DEVICE_FEATURE_SELECT 0x00
#define C_DEVICE_FEATURE 0x04
#define C_DRIVER_FEATURE_SELECT 0x08
#define C_DRIVER_FEATURE 0x0c
#define C_CONFIG_MSIX_VECTOR 0x10
#define C_NUM_QUEUES 0x12
#define C_DEVICE_STATUS 0x14
#define C_CONFIG_GENERATION 0x15
#define C_QUEUE_SELECT 0x16
#define C_QUEUE_SIZE 0x18
#define C_QUEUE_MSIX_VECTOR 0x1a
#define C_QUEUE_ENABLE 0x1c
#define C_QUEUE_NOTIFY_OFF 0x1e
#define C_QUEUE_DESC 0x20
#define C_QUEUE_DRIVER 0x28
#define C_QUEUE_DEVICE 0x30
#define NO_VECTOR 0xffff

#endif
