/*
 * virtio: a virtio device, whatever carries it (virtio 1.2, sections 2-4).
 *
 * Drivers (balloon.c, blk.c, rng.c) see only this API. A transport —
 * modern PCI (virtio_pci.c, 4.1), virtio-mmio version 2 or version 1
 * "legacy" (virtio_mmio.c, 4.2) — finds its devices, fills one entry of
 * virtio_devs with its own registers and a table of operations, and
 * everything else is shared (virtio.c): the bring-up of 3.1.1 (reset,
 * ACKNOWLEDGE, DRIVER, features, FEATURES_OK read back, queues, DRIVER_OK),
 * queue memory and the split ring (virtqueue.c), interrupt bookkeeping,
 * polling, the shell's `virtio`. Only discovery, the register accesses,
 * notification and interrupt wiring differ:
 *
 *   driver ── virtio_start / _setup_queue / _ready / _notify / _config_read
 *                 │ (virtio.c: order, checks, queue memory, work)
 *                 ▼
 *   struct virtio_ops: status, features, queue_max, queue_enable, notify,
 *                      config read/write, interrupt status, irq wiring
 *          ┌──────┴───────┐
 *     virtio_pci.c    virtio_pci_legacy.c    virtio_mmio.c (v2, v1)
 *
 * A legacy transport (`legacy` set: mmio version 1 and legacy PCI) has no
 * VERSION_1, no FEATURES_OK step and 32 feature bits (4.2.4, 4.1.5 legacy
 * notes): virtio_start skips what it lacks and asks for nothing above bit
 * 31 (so never RING_PACKED, which legacy does not have). Legacy PCI also
 * fixes each queue's size and its used ring's alignment (4096).
 *
 * Handlers read/acknowledge and queue work; drivers' callbacks run from the
 * kernel loop.
 */
#ifndef BLIMP_VIRTIO_H
#define BLIMP_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "drivers/virtio/virtqueue.h"
#include "kernel/work.h"

struct pci_dev;

/* Feature bits 0-23 belong to the device type (spec 2.2, 6). */
#define VIRTIO_DEVICE_FEATURE_BITS 24
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* What an interrupt status register says (ISR on PCI, InterruptStatus on mmio). */
#define VIRTIO_INT_QUEUE 1
#define VIRTIO_INT_CONFIG 2

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5

#define VIRTIO_MAX_DEVICES 8
#define VIRTIO_MAX_QUEUES 8

/* INTX: a level-triggered line through the IOAPIC (a PCI pin, or the GSI an
 * mmio device was given); MSIX: messages straight to the local APIC. */
enum virtio_irq_mode { VIRTIO_IRQ_NONE, VIRTIO_IRQ_INTX, VIRTIO_IRQ_MSIX, VIRTIO_IRQ_POLL };

struct virtio_dev;
typedef void (*virtio_cb)(struct virtio_dev *vd);

/*
 * What a transport does. Every operation reads or writes the device's own
 * registers; the order and the checks are virtio.c's.
 */
struct virtio_ops {
	const char *name;   /* "pci", "pci-legacy", "mmio", "mmio-legacy" */
	/* The used ring's alignment in the queue's memory; 0: blimp's own 64.
	 * Legacy PCI: 4096, the device computes the ring from one page number. */
	uint32_t used_align;
	/* The device's queue size is the size (legacy PCI: read-only), not a
	 * maximum the driver may go below. */
	bool fixed_queue_size;
	uint8_t (*get_status)(struct virtio_dev *vd);
	void (*set_status)(struct virtio_dev *vd, uint8_t status); /* 0 resets */
	uint64_t (*get_features)(struct virtio_dev *vd);
	void (*set_features)(struct virtio_dev *vd, uint64_t features);
	/* Queues the device says it has (after FEATURES_OK): a bound on index. */
	uint16_t (*num_queues)(struct virtio_dev *vd);
	/* The largest size queue `index` may take: 0 when it does not exist, a
	 * negative error when the device answers nonsense (it is failed). Also
	 * checks what must hold before memory is given (PCI: the notify offset). */
	int (*queue_max)(struct virtio_dev *vd, uint16_t index);
	/* Give queue `index` (selected by queue_max) its size and the three ring
	 * addresses, and enable it. Returns 0 or a negative error (device failed). */
	int (*queue_enable)(struct virtio_dev *vd, uint16_t index, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used);
	void (*notify)(struct virtio_dev *vd, uint16_t index);
	/* Device configuration, read stably (a generation counter or, where there
	 * is none, two equal reads); 0 or -EIO. */
	int (*config_read)(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len);
	int (*config_write32)(struct virtio_dev *vd, uint32_t off, uint32_t v);
	/* Read and acknowledge the interrupt status: VIRTIO_INT_* bits. */
	uint8_t (*interrupt_status)(struct virtio_dev *vd);
	/* Choose the interrupt kind (after features; `poll` forces polling) and,
	 * at ready, wire it. wire returns 0 or an error (virtio.c falls back to
	 * polling). */
	void (*irq_choose)(struct virtio_dev *vd, bool poll, const char *force);
	int (*irq_wire)(struct virtio_dev *vd);
	/* Where and what the device is, for the shell: "00:03.0 balloon (1af4:1045)",
	 * "mmio 0xfeb00e00 v2 balloon". */
	void (*describe)(const struct virtio_dev *vd, char *buf, size_t n);
};

