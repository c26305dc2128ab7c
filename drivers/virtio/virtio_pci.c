/*
 * virtio_pci: modern virtio over PCI (see virtio_pci.h), the registers
 * behind struct virtio_ops. Register offsets of the common configuration
 * are from virtio 1.2, 4.1.4.3.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "virtio_pci.h"
#include "virtio_pci_regs.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/mmio.h"
#include "kernel/cmdline.h"

static uint8_t rd8(struct virtio_dev *vd, unsigned off) { return mmio_read8(vd->common + off); }
static uint16_t rd16(struct virtio_dev *vd, unsigned off) { return mmio_read16(vd->common + off); }
static uint32_t rd32(struct virtio_dev *vd, unsigned off) { return mmio_read32(vd->common + off); }
static void wr8(struct virtio_dev *vd, unsigned off, uint8_t v) { mmio_write8(vd->common + off, v); }
static void wr16(struct virtio_dev *vd, unsigned off, uint16_t v) { mmio_write16(vd->common + off, v); }
static void wr32(struct virtio_dev *vd, unsigned off, uint32_t v) { mmio_write32(vd->common + off, v); }
static void wr64(struct virtio_dev *vd, unsigned off, uint64_t v)
{
	wr32(vd, off, (uint32_t)v);
	wr32(vd, off + 4, (uint32_t)(v >> 32));
}

/* Device type from the PCI id: 0x1040 + type (modern), or the transitional table. */
static unsigned virtio_type(uint16_t device)
{
	static const unsigned transitional[] = { 1, 2, 5, 3, 8, 4, 0, 0, 0, 9 };
	if (device >= 0x1040 && device <= 0x107f)
		return device - 0x1040;
	if (device >= 0x1000 && device <= 0x1009)
		return transitional[device - 0x1000];
	return 0;
}

static const struct virtio_ops pci_ops;

CMDLINE_OPTION(virtio_legacy, "virtio.legacy",
	       "drive transitional virtio PCI devices (1af4:1000-103f) over their legacy I/O interface");

/* Does the function describe a modern interface (a common-configuration
 * capability)? One bounded walk, as virtio_pci_parse_caps does. */
static bool has_modern(const struct pci_dev *d)
{
	int seen = 0;
	for (uint8_t c = pci_next_cap(d, 0); c && ++seen <= 48; c = pci_next_cap(d, c))
		if (pci_read8(d, c) == PCI_CAP_VENDOR && c + VIRTIO_PCI_CAP_CFG_TYPE < 0x100 &&
		    pci_read8(d, c + VIRTIO_PCI_CAP_CFG_TYPE) == VIRTIO_PCI_CAP_COMMON_CFG)
			return true;
	return false;
}

int virtio_pci_probe(bool poll)
{
	int found = 0;
	virtio_poll_devices = poll;
	for (int i = 0; i < pci_ndevs; i++) {
		struct pci_dev *d = &pci_devs[i];
		if (d->vendor != 0x1af4 || virtio_type(d->device) == 0)
			continue;
		struct virtio_dev *vd = virtio_new();
		if (!vd)
			break;
		vd->ops = &pci_ops;
		vd->pci = d;
		vd->type = virtio_type(d->device);
		/* A transitional device (0x1000-0x103f) also has the legacy I/O
		 * interface: used when it offers nothing else (disable-modern=on)
		 * or when virtio.legacy asks for it. */
		bool transitional = d->device < 0x1040;
		int rc = transitional && (cmdline_has("virtio.legacy") || !has_modern(d))
			 ? virtio_pci_legacy_init(vd) : virtio_pci_parse_caps(vd);
		if (rc < 0)
			continue;
		virtio_add(vd);
		found++;
	}
	return found;
}

/* ---------------------------------------------------------------- registers */

static uint8_t pci_get_status(struct virtio_dev *vd)
{
	return rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS);
}

static void pci_set_status(struct virtio_dev *vd, uint8_t s)
{
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, s);
}

static uint64_t pci_get_features(struct virtio_dev *vd)
{
	wr32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 0);
	uint64_t lo = rd32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE);
	wr32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 1);
	return lo | (uint64_t)rd32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE) << 32;
}

static void pci_set_features(struct virtio_dev *vd, uint64_t f)
{
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 0);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE, (uint32_t)f);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 1);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE, (uint32_t)(f >> 32));
}

static uint16_t pci_num_queues(struct virtio_dev *vd)
{
	return rd16(vd, VIRTIO_PCI_COMMON_NUM_QUEUES);
}

/* The size the device offers; a size that is not a power of two, or a
 * notify offset outside the notify region, fails the device. */
