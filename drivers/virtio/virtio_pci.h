/*
 * virtio_pci: the virtio 1.x modern PCI transport (virtio 1.2, section 4.1).
 *
 * A virtio PCI function describes its register blocks with vendor-specific
 * capabilities (4.1.4): common configuration (features, status, queue
 * setup), notification (where to write to kick a queue), ISR status (which
 * interrupt it was, for INTx) and device-specific configuration (for the
 * balloon: num_pages, actual, ...). Bring-up follows 3.1.1: reset,
 * ACKNOWLEDGE, DRIVER, features, FEATURES_OK (read back), queues, DRIVER_OK.
 *
 * Both the transitional balloon (1af4:1002) and the modern-only one
 * (1af4:1045) are driven through the modern interface. Interrupts are
 * MSI-X when the function has it (one vector for configuration changes, one
 * per queue), else INTx through the IOAPIC; `irq=poll` forces polling.
 * Handlers read/acknowledge and queue work; drivers' callbacks run from the
 * kernel loop.
 */
#ifndef BLIMP_VIRTIO_PCI_H
#define BLIMP_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtqueue.h"
#include "kernel/work.h"

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

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5

#define VIRTIO_MAX_DEVICES 8
#define VIRTIO_MAX_QUEUES 8

enum virtio_irq_mode { VIRTIO_IRQ_NONE, VIRTIO_IRQ_INTX, VIRTIO_IRQ_MSIX, VIRTIO_IRQ_POLL };

struct virtio_dev;
typedef void (*virtio_cb)(struct virtio_dev *vd);

struct virtio_dev {
	struct pci_dev *pci;
	unsigned type;              /* VIRTIO_ID_* */
	volatile uint8_t *common, *isr, *device_cfg, *notify;
	uint32_t device_cfg_len, notify_len, notify_mult;
	uint64_t device_features, features;
	uint16_t num_queues;
	struct vq *queues[VIRTIO_MAX_QUEUES];
	void *queue_mem[VIRTIO_MAX_QUEUES];
	size_t queue_mem_bytes[VIRTIO_MAX_QUEUES];
	uint16_t queue_notify_off[VIRTIO_MAX_QUEUES];

	enum virtio_irq_mode irq_mode;
	int gsi;                    /* INTx */
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

/* Find virtio functions among the PCI devices and map their capabilities.
 * A device whose capabilities are malformed is reported and skipped. With
 * `poll` (irq=poll) every device is polled instead of interrupting. */
int virtio_pci_probe(bool poll);

/*
 * virtio_pci_cap.c: find vd->pci's common, notify, ISR and device
 * configuration in its vendor capabilities and map them (the first usable
 * capability of each kind; reserved kinds and BAR numbers ignored, 4.1.4).
 * Each region must lie within its BAR and be long enough for its registers.
 * Returns 0, or -ENODEV with a message saying what is wrong.
 */
int virtio_pci_parse_caps(struct virtio_dev *vd);

/* "balloon", "rng", "blk" or "virtio", for messages. */
const char *virtio_dev_name(const struct virtio_dev *vd);

/* The first device of `type` that no driver has taken, or NULL. */
struct virtio_dev *virtio_find(unsigned type);

/*
 * Reset, acknowledge, negotiate: `wanted` feature bits the driver handles
 * (VERSION_1, and the ring features of vq_driver_features — INDIRECT_DESC,
 * EVENT_IDX, RING_PACKED unless virtio.packed=off — are added here).
 * Returns 0 with vd->features set, or a negative error (status FAILED set).
 */
int virtio_pci_start(struct virtio_dev *vd, uint64_t wanted);

/* Set up queue `index` with at most max_size entries, rings from DMA memory. */
int virtio_pci_setup_queue(struct virtio_dev *vd, uint16_t index, uint16_t max_size);

/* Interrupts (MSI-X, INTx or polling) and DRIVER_OK. */
int virtio_pci_ready(struct virtio_dev *vd, virtio_cb on_config, virtio_cb on_queue);

/* Kick queue `index` if the device wants to hear of new buffers. */
void virtio_pci_notify(struct virtio_dev *vd, uint16_t index);

/* Read device configuration stably (guarded by config_generation); returns
 * 0 or -EIO when it kept changing or lies outside the configuration space. */
int virtio_pci_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len);
int virtio_pci_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v);

/* Device status byte; reports DEVICE_NEEDS_RESET / FAILED once. */
uint8_t virtio_pci_status(struct virtio_dev *vd);

bool virtio_has(const struct virtio_dev *vd, unsigned bit);

#endif
