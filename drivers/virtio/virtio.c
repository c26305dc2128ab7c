/*
 * virtio: what every transport shares (see virtio.h) — the device table,
 * the bring-up order of virtio 1.2, 3.1.1, queue memory, interrupt work,
 * polling and the shell's `virtio`. The transport's registers are reached
 * only through vd->ops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "virtio.h"
#include "drivers/pci/pci.h"
#include "arch/x86_64/ioapic.h"
#include "kernel/clock.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/shell.h"

#define MAX_INDIRECT 32 /* free page reporting sends up to 32 blocks a buffer */

struct virtio_dev virtio_devs[VIRTIO_MAX_DEVICES];
int virtio_ndevs;

/* irq=poll, as main passed it to the probes (virtio_pci_probe, virtio_mmio_probe). */
bool virtio_poll_devices;

struct virtio_dev *virtio_new(void)
{
	if (virtio_ndevs >= VIRTIO_MAX_DEVICES)
		return NULL;
	struct virtio_dev *vd = &virtio_devs[virtio_ndevs];
	memset(vd, 0, sizeof(*vd));
	return vd;
}

void virtio_add(struct virtio_dev *vd)
{
	if (vd == &virtio_devs[virtio_ndevs] && virtio_ndevs < VIRTIO_MAX_DEVICES)
		virtio_ndevs++;
}

bool virtio_has(const struct virtio_dev *vd, unsigned bit)
{
	return vd->features & (1ULL << bit);
}

struct virtio_dev *virtio_find(unsigned type)
{
	for (int i = 0; i < virtio_ndevs; i++)
		if (virtio_devs[i].type == type && !virtio_devs[i].driver && !virtio_devs[i].failed)
			return &virtio_devs[i];
	return NULL;
}

int virtio_fail(struct virtio_dev *vd, const char *why)
{
	printf("virtio %s: %s; device marked FAILED\n", virtio_dev_name(vd), why);
	vd->ops->set_status(vd, vd->ops->get_status(vd) | VIRTIO_STATUS_FAILED);
	vd->failed = true;
	event_emit("virtio_failed", "\"device\":\"%s\",\"why\":\"%s\"", virtio_dev_name(vd), why);
	return -EIO;
}

/* ---------------------------------------------------------------- interrupts */

static void config_work_fn(struct work *w)
{
	struct virtio_dev *vd = (struct virtio_dev *)((char *)w - __builtin_offsetof(struct virtio_dev, config_work));
	virtio_status(vd);
	if (vd->on_config)
		vd->on_config(vd);
}

static void queue_work_fn(struct work *w)
{
	struct virtio_dev *vd = (struct virtio_dev *)((char *)w - __builtin_offsetof(struct virtio_dev, queue_work));
	if (vd->on_queue)
		vd->on_queue(vd);
}

bool virtio_interrupt(struct virtio_dev *vd)
{
	uint8_t why = vd->ops->interrupt_status(vd);
	if (why & VIRTIO_INT_QUEUE) {
		vd->queue_irqs++;
		work_queue(&vd->queue_work);
	}
	if (why & VIRTIO_INT_CONFIG) {
		vd->config_irqs++;
		work_queue(&vd->config_work);
	}
	return why & (VIRTIO_INT_QUEUE | VIRTIO_INT_CONFIG);
}

static void poll_all(void)
{
	for (int i = 0; i < virtio_ndevs; i++)
		if (virtio_devs[i].irq_mode == VIRTIO_IRQ_POLL)
			virtio_interrupt(&virtio_devs[i]);
}

CMDLINE_OPTION(virtio_irq, "virtio.irq", "force the interrupt kind for virtio devices: intx|poll");
CMDLINE_OPTION(virtio_packed, "virtio.packed", "off: refuse packed virtqueues (VIRTIO_F_RING_PACKED), use split rings");

/* ---------------------------------------------------------------- bring-up */

int virtio_start(struct virtio_dev *vd, uint64_t wanted)
{
	const struct virtio_ops *ops = vd->ops;
	vd->config_work.fn = config_work_fn;
	vd->queue_work.fn = queue_work_fn;
	ops->set_status(vd, 0);
	uint64_t start = clock_ms();
	while (ops->get_status(vd) != 0)
		if (clock_ms() - start > 1000)
			return virtio_fail(vd, "reset did not complete within 1 s");
	ops->set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE);
	ops->set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vd->device_features = ops->get_features(vd);
	if (!vd->legacy && !(vd->device_features & (1ULL << VIRTIO_F_VERSION_1)))
		return virtio_fail(vd, "device does not offer VIRTIO_F_VERSION_1");
	const char *packed = cmdline_get("virtio.packed");
	wanted |= 1ULL << VIRTIO_F_VERSION_1 | vq_driver_features(!(packed && strcmp(packed, "off") == 0));
	if (vd->legacy) /* 32 bits: no VERSION_1, no RING_PACKED, whatever the device claims */
		wanted &= 0xffffffffULL;
	vd->features = vd->device_features & wanted;
	ops->set_features(vd, vd->features);
	/* A legacy device has no FEATURES_OK: it takes what it is given. */
	if (!vd->legacy) {
		ops->set_status(vd, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
		if (!(ops->get_status(vd) & VIRTIO_STATUS_FEATURES_OK))
			return virtio_fail(vd, "device refused the negotiated features (FEATURES_OK cleared)");
	}
	vd->num_queues = ops->num_queues(vd);

	const char *force = cmdline_get("virtio.irq");
	bool poll = virtio_poll_devices || (force && strcmp(force, "poll") == 0) || !ioapic_present();
	ops->irq_choose(vd, poll, force);
	return 0;
}

