/*
 * virtio_pci: modern virtio over PCI (see virtio_pci.h). Register offsets
 * of the common configuration are from virtio 1.2, 4.1.4.3.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "virtio_pci.h"
#include "virtio_pci_regs.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/mmio.h"
#include "kernel/clock.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/shell.h"

#define MAX_INDIRECT 32 /* free page reporting sends up to 32 blocks a buffer */

struct virtio_dev virtio_devs[VIRTIO_MAX_DEVICES];
int virtio_ndevs;

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

bool virtio_has(const struct virtio_dev *vd, unsigned bit)
{
	return vd->features & (1ULL << bit);
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

/* irq=poll, as main passed it to virtio_pci_probe. */
static bool poll_devices;

int virtio_pci_probe(bool poll)
{
	poll_devices = poll;
	virtio_ndevs = 0;
	for (int i = 0; i < pci_ndevs && virtio_ndevs < VIRTIO_MAX_DEVICES; i++) {
		struct pci_dev *d = &pci_devs[i];
		if (d->vendor != 0x1af4 || virtio_type(d->device) == 0)
			continue;
		struct virtio_dev *vd = &virtio_devs[virtio_ndevs];
		memset(vd, 0, sizeof(*vd));
		vd->pci = d;
		vd->type = virtio_type(d->device);
		if (virtio_pci_parse_caps(vd) < 0)
			continue;
		virtio_ndevs++;
	}
	return virtio_ndevs;
}

struct virtio_dev *virtio_find(unsigned type)
{
	for (int i = 0; i < virtio_ndevs; i++)
		if (virtio_devs[i].type == type && !virtio_devs[i].driver && !virtio_devs[i].failed)
			return &virtio_devs[i];
	return NULL;
}

static int fail_device(struct virtio_dev *vd, const char *why)
{
	printf("virtio %s: %s; device marked FAILED\n", virtio_dev_name(vd), why);
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS) | VIRTIO_STATUS_FAILED);
	vd->failed = true;
	event_emit("virtio_failed", "\"device\":\"%s\",\"why\":\"%s\"", virtio_dev_name(vd), why);
	return -EIO;
}

/* ---------------------------------------------------------------- interrupts */

static void config_work_fn(struct work *w)
{
	struct virtio_dev *vd = (struct virtio_dev *)((char *)w - __builtin_offsetof(struct virtio_dev, config_work));
	virtio_pci_status(vd);
	if (vd->on_config)
		vd->on_config(vd);
}

static void queue_work_fn(struct work *w)
{
	struct virtio_dev *vd = (struct virtio_dev *)((char *)w - __builtin_offsetof(struct virtio_dev, queue_work));
	if (vd->on_queue)
		vd->on_queue(vd);
}

/* Reading ISR status acknowledges the interrupt (lowers INTx) and says what
 * it was (4.1.4.5). Returns false when it was not this device's. */
static bool isr_dispatch(struct virtio_dev *vd)
{
	uint8_t isr = *vd->isr;
	if (isr & 1) {
		vd->queue_irqs++;
		work_queue(&vd->queue_work);
	}
	if (isr & 2) {
		vd->config_irqs++;
		work_queue(&vd->config_work);
	}
	return isr & 3;
}

/* The line may be shared: count only the interrupts this device raised. */
static void intx_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	if (isr_dispatch(vd))
		vd->irqs++;
}

static void msix_config_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	vd->irqs++;
	vd->config_irqs++;
	work_queue(&vd->config_work);
}

static void msix_queue_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	vd->irqs++;
	vd->queue_irqs++;
	work_queue(&vd->queue_work);
}

static void poll_all(void)
{
	for (int i = 0; i < virtio_ndevs; i++)
		if (virtio_devs[i].irq_mode == VIRTIO_IRQ_POLL)
			isr_dispatch(&virtio_devs[i]);
}