struct virtio_dev {
	const struct virtio_ops *ops;
	bool legacy;                /* no VERSION_1 / FEATURES_OK: mmio v1, legacy PCI */
	unsigned type;              /* VIRTIO_ID_* */

	/* Modern PCI (virtio_pci.c, virtio_pci_cap.c) */
	struct pci_dev *pci;
	volatile uint8_t *common, *isr, *device_cfg, *notify;
	uint32_t device_cfg_len, notify_len, notify_mult;
	uint16_t queue_notify_off[VIRTIO_MAX_QUEUES];

	/* Legacy PCI (virtio_pci_legacy.c): I/O BAR 0 */
	uint16_t io_base;
	uint32_t io_size;
	bool io_msix;               /* MSI-X on: device configuration at 24, not 20
				       (device_cfg_len follows: the BAR's rest) */

	/* virtio-mmio (virtio_mmio.c) */
	volatile uint8_t *mmio;     /* the register block, mapped */
	uint64_t mmio_base, mmio_size;
	uint32_t mmio_version;      /* 1 legacy, 2 */

	uint64_t device_features, features;
	uint16_t num_queues;
	struct vq *queues[VIRTIO_MAX_QUEUES];
	void *queue_mem[VIRTIO_MAX_QUEUES];
	size_t queue_mem_bytes[VIRTIO_MAX_QUEUES];

	enum virtio_irq_mode irq_mode;
	int gsi;                    /* INTx: the IOAPIC input */
	uint64_t irqs, config_irqs, queue_irqs;
	virtio_cb on_config, on_queue;
	struct work config_work, queue_work;
	volatile bool config_pending, queue_pending;
	void *driver;               /* the device driver's state */
	/* The driver's names for the device-type feature bits, indexed by bit
	 * (VIRTIO_DEVICE_FEATURE_BITS entries, NULL where unnamed), for the
	 * shell's `virtio`; NULL prints them as bitN. */
	const char *const *feature_names;
	bool failed;
};

extern struct virtio_dev virtio_devs[VIRTIO_MAX_DEVICES];
extern int virtio_ndevs;
/* irq=poll, as main passed it to the probes: every device is polled. */
extern bool virtio_poll_devices;

/* A free entry of virtio_devs, zeroed, for a transport's probe to fill;
 * NULL when all are taken. virtio_add counts it in. */
struct virtio_dev *virtio_new(void);
void virtio_add(struct virtio_dev *vd);

/* "balloon", "rng", "blk" or "virtio", for messages. */
static inline const char *virtio_dev_name(const struct virtio_dev *vd)
{
	return vd->type == VIRTIO_ID_BALLOON ? "balloon" : vd->type == VIRTIO_ID_RNG ? "rng"
	     : vd->type == VIRTIO_ID_BLOCK ? "blk" : "virtio";
}

/* The first device of `type` that no driver has taken, or NULL. */
struct virtio_dev *virtio_find(unsigned type);

/*
 * Reset, acknowledge, negotiate: `wanted` feature bits the driver handles
 * (VERSION_1, INDIRECT_DESC and EVENT_IDX are added here when offered).
 * Returns 0 with vd->features set, or a negative error (status FAILED set).
 */
int virtio_start(struct virtio_dev *vd, uint64_t wanted);

/* Set up queue `index` with at most max_size entries, rings from DMA memory. */
int virtio_setup_queue(struct virtio_dev *vd, uint16_t index, uint16_t max_size);

/* Interrupts (MSI-X, INTx or polling) and DRIVER_OK. */
int virtio_ready(struct virtio_dev *vd, virtio_cb on_config, virtio_cb on_queue);

/* Kick queue `index` if the device wants to hear of new buffers. */
void virtio_notify(struct virtio_dev *vd, uint16_t index);

/* Read device configuration stably; returns 0 or -EIO when it kept changing
 * or lies outside the configuration space. */
int virtio_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len);
int virtio_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v);

/* Device status byte; reports DEVICE_NEEDS_RESET / FAILED once. */
uint8_t virtio_status(struct virtio_dev *vd);

/* Mark the device FAILED (status bit, vd->failed, a message and a
 * virtio_failed event saying why); returns -EIO. For transports too. */
int virtio_fail(struct virtio_dev *vd, const char *why);

/* Read the interrupt status and queue the work it asks for; false when the
 * interrupt was not this device's (a shared line). For transports' handlers. */
bool virtio_interrupt(struct virtio_dev *vd);

bool virtio_has(const struct virtio_dev *vd, unsigned bit);

#endif