int virtio_setup_queue(struct virtio_dev *vd, uint16_t index, uint16_t max_size)
{
	if (index >= vd->num_queues || index >= VIRTIO_MAX_QUEUES || max_size == 0)
		return -EINVAL;
	/* Checked before anything is allocated: a refused device keeps nothing. */
	int max = vd->ops->queue_max(vd, index);
	if (max < 0)
		return max;
	if (max == 0)
		return -ENOENT;
	if (max > VQ_MAX_SIZE) {
		char why[80];
		snprintf(why, sizeof(why), "queue %u offers %d entries, more than the %u a split ring can have",
			 index, max, VQ_MAX_SIZE);
		return virtio_fail(vd, why);
	}
	uint16_t size = 1;
	while (size * 2 <= max) /* a split ring's size is a power of two (2.7) */
		size *= 2;
	while (size > max_size && !vd->ops->fixed_queue_size)
		size /= 2;
	if (vd->ops->fixed_queue_size && size != max) { /* queue_max checks; this is the last word */
		char why[80];
		snprintf(why, sizeof(why), "queue %u has size %d, not a power of two", index, max);
		return virtio_fail(vd, why);
	}
	/* The layout the features chose (split or packed), and where legacy
	 * transports fix the split ring's used ring (4096). */
	struct vq_config cfg = vq_config_for(vd->features, MAX_INDIRECT);
	cfg.used_align = vd->ops->used_align;
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
	if (rc == 0)
		rc = vd->ops->queue_enable(vd, index, size, vq_desc_addr(vq), vq_avail_addr(vq), vq_used_addr(vq));
	if (rc < 0) {
		vq_destroy(vq);
		free(vq);
		mm_free_dma(mem, bytes);
		return rc;
	}
	vd->queues[index] = vq;
	vd->queue_mem[index] = mem;
	vd->queue_mem_bytes[index] = bytes;
	return 0;
}

static const char *const irq_modes[] = { "none", "intx", "msix", "poll" };

int virtio_ready(struct virtio_dev *vd, virtio_cb on_config, virtio_cb on_queue)
{
	vd->on_config = on_config;
	vd->on_queue = on_queue;
	if (vd->irq_mode == VIRTIO_IRQ_INTX) {
		int rc = vd->ops->irq_wire(vd);
		if (rc < 0) {
			printf("virtio %s: interrupt line not routable (%d); polling instead\n", virtio_dev_name(vd), rc);
			vd->irq_mode = VIRTIO_IRQ_POLL;
		}
	}
	static bool polling;
	if (vd->irq_mode == VIRTIO_IRQ_POLL && !polling) {
		polling = true; /* one timer polls every polled device */
		work_add_poll(poll_all, 10 * 1000 * 1000);
	}
	vd->ops->set_status(vd, vd->ops->get_status(vd) | VIRTIO_STATUS_DRIVER_OK);
	event_emit("virtio_ready", "\"device\":\"%s\",\"transport\":\"%s\",\"pci_device\":%u,\"mmio_base\":%lu,"
		   "\"features\":%lu,\"irq\":\"%s\",\"gsi\":%d,\"queues\":%u", virtio_dev_name(vd), vd->ops->name,
		   vd->pci ? vd->pci->device : 0, (unsigned long)vd->mmio_base, (unsigned long)vd->features,
		   irq_modes[vd->irq_mode], vd->irq_mode == VIRTIO_IRQ_INTX ? vd->gsi : -1, vd->num_queues);
	return 0;
}

void virtio_notify(struct virtio_dev *vd, uint16_t index)
{
	struct vq *vq = index < VIRTIO_MAX_QUEUES ? vd->queues[index] : NULL;
	if (vq && vq_kick_prepare(vq))
		vd->ops->notify(vd, index);
}

int virtio_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len)
{
	return vd->ops->config_read(vd, off, buf, len);
}

int virtio_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v)
{
	return vd->ops->config_write32(vd, off, v);
}

uint8_t virtio_status(struct virtio_dev *vd)
{
	uint8_t s = vd->ops->get_status(vd);
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
		uint8_t s = virtio_status(vd);
		char where[80];
		vd->ops->describe(vd, where, sizeof(where));
		printf("%s status %#x%s%s, interrupts: %s", where, s,
		       (s & VIRTIO_STATUS_DRIVER_OK) ? " DRIVER_OK" : "", vd->failed ? " FAILED" : "", modes[vd->irq_mode]);
		if (vd->irq_mode == VIRTIO_IRQ_INTX)
			printf(" (GSI %d, line fired %lu)", vd->gsi,
			       (unsigned long)(vd->pci ? pci_intx_count(vd->gsi) : vd->irqs));
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
		event_emit("virtio_device", "\"device\":\"%s\",\"transport\":\"%s\",\"pci_device\":%u,\"mmio_base\":%lu,"
			   "\"status\":%u,\"features\":%lu,\"device_features\":%lu,\"irq\":\"%s\",\"gsi\":%d,\"irqs\":%lu,"
			   "\"config_irqs\":%lu,\"queue_irqs\":%lu",
			   virtio_dev_name(vd), vd->ops->name, vd->pci ? vd->pci->device : 0, (unsigned long)vd->mmio_base,
			   s, (unsigned long)vd->features, (unsigned long)vd->device_features, modes[vd->irq_mode],
			   vd->irq_mode == VIRTIO_IRQ_INTX ? vd->gsi : -1, (unsigned long)vd->irqs,
			   (unsigned long)vd->config_irqs, (unsigned long)vd->queue_irqs);
	}
	if (virtio_ndevs == 0)
		printf("no virtio devices\n");
	return 0;
}
SHELL_COMMAND(virtio, "", "virtio devices: status, features, queues, interrupts", cmd_virtio);