/* MSI-X entry 0 for configuration changes, 1.. for queues (shared past the table). */
static uint16_t queue_entry(const struct virtio_dev *vd, uint16_t q)
{
	return (uint16_t)(q + 1 < vd->pci->msix_size ? q + 1 : vd->pci->msix_size - 1);
}

/* Vectors for every entry used, then the configuration vector, read back:
 * a device that cannot take it answers VIRTIO_PCI_NO_VECTOR (4.1.5.1.2). */
static int setup_msix(struct virtio_dev *vd)
{
	if (vd->pci->msix_size < 2 || pci_msix_enable(vd->pci) < 0)
		return -ENODEV;
	for (uint16_t e = 0; e < vd->pci->msix_size && e <= VIRTIO_MAX_QUEUES; e++) {
		int v = irq_alloc_vector();
		if (v < 0 || irq_set_handler(v, e == 0 ? msix_config_handler : msix_queue_handler, vd) < 0) {
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

CMDLINE_OPTION(virtio_irq, "virtio.irq", "force the interrupt kind for virtio devices: intx|poll");
CMDLINE_OPTION(virtio_packed, "virtio.packed", "off: refuse packed virtqueues (VIRTIO_F_RING_PACKED), use split rings");

int virtio_pci_start(struct virtio_dev *vd, uint64_t wanted)
{
	vd->config_work.fn = config_work_fn;
	vd->queue_work.fn = queue_work_fn;
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, 0);
	uint64_t start = clock_ms();
	while (rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS) != 0)
		if (clock_ms() - start > 1000)
			return fail_device(vd, "reset did not complete within 1 s");
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 0);
	uint64_t lo = rd32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE);
	wr32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 1);
	vd->device_features = lo | (uint64_t)rd32(vd, VIRTIO_PCI_COMMON_DEVICE_FEATURE) << 32;
	if (!(vd->device_features & (1ULL << VIRTIO_F_VERSION_1)))
		return fail_device(vd, "device does not offer VIRTIO_F_VERSION_1");
	const char *packed = cmdline_get("virtio.packed");
	wanted |= 1ULL << VIRTIO_F_VERSION_1 | vq_driver_features(!(packed && strcmp(packed, "off") == 0));
	vd->features = vd->device_features & wanted;
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 0);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE, (uint32_t)vd->features);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 1);
	wr32(vd, VIRTIO_PCI_COMMON_DRIVER_FEATURE, (uint32_t)(vd->features >> 32));
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS,
	    VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	if (!(rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return fail_device(vd, "device refused the negotiated features (FEATURES_OK cleared)");
	vd->num_queues = rd16(vd, VIRTIO_PCI_COMMON_NUM_QUEUES);

	const char *force = cmdline_get("virtio.irq");
	bool poll = poll_devices || (force && strcmp(force, "poll") == 0) || !ioapic_present();
	if (!poll && !(force && strcmp(force, "intx") == 0) && setup_msix(vd) == 0)
		vd->irq_mode = VIRTIO_IRQ_MSIX;
	else if (!poll && (vd->gsi = pci_intx_gsi(vd->pci)) >= 0)
		vd->irq_mode = VIRTIO_IRQ_INTX;
	else
		vd->irq_mode = VIRTIO_IRQ_POLL;
	return 0;
}

int virtio_pci_setup_queue(struct virtio_dev *vd, uint16_t index, uint16_t max_size)
{
	if (index >= vd->num_queues || index >= VIRTIO_MAX_QUEUES || max_size == 0)
		return -EINVAL;
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_SELECT, index);
	uint16_t size = rd16(vd, VIRTIO_PCI_COMMON_QUEUE_SIZE);
	if (size == 0)
		return -ENOENT;
	if (size & (size - 1)) {
		char why[80];
		snprintf(why, sizeof(why), "queue %u has size %u, not a power of two", index, size);
		return fail_device(vd, why);
	}
	/* Checked before anything is allocated: a refused device keeps nothing. */
	uint16_t notify_off = rd16(vd, VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF);
	if ((uint64_t)notify_off * vd->notify_mult + 2 > vd->notify_len) {
		char why[100];
		snprintf(why, sizeof(why), "queue %u notify offset %u x %u lies outside the notify region",
			 index, notify_off, vd->notify_mult);
		return fail_device(vd, why);
	}
	while (size > max_size)
		size /= 2;
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_SIZE, size);
	struct vq_config cfg = vq_config_for(vd->features, MAX_INDIRECT);
	size_t bytes = vq_mem_bytes(&cfg, size);
	uint8_t *mem = mm_alloc_dma(bytes);
	struct vq *vq = calloc(1, sizeof(*vq));
	if (!mem || !vq) {
		free(vq);
		if (mem)
			mm_free_dma(mem, bytes);
		return -ENOMEM;
	}
	int rc = vq_setup(vq, &cfg, index, size, mem);
	if (rc < 0) {
		free(vq);
		mm_free_dma(mem, bytes);
		return rc;
	}
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DESC, vq_desc_addr(vq));
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DRIVER, vq_avail_addr(vq));
	wr64(vd, VIRTIO_PCI_COMMON_QUEUE_DEVICE, vq_used_addr(vq));
	if (vd->irq_mode == VIRTIO_IRQ_MSIX) {
		wr16(vd, VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR, queue_entry(vd, index));
		if (rd16(vd, VIRTIO_PCI_COMMON_QUEUE_MSIX_VECTOR) == VIRTIO_PCI_NO_VECTOR)
			return fail_device(vd, "device refused an MSI-X vector for a queue");
	}
	wr16(vd, VIRTIO_PCI_COMMON_QUEUE_ENABLE, 1);
	vd->queues[index] = vq;
	vd->queue_mem[index] = mem;
	vd->queue_mem_bytes[index] = bytes;
	vd->queue_notify_off[index] = notify_off;
	return 0;
}

