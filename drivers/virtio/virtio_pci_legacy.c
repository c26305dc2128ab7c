/*
 * virtio_pci_legacy: the legacy (virtio 0.9.5) PCI interface of a
 * transitional device — I/O BAR 0, as QEMU gives it with
 * `disable-modern=on`, or with `virtio.legacy` for a transitional device
 * that offers both (virtio 1.2, 4.1.4.10 and the 4.1.5 legacy notes). The
 * bring-up order and the queues are virtio.c's; these are the registers
 * behind struct virtio_ops:
 *
 *   0  device features (32 bits)     14 queue select (16)
 *   4  driver features (32)          16 queue notify (16)
 *   8  queue page number (32)        18 device status (8)
 *  12  queue size (16, read-only)    19 ISR status (8, reading acknowledges)
 *  20  configuration MSI-X vector, 22 queue MSI-X vector: only while MSI-X
 *      is enabled; the device configuration starts at 24 then, else at 20.
 *
 * A legacy device lays out the rings itself from one page number: the
 * available ring after the descriptors, the used ring at the next 4096
 * boundary (2.7.2, legacy). virtio.c builds the ring that way (used_align)
 * and takes the device's queue size as it is (fixed_queue_size); the sum is
 * still checked here before the device is told.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "virtio_pci.h"
#include "virtio_pci_regs.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"

#define LEG_DEVICE_FEATURES 0
#define LEG_DRIVER_FEATURES 4
#define LEG_QUEUE_PFN 8
#define LEG_QUEUE_SIZE 12
#define LEG_QUEUE_SELECT 14
#define LEG_QUEUE_NOTIFY 16
#define LEG_STATUS 18
#define LEG_ISR 19
#define LEG_CONFIG_VECTOR 20
#define LEG_QUEUE_VECTOR 22
#define LEG_CONFIG 20       /* the device configuration without MSI-X */
#define LEG_CONFIG_MSIX 24  /* and with it */
#define LEG_PAGE 4096       /* the page number's unit and the used ring's alignment */

static const struct virtio_ops legacy_ops;

static uint16_t port(const struct virtio_dev *vd, unsigned off) { return (uint16_t)(vd->io_base + off); }
static uint32_t config_off(const struct virtio_dev *vd) { return vd->io_msix ? LEG_CONFIG_MSIX : LEG_CONFIG; }

/* MSI-X on or off moves the device configuration: what is left of the BAR
 * after the registers is its length (vd->device_cfg_len, as drivers read it). */
static void set_msix(struct virtio_dev *vd, bool on)
{
	vd->io_msix = on;
	vd->device_cfg_len = vd->io_size > config_off(vd) ? vd->io_size - config_off(vd) : 0;
}

/* See virtio_pci.h. */
int virtio_pci_legacy_init(struct virtio_dev *vd)
{
	struct pci_dev *d = vd->pci;
	const struct pci_bar *b = &d->bar[0];
	/* Room for the registers, and for the MSI-X pair where MSI-X may be used. */
	uint32_t need = d->msix_cap ? LEG_CONFIG_MSIX : LEG_CONFIG;
	const char *why = !b->io ? "BAR 0 is not an I/O BAR"
			: b->size < need ? "I/O BAR 0 is smaller than the legacy registers"
			: b->base == 0 ? "I/O BAR 0 was never assigned (base 0)"
			: b->base + b->size > 0x10000 ? "I/O BAR 0 lies outside the port space"
			: NULL;
	if (why) {
		printf("virtio %02x:%02x.%x: legacy interface: %s (base %#lx, size %#lx, needs %u bytes); device refused\n",
		       d->bus, d->dev, d->fn, why, (unsigned long)b->base, (unsigned long)b->size, need);
		return -ENODEV;
	}
	vd->legacy = true;
	vd->ops = &legacy_ops;
	vd->io_base = (uint16_t)b->base;
	vd->io_size = (uint32_t)b->size;
	set_msix(vd, false);
	pci_write16(d, 0x04, pci_read16(d, 0x04) | 0x5); /* I/O space, bus master */
	return 0;
}

/* ---------------------------------------------------------------- registers */