static int pci_queue_max(struct virtio_dev *vd, uint16_t index)
{
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_SELECT, index);
	uint16_t size = rd16(vd, VIRTIO_PCI_COMMON_QUEUE_SIZE);
	if (size == 0)
		return 0;
	if (size & (size - 1)) {
		char why[80];
		snprintf(why, sizeof(why), "queue %u has size %u, not a power of two", index, size);
		return virtio_fail(vd, why);
	}
	uint16_t notify_off = rd16(vd, VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF);
	if ((uint64_t)notify_off * vd->notify_mult + 2 > vd->notify_len) {
		char why[100];
		snprintf(why, sizeof(why), "queue %u notify offset %u x %u lies outside the notify region",
			 index, notify_off, vd->notify_mult);
		return virtio_fail(vd, why);
	}
	vd->queue_notify_off[index] = notify_off;
	return size;
}

/* MSI-X entry 0 for configuration changes, 1.. for queues (shared past the table). */
static uint16_t queue_entry(const struct virtio_dev *vd, uint16_t q)
{
	return (uint16_t)(q + 1 < vd->pci->msix_size ? q + 1 : vd->pci->msix_size - 1);
}

static int pci_queue_enable(struct virtio_dev *vd, uint16_t index, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used)
{
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_SELECT, index);
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_SIZE, size);
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DESC, desc);
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DRIVER, avail);
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DEVICE, used);
	if (vd->irq_mode == VIRTIO_IRQ_MSIX) {
		wr16(vd, VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR, queue_entry(vd, index));
		if (rd16(vd, VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR) == VIRTIO_PCI_NO_VECTOR)
			return virtio_fail(vd, "device refused an MSI-X vector for a queue");
	}
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_ENABLE, 1);
	return 0;
}

static void pci_notify(struct virtio_dev *vd, uint16_t index)
{
	*(volatile uint16_t *)(vd->notify + (uint32_t)vd->queue_notify_off[index] * vd->notify_mult) = index;
}

/* Reading ISR status acknowledges the interrupt (lowers INTx) and says what
 * it was (4.1.4.5): bit 0 queue, bit 1 configuration, as VIRTIO_INT_*. */
static uint8_t pci_interrupt_status(struct virtio_dev *vd)
{
	return *vd->isr;
}

/* ---------------------------------------------------------------- interrupts */

/* The line may be shared: count only the interrupts this device raised. */
void virtio_pci_intx_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	if (virtio_interrupt(vd))
		vd->irqs++;
}

void virtio_pci_msix_config_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	vd->irqs++;
	vd->config_irqs++;
	work_queue(&vd->config_work);
}

void virtio_pci_msix_queue_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	vd->irqs++;
	vd->queue_irqs++;
	work_queue(&vd->queue_work);
}

/* Vectors for every entry used, then the configuration vector, read back:
 * a device that cannot take it answers VIRTIO_PCI_NO_VECTOR (4.1.5.1.2). */
static int setup_msix(struct virtio_dev *vd)
{
	if (vd->pci->msix_size < 2 || pci_msix_enable(vd->pci) < 0)
		return -ENODEV;
	for (uint16_t e = 0; e < vd->pci->msix_size && e <= VIRTIO_MAX_QUEUES; e++) {
		int v = irq_alloc_vector();
		if (v < 0 || irq_set_handler(v, e == 0 ? virtio_pci_msix_config_handler : virtio_pci_msix_queue_handler, vd) < 0) {
			pci_msix_disable(vd->pci);
			return -ENOSPC;
		}
		pci_msix_set_vector(vd->pci, e, v);
	}
	wr16(vd, VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR, 0);
	if (rd16(vd, VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR) != 0) {
		printf("virtio %s: device refused MSI-X vector 0 for configuration changes; using INTx\n",
		       virtio_dev_name(vd));
		wr16(vd, VIRTIO_PCI_COMMON_CONFIG_MSIX_VECTOR, VIRTIO_PCI_NO_VECTOR);
		pci_msix_disable(vd->pci);
		return -EIO;
	}
	return 0;
}

static void pci_irq_choose(struct virtio_dev *vd, bool poll, const char *force)
{
	virtio_pci_irq_choose(vd, poll, force, setup_msix);
}

static void pci_describe(const struct virtio_dev *vd, char *buf, size_t n)
{
	snprintf(buf, n, "%02x:%02x.%x %s (1af4:%04x)", vd->pci->bus, vd->pci->dev, vd->pci->fn,
		 virtio_dev_name(vd), vd->pci->device);
}

static const struct virtio_ops pci_ops = {
	.name = "pci",
	.get_status = pci_get_status,
	.set_status = pci_set_status,
	.get_features = pci_get_features,
	.set_features = pci_set_features,
	.num_queues = pci_num_queues,
	.queue_max = pci_queue_max,
	.queue_enable = pci_queue_enable,
	.notify = pci_notify,
	.config_read = virtio_pci_config_read,
	.config_write32 = virtio_pci_config_write32,
	.interrupt_status = pci_interrupt_status,
	.irq_choose = pci_irq_choose,
	.irq_wire = virtio_pci_irq_wire,
	.describe = pci_describe,
};