int virtio_pci_ready(struct virtio_dev *vd, virtio_cb on_config, virtio_cb on_queue)
{
	vd->on_config = on_config;
	vd->on_queue = on_queue;
	if (vd->irq_mode == VIRTIO_IRQ_INTX) {
		int rc = pci_enable_intx(vd->pci, intx_handler, vd);
		if (rc < 0) {
			printf("virtio %s: INTx not routable (%d); polling instead\n", virtio_dev_name(vd), rc);
			vd->irq_mode = VIRTIO_IRQ_POLL;
		}
	}
	static bool polling;
	if (vd->irq_mode == VIRTIO_IRQ_POLL && !polling) {
		polling = true; /* one timer polls every polled device */
		work_add_poll(poll_all, 10 * 1000 * 1000);
	}
	wr8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS, rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS) | VIRTIO_STATUS_DRIVER_OK);
	static const char *const modes[] = { "none", "intx", "msix", "poll" };
	event_emit("virtio_ready", "\"device\":\"%s\",\"pci_device\":%u,\"features\":%lu,\"irq\":\"%s\","
		   "\"gsi\":%d,\"queues\":%u", virtio_dev_name(vd), vd->pci->device, (unsigned long)vd->features,
		   modes[vd->irq_mode], vd->irq_mode == VIRTIO_IRQ_INTX ? vd->gsi : -1, vd->num_queues);
	return 0;
}

void virtio_pci_notify(struct virtio_dev *vd, uint16_t index)
{
	struct vq *vq = vd->queues[index];
	if (vq && vq_kick_prepare(vq))
		*(volatile uint16_t *)(vd->notify + (uint32_t)vd->queue_notify_off[index] * vd->notify_mult) = index;
}

uint8_t virtio_pci_status(struct virtio_dev *vd)
{
	uint8_t s = rd8(vd, VIRTIO_PCI_COMMON_DEVICE_STATUS);
	if ((s & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)) && !vd->failed) {
		vd->failed = true;
		printf("virtio %s: device status %#x: %s\n", virtio_dev_name(vd), s,
		       (s & VIRTIO_STATUS_NEEDS_RESET) ? "DEVICE_NEEDS_RESET (the device hit an error)" : "FAILED");
		event_emit("virtio_failed", "\"device\":\"%s\",\"status\":%u", virtio_dev_name(vd), s);
	}
	return s;
}

