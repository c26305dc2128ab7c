/*
 * virtio_mmio: the virtio-mmio transport (virtio 1.2, section 4.2), version
 * 2 and version 1 ("legacy", 4.2.4), as QEMU's microvm and Firecracker
 * offer it: one 512-byte register block per device, no bus to enumerate.
 *
 *   0x000 MagicValue "virt"   0x030 QueueSel        0x060 InterruptStatus
 *   0x004 Version 1|2         0x034 QueueNumMax     0x064 InterruptACK
 *   0x008 DeviceID (0: empty) 0x038 QueueNum        0x070 Status
 *   0x00c VendorID            0x03c QueueAlign  v1  0x080 QueueDesc   v2
 *   0x010 DeviceFeatures      0x040 QueuePFN    v1  0x090 QueueDriver v2
 *   0x014 DeviceFeaturesSel   0x044 QueueReady  v2  0x0a0 QueueDevice v2
 *   0x020 DriverFeatures      0x050 QueueNotify     0x0fc ConfigGeneration v2
 *   0x024 DriverFeaturesSel                         0x100 device configuration
 *   0x028 GuestPageSize v1
 *
 * Discovery: a `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` word per
 * device on the kernel command line — what QEMU's microvm adds when ACPI is
 * off (acpi=off), and what Firecracker passes — parsed by
 * virtio_mmio_parse_device (virtio_mmio_parse.c, host-compiled for the unit
 * test and the fuzzer); and the DSDT's LNRO0005 devices, which is how
 * microvm lists them when ACPI is on (kernel/acpi_devices.h). The interrupt is a level-triggered, active-high GSI
 * through the IOAPIC (microvm: GSI 5 + transport without ACPI, 24 +
 * transport with its second IOAPIC); InterruptStatus says why and
 * InterruptACK lowers it. Without an IOAPIC the device is polled.
 *
 * Every register value is checked: magic, version 1 or 2, QueueNumMax (0:
 * no queue; above 32768: refused), QueueReady / QueuePFN clear before setup
 * and taken after, configuration read under ConfigGeneration (v2) or until
 * two reads agree (v1), InterruptStatus bits beyond the two defined ignored.
 */
#ifndef BLIMP_VIRTIO_MMIO_H
#define BLIMP_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_GUEST_PAGE_SIZE 0x028   /* v1 */
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_ALIGN 0x03c       /* v1 */
#define VIRTIO_MMIO_QUEUE_PFN 0x040         /* v1 */
#define VIRTIO_MMIO_QUEUE_READY 0x044       /* v2 */
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080    /* v2, each a low/high pair */
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc /* v2 */
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976        /* "virt", little-endian */
#define VIRTIO_MMIO_LEGACY_PAGE 4096        /* the GuestPageSize blimp gives a v1 device */

/* One `virtio_mmio.device=` word: where the registers are and the GSI. */
struct virtio_mmio_desc {
	uint64_t base, size;
	uint32_t irq;
	uint32_t id;          /* the optional platform device id; 0 when absent */
};

/*
 * Parse `<size>@<base>:<irq>[:<id>]` (size with an optional K/M/G suffix,
 * numbers decimal or 0x-hex; Linux's virtio_mmio.device syntax). The block
 * must hold the registers (size >= 0x100), be 4-byte aligned, not wrap and
 * lie below 2^52 (the physical address width); irq is a GSI below 256.
 * Returns 0, or -EINVAL with *why a sentence saying what was wrong.
 */
int virtio_mmio_parse_device(const char *s, struct virtio_mmio_desc *out, const char **why);

/* The checks of virtio_mmio_parse_device on a block found another way (the
 * DSDT): 0, or -EINVAL with *why set. */
int virtio_mmio_check(const struct virtio_mmio_desc *d, const char **why);

/* Find the devices the command line and the DSDT name (a block named by
 * both is probed once), check their registers and add them to virtio_devs (an empty transport, DeviceID 0, is skipped). With
 * `poll` every device is polled. Returns the number added. */
int virtio_mmio_probe(bool poll);

#endif