static uint8_t leg_get_status(struct virtio_dev *vd) { return inb(port(vd, LEG_STATUS)); }
static void leg_set_status(struct virtio_dev *vd, uint8_t s) { outb(port(vd, LEG_STATUS), s); }

/* 32 bits each way; the high half does not exist (virtio.c asks for none). */
static uint64_t leg_get_features(struct virtio_dev *vd) { return inl(port(vd, LEG_DEVICE_FEATURES)); }
static void leg_set_features(struct virtio_dev *vd, uint64_t f) { outl(port(vd, LEG_DRIVER_FEATURES), (uint32_t)f); }

/* No count register: each queue is asked, up to the last with a size. */
static uint16_t leg_num_queues(struct virtio_dev *vd)
{
	uint16_t n = 0;
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		outw(port(vd, LEG_QUEUE_SELECT), q);
		if (inw(port(vd, LEG_QUEUE_SIZE)) != 0)
			n = (uint16_t)(q + 1);
	}
	return n;
}

/* The device's size (fixed: the driver cannot choose another) must be a
 * power of two, and the queue must not already have a page after the reset. */
static int leg_queue_max(struct virtio_dev *vd, uint16_t index)
{
	char why[100];
	outw(port(vd, LEG_QUEUE_SELECT), index);
	uint16_t size = inw(port(vd, LEG_QUEUE_SIZE));
	uint32_t pfn = inl(port(vd, LEG_QUEUE_PFN));
	if (size == 0)
		return 0;
	if (pfn) {
		snprintf(why, sizeof(why), "queue %u reads page number %#x before it was set up", index, pfn);
		return virtio_fail(vd, why);
	}
	if (size & (size - 1)) {
		snprintf(why, sizeof(why), "queue %u has size %u, not a power of two", index, size);
		return virtio_fail(vd, why);
	}
	return size;
}

/* MSI-X entry 0 for configuration changes, 1.. for queues (shared past the table). */
static uint16_t queue_entry(const struct virtio_dev *vd, uint16_t q)
{
	return (uint16_t)(q + 1 < vd->pci->msix_size ? q + 1 : vd->pci->msix_size - 1);
}

static int leg_queue_enable(struct virtio_dev *vd, uint16_t index, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used)
{
	char why[120];
	/* Where the device will look (its own arithmetic, 2.7.2 legacy; QEMU
	 * leaves out used_event, which moves no power-of-two ring). */
	uint64_t dev_avail = desc + 16 * (uint64_t)size;
	uint64_t dev_used = (dev_avail + 6 + 2 * (uint64_t)size + LEG_PAGE - 1) & ~(uint64_t)(LEG_PAGE - 1);
	if ((desc & (LEG_PAGE - 1)) || desc / LEG_PAGE > UINT32_MAX || desc / LEG_PAGE == 0 || avail != dev_avail ||
	    used != dev_used) {
		snprintf(why, sizeof(why), "queue %u: rings at %#lx/%#lx/%#lx do not fit the legacy layout", index,
			 (unsigned long)desc, (unsigned long)avail, (unsigned long)used);
		printf("virtio %s: %s\n", virtio_dev_name(vd), why);
		return -EINVAL;
	}
	outw(port(vd, LEG_QUEUE_SELECT), index);
	if (vd->irq_mode == VIRTIO_IRQ_MSIX) {
		outw(port(vd, LEG_QUEUE_VECTOR), queue_entry(vd, index));
		if (inw(port(vd, LEG_QUEUE_VECTOR)) != queue_entry(vd, index))
			return virtio_fail(vd, "device refused an MSI-X vector for a queue");
	}
	uint32_t pfn = (uint32_t)(desc / LEG_PAGE);
	outl(port(vd, LEG_QUEUE_PFN), pfn);
	uint32_t back = inl(port(vd, LEG_QUEUE_PFN));
	if (back != pfn) {
		snprintf(why, sizeof(why), "queue %u: page number reads %#x after %#x was written", index, back, pfn);
		return virtio_fail(vd, why);
	}
	return 0;
}

static void leg_notify(struct virtio_dev *vd, uint16_t index) { outw(port(vd, LEG_QUEUE_NOTIFY), index); }

static uint32_t config_len(const struct virtio_dev *vd) { return vd->device_cfg_len; }