/* ---------------------------------------------------------------- shell */

/* The transport's own bits; the device-type bits (0-23) are named by the
 * driver (vd->feature_names). */
static const char *const transport_feature_names[64] = {
	[28] = "INDIRECT_DESC", [29] = "EVENT_IDX", [32] = "VERSION_1", [33] = "ACCESS_PLATFORM",
	[34] = "RING_PACKED", [35] = "IN_ORDER", [40] = "RING_RESET",
};

static void print_features(const struct virtio_dev *vd, uint64_t f)
{
	for (int b = 0; b < 64; b++)
		if (f & (1ULL << b)) {
			const char *name = b < VIRTIO_DEVICE_FEATURE_BITS
				? (vd->feature_names ? vd->feature_names[b] : NULL)
				: transport_feature_names[b];
			if (name)
				printf(" %s", name);
			else
				printf(" bit%d", b);
		}
	printf("\n");
}

static int cmd_virtio(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	static const char *const modes[] = { "none", "INTx", "MSI-X", "polling" };
	for (int i = 0; i < virtio_ndevs; i++) {
		struct virtio_dev *vd = &virtio_devs[i];
		uint8_t s = virtio_pci_status(vd);
		printf("%02x:%02x.%x %s (1af4:%04x) status %#x%s%s, interrupts: %s", vd->pci->bus, vd->pci->dev,
		       vd->pci->fn, virtio_dev_name(vd), vd->pci->device, s, (s & VIRTIO_STATUS_DRIVER_OK) ? " DRIVER_OK" : "",
		       vd->failed ? " FAILED" : "", modes[vd->irq_mode]);
		if (vd->irq_mode == VIRTIO_IRQ_INTX)
			printf(" (GSI %d, line fired %lu)", vd->gsi, (unsigned long)pci_intx_count(vd->gsi));
		printf(", %lu (config %lu, queues %lu)\n", (unsigned long)vd->irqs,
		       (unsigned long)vd->config_irqs, (unsigned long)vd->queue_irqs);
		printf("    offered:   ");
		print_features(vd, vd->device_features);
		printf("    negotiated:");
		print_features(vd, vd->features);
		for (int q = 0; q < VIRTIO_MAX_QUEUES; q++)
			if (vd->queues[q])
				printf("    queue %d: %s ring, size %u, in flight %u, added %lu, completed %lu%s%s\n", q,
				       vq_layout_name(vd->queues[q]), vd->queues[q]->size, vd->queues[q]->in_flight, (unsigned long)vd->queues[q]->added,
				       (unsigned long)vd->queues[q]->completed, vd->queues[q]->broken ? ", BROKEN: " : "",
				       vq_broken_reason(vd->queues[q]));
		event_emit("virtio_device", "\"device\":\"%s\",\"pci_device\":%u,\"status\":%u,\"features\":%lu,"
			   "\"device_features\":%lu,\"irq\":\"%s\",\"gsi\":%d,\"irqs\":%lu,\"config_irqs\":%lu,\"queue_irqs\":%lu",
			   virtio_dev_name(vd), vd->pci->device, s, (unsigned long)vd->features,
			   (unsigned long)vd->device_features, modes[vd->irq_mode],
			   vd->irq_mode == VIRTIO_IRQ_INTX ? vd->gsi : -1, (unsigned long)vd->irqs,
			   (unsigned long)vd->config_irqs, (unsigned long)vd->queue_irqs);
	}
	if (virtio_ndevs == 0)
		printf("no virtio devices\n");
	return 0;
}
SHELL_COMMAND(virtio, "", "virtio devices: status, features, queues, interrupts", cmd_virtio);