static void read_config(struct virtio_dev *vd, uint32_t off, uint8_t *buf, uint32_t len)
{
	uint32_t base = config_off(vd) + off;
	for (uint32_t i = 0; i < len;) {
		if (!((off + i) & 3) && len - i >= 4) {
			uint32_t v = inl(port(vd, base + i));
			memcpy(buf + i, &v, 4);
			i += 4;
		} else {
			buf[i] = inb(port(vd, base + i));
			i++;
		}
	}
}

/* No generation counter: read until two reads in a row agree, bounded. The
 * balloon's fields are little-endian even here (5.5.4, legacy), as x86 is. */
static int leg_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len)
{
	uint8_t again[256];
	if (off > config_len(vd) || len > config_len(vd) - off || len > sizeof(again))
		return -EIO;
	for (int tries = 0; tries < 16; tries++) {
		read_config(vd, off, buf, len);
		read_config(vd, off, again, len);
		if (memcmp(buf, again, len) == 0)
			return 0;
	}
	printf("virtio %s: configuration kept changing while read\n", virtio_dev_name(vd));
	return -EIO;
}

static int leg_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v)
{
	if (off > config_len(vd) || 4 > config_len(vd) - off || (off & 3))
		return -EIO;
	outl(port(vd, config_off(vd) + off), v);
	return 0;
}

/* Reading the ISR byte acknowledges it and lowers INTx; bits other than
 * queue and configuration mean nothing. */
static uint8_t leg_interrupt_status(struct virtio_dev *vd)
{
	return inb(port(vd, LEG_ISR)) & (VIRTIO_INT_QUEUE | VIRTIO_INT_CONFIG);
}

/* ---------------------------------------------------------------- interrupts */

/* As modern PCI's (virtio_pci.c handlers), with the vectors at 20 and 22:
 * the device configuration moves to 24 the moment MSI-X is on. */
static int setup_msix(struct virtio_dev *vd)
{
	if (vd->pci->msix_size < 2 || vd->io_size < LEG_CONFIG_MSIX || pci_msix_enable(vd->pci) < 0)
		return -ENODEV;
	set_msix(vd, true);
	for (uint16_t e = 0; e < vd->pci->msix_size && e <= VIRTIO_MAX_QUEUES; e++) {
		int v = irq_alloc_vector();
		if (v < 0 || irq_set_handler(v, e == 0 ? virtio_pci_msix_config_handler : virtio_pci_msix_queue_handler,
					     vd) < 0)
			goto off;
		pci_msix_set_vector(vd->pci, e, v);
	}
	outw(port(vd, LEG_CONFIG_VECTOR), 0);
	if (inw(port(vd, LEG_CONFIG_VECTOR)) == 0)
		return 0;
	printf("virtio %s: device refused MSI-X vector 0 for configuration changes; using INTx\n",
	       virtio_dev_name(vd));
	outw(port(vd, LEG_CONFIG_VECTOR), VIRTIO_PCI_NO_VECTOR);
off:
	pci_msix_disable(vd->pci);
	set_msix(vd, false);
	return -EIO;
}

static void leg_irq_choose(struct virtio_dev *vd, bool poll, const char *force)
{
	virtio_pci_irq_choose(vd, poll, force, setup_msix);
}

static void leg_describe(const struct virtio_dev *vd, char *buf, size_t n)
{
	snprintf(buf, n, "%02x:%02x.%x %s (1af4:%04x) legacy, I/O %#x", vd->pci->bus, vd->pci->dev, vd->pci->fn,
		 virtio_dev_name(vd), vd->pci->device, vd->io_base);
}

static const struct virtio_ops legacy_ops = {
	.name = "pci-legacy",
	.used_align = LEG_PAGE,
	.fixed_queue_size = true,
	.get_status = leg_get_status,
	.set_status = leg_set_status,
	.get_features = leg_get_features,
	.set_features = leg_set_features,
	.num_queues = leg_num_queues,
	.queue_max = leg_queue_max,
	.queue_enable = leg_queue_enable,
	.notify = leg_notify,
	.config_read = leg_config_read,
	.config_write32 = leg_config_write32,
	.interrupt_status = leg_interrupt_status,
	.irq_choose = leg_irq_choose,
	.irq_wire = virtio_pci_irq_wire,
	.describe = leg_describe,
};
