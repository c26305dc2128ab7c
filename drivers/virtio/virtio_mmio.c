/*
 * virtio_mmio: virtio over memory-mapped registers, version 2 and version 1
 * (see virtio_mmio.h; virtio 1.2, 4.2.2 and 4.2.4). The bring-up order and
 * the queues are virtio.c's; here are the registers behind struct
 * virtio_ops, the command-line discovery and the IOAPIC line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "virtio.h"
#include "virtio_mmio.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/mmio.h"
#include "arch/x86_64/paging.h"
#include "kernel/acpi.h"
#include "kernel/addr.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"

CMDLINE_OPTION(virtio_mmio_device, "virtio_mmio.device",
	       "a virtio-mmio device: <size>@<base>:<irq>[:<id>] (QEMU microvm adds these with acpi=off)");

static uint32_t rd32(struct virtio_dev *vd, unsigned off) { return mmio_read32(vd->mmio + off); }
static void wr32(struct virtio_dev *vd, unsigned off, uint32_t v) { mmio_write32(vd->mmio + off, v); }

/* ---------------------------------------------------------------- registers */

static uint8_t mmio_get_status(struct virtio_dev *vd)
{
	return (uint8_t)rd32(vd, VIRTIO_MMIO_STATUS);
}

static void mmio_set_status(struct virtio_dev *vd, uint8_t s)
{
	wr32(vd, VIRTIO_MMIO_STATUS, s);
}

/* Version 1 has 32 feature bits (a legacy device: 4.2.4). */
static uint64_t mmio_get_features(struct virtio_dev *vd)
{
	wr32(vd, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = rd32(vd, VIRTIO_MMIO_DEVICE_FEATURES);
	if (vd->legacy)
		return lo;
	wr32(vd, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)rd32(vd, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void mmio_set_features(struct virtio_dev *vd, uint64_t f)
{
	wr32(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr32(vd, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	if (vd->legacy)
		return;
	wr32(vd, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr32(vd, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

/* mmio does not say how many queues there are: each is asked, and the
 * count is up to the last with a QueueNumMax (0: no such queue). */
static uint16_t mmio_num_queues(struct virtio_dev *vd)
{
	uint16_t n = 0;
	for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		wr32(vd, VIRTIO_MMIO_QUEUE_SEL, q);
		if (rd32(vd, VIRTIO_MMIO_QUEUE_NUM_MAX) != 0)
			n = (uint16_t)(q + 1);
	}
	return n;
}

/* A queue must not be in use before the driver sets it up (4.2.3.2):
 * QueueReady (v2) or QueuePFN (v1) reading non-zero after a reset is a lie. */
static int mmio_queue_max(struct virtio_dev *vd, uint16_t index)
{
	wr32(vd, VIRTIO_MMIO_QUEUE_SEL, index);
	uint32_t in_use = rd32(vd, vd->legacy ? VIRTIO_MMIO_QUEUE_PFN : VIRTIO_MMIO_QUEUE_READY);
	uint32_t max = rd32(vd, VIRTIO_MMIO_QUEUE_NUM_MAX);
	char why[100];
	if (in_use) {
		snprintf(why, sizeof(why), "queue %u reads %s %#x before it was set up", index,
			 vd->legacy ? "QueuePFN" : "QueueReady", in_use);
		return virtio_fail(vd, why);
	}
	if (max > 0xffff) { /* virtio.c refuses anything above 32768 with the figure */
		snprintf(why, sizeof(why), "queue %u has QueueNumMax %u, more than 16 bits", index, max);
		return virtio_fail(vd, why);
	}
	return (int)max;
}

/*
 * Version 2 takes the three ring addresses. Version 1 takes one page
 * number and computes the rest itself (2.7.2 legacy layout): the available
 * ring right after the descriptors, the used ring at the next QueueAlign
 * boundary. blimp's rings are one block with the used ring 64-byte aligned,
 * so QueueAlign is 64 — and the device's sum is checked against the ring
 * before the device is told, never assumed.
 */
static int mmio_queue_enable(struct virtio_dev *vd, uint16_t index, uint16_t size, uint64_t desc,
			     uint64_t avail, uint64_t used)
{
	char why[120];
	wr32(vd, VIRTIO_MMIO_QUEUE_SEL, index);
	wr32(vd, VIRTIO_MMIO_QUEUE_NUM, size);
	if (vd->legacy) {
		const uint64_t align = 64;
		uint64_t device_avail = desc + 16 * (uint64_t)size;
		uint64_t device_used = (device_avail + 4 + 2 * (uint64_t)size + align - 1) & ~(align - 1);
		if ((desc & (VIRTIO_MMIO_LEGACY_PAGE - 1)) || desc / VIRTIO_MMIO_LEGACY_PAGE > UINT32_MAX ||
		    avail != device_avail || used != device_used) {
			snprintf(why, sizeof(why), "queue %u: rings at %#lx/%#lx/%#lx do not fit the legacy layout",
				 index, (unsigned long)desc, (unsigned long)avail, (unsigned long)used);
			printf("virtio %s: %s\n", virtio_dev_name(vd), why);
			return -EINVAL;
		}
		uint32_t pfn = (uint32_t)(desc / VIRTIO_MMIO_LEGACY_PAGE);
		wr32(vd, VIRTIO_MMIO_GUEST_PAGE_SIZE, VIRTIO_MMIO_LEGACY_PAGE);
		wr32(vd, VIRTIO_MMIO_QUEUE_ALIGN, (uint32_t)align);
		wr32(vd, VIRTIO_MMIO_QUEUE_PFN, pfn);
		uint32_t back = rd32(vd, VIRTIO_MMIO_QUEUE_PFN);
		if (back != pfn) {
			snprintf(why, sizeof(why), "queue %u: QueuePFN reads %#x after %#x was written", index, back, pfn);
			return virtio_fail(vd, why);
		}
		return 0;
	}
	wr32(vd, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr32(vd, VIRTIO_MMIO_QUEUE_DESC_LOW + 4, (uint32_t)(desc >> 32));
	wr32(vd, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
	wr32(vd, VIRTIO_MMIO_QUEUE_DRIVER_LOW + 4, (uint32_t)(avail >> 32));
	wr32(vd, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
	wr32(vd, VIRTIO_MMIO_QUEUE_DEVICE_LOW + 4, (uint32_t)(used >> 32));
	wr32(vd, VIRTIO_MMIO_QUEUE_READY, 1);
	uint32_t ready = rd32(vd, VIRTIO_MMIO_QUEUE_READY);
	if (ready != 1) {
		snprintf(why, sizeof(why), "queue %u: QueueReady reads %#x after 1 was written", index, ready);
		return virtio_fail(vd, why);
	}
	return 0;
}

static void mmio_notify(struct virtio_dev *vd, uint16_t index)
{
	wr32(vd, VIRTIO_MMIO_QUEUE_NOTIFY, index);
}

static void read_config(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len)
{
	volatile uint8_t *cfg = vd->mmio + VIRTIO_MMIO_CONFIG;
	for (uint32_t i = 0; i < len;) {
		if (!((off + i) & 3) && len - i >= 4) {
			uint32_t v = mmio_read32(cfg + off + i);
			memcpy((uint8_t *)buf + i, &v, 4);
			i += 4;
		} else {
			((uint8_t *)buf)[i] = mmio_read8(cfg + off + i);
			i++;
		}
	}
}

/* v2: under ConfigGeneration (4.2.2, 2.5.1). v1 has no generation: the
 * bytes are read until two reads in a row agree. Bounded either way. */
static int mmio_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len)
{
	uint32_t cfg_len = (uint32_t)(vd->mmio_size - VIRTIO_MMIO_CONFIG);
	if (off > cfg_len || len > cfg_len - off)
		return -EIO;
	uint8_t again[256];
	if (vd->legacy && len > sizeof(again))
		return -EIO;
	for (int tries = 0; tries < 16; tries++) {
		if (vd->legacy) {
			read_config(vd, off, buf, len);
			read_config(vd, off, again, len);
			if (memcmp(buf, again, len) == 0)
				return 0;
			continue;
		}
		uint32_t gen = rd32(vd, VIRTIO_MMIO_CONFIG_GENERATION);
		read_config(vd, off, buf, len);
		if (rd32(vd, VIRTIO_MMIO_CONFIG_GENERATION) == gen)
			return 0;
	}
	printf("virtio %s: configuration kept changing while read\n", virtio_dev_name(vd));
	return -EIO;
}

static int mmio_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v)
{
	uint32_t cfg_len = (uint32_t)(vd->mmio_size - VIRTIO_MMIO_CONFIG);
	if (off > cfg_len || 4 > cfg_len - off || (off & 3))
		return -EIO;
	mmio_write32(vd->mmio + VIRTIO_MMIO_CONFIG + off, v);
	return 0;
}

/* InterruptStatus says why (bit 0 used buffer, bit 1 configuration change);
 * writing the same bits to InterruptACK lowers the line (4.2.2). Other bits
 * mean nothing and are neither acknowledged nor acted on. */
static uint8_t mmio_interrupt_status(struct virtio_dev *vd)
{
	uint32_t s = rd32(vd, VIRTIO_MMIO_INTERRUPT_STATUS) & (VIRTIO_INT_QUEUE | VIRTIO_INT_CONFIG);
	if (s)
		wr32(vd, VIRTIO_MMIO_INTERRUPT_ACK, s);
	return (uint8_t)s;
}

/* ---------------------------------------------------------------- interrupts */

static void line_handler(void *ctx)
{
	struct virtio_dev *vd = ctx;
	if (virtio_interrupt(vd))
		vd->irqs++;
}

/* The GSI from the command line, through the IOAPIC; polled without one. */
static void mmio_irq_choose(struct virtio_dev *vd, bool poll, const char *force)
{
	(void)force; /* intx is what mmio has anyway; poll is handled by virtio.c */
	vd->irq_mode = poll ? VIRTIO_IRQ_POLL : VIRTIO_IRQ_INTX;
}

/* One line per device: a GSI another mmio device already holds is refused
 * (the handler would not know whose it is), and the device is polled. */
static int wired_gsi[VIRTIO_MAX_DEVICES];
static int n_wired;

static int mmio_irq_wire(struct virtio_dev *vd)
{
	for (int i = 0; i < n_wired; i++)
		if (wired_gsi[i] == vd->gsi)
			return -EBUSY;
	if (n_wired == VIRTIO_MAX_DEVICES)
		return -ENOSPC;
	int v = irq_alloc_vector();
	if (v < 0)
		return v;
	int rc = irq_set_handler(v, line_handler, vd);
	if (rc < 0)
		return rc;
	/* microvm describes its virtio-mmio lines as level-triggered, active-high. */
	rc = ioapic_route_gsi((uint32_t)vd->gsi, v, true, false);
	if (rc == 0)
		wired_gsi[n_wired++] = vd->gsi;
	return rc;
}

static void mmio_describe(const struct virtio_dev *vd, char *buf, size_t n)
{
	snprintf(buf, n, "mmio %#lx v%u %s", (unsigned long)vd->mmio_base, vd->mmio_version, virtio_dev_name(vd));
}

/* Versions 1 and 2 share the registers and these functions (each looks
 * at vd->mmio_version where they differ); only the name differs, so events
 * and the shell say which. */
#define MMIO_OPS(transport_name)                                                                           \
	{                                                                                                  \
		.name = transport_name, .get_status = mmio_get_status, .set_status = mmio_set_status,      \
		.get_features = mmio_get_features, .set_features = mmio_set_features,                      \
		.num_queues = mmio_num_queues, .queue_max = mmio_queue_max,                                \
		.queue_enable = mmio_queue_enable, .notify = mmio_notify, .config_read = mmio_config_read, \
		.config_write32 = mmio_config_write32, .interrupt_status = mmio_interrupt_status,          \
		.irq_choose = mmio_irq_choose, .irq_wire = mmio_irq_wire, .describe = mmio_describe,       \
	}
static const struct virtio_ops mmio_ops = MMIO_OPS("mmio");
static const struct virtio_ops mmio_legacy_ops = MMIO_OPS("mmio-legacy");

/* ---------------------------------------------------------------- discovery */

/* A block is refused naming its command-line word, or (word NULL) the
 * DSDT's figures: formatted only here, not for each of microvm's 24. */
static void refuse(const char *word, const struct virtio_mmio_desc *d, const char *why)
{
	char esc[128], esc_why[128], name[64];
	if (!word) {
		snprintf(name, sizeof(name), "DSDT %#x@%#x:%u", (unsigned)d->size, (unsigned)d->base, d->irq);
		word = name;
	}
	printf("virtio_mmio.device=%s: %s; ignored\n", word, why);
	event_emit("virtio_mmio_refused", "\"device\":\"%s\",\"why\":\"%s\"",
		   event_json_escape(esc, sizeof(esc), word), event_json_escape(esc_why, sizeof(esc_why), why));
}

/* Map one block and check what it says about itself; add it if it is a
 * device. `word` names it in messages (NULL: the DSDT's, see refuse). */
static int probe_block(const char *word, const struct virtio_mmio_desc *d)
{
	char msg[80];
	for (int i = 0; i < virtio_ndevs; i++)
		if (virtio_devs[i].mmio && virtio_devs[i].mmio_base == d->base)
			return 0; /* named twice (command line and DSDT) */
	/* The DSDT's blocks share pages (microvm: 512 bytes each, eight to a
	 * page): a page mapped for one is not mapped again for the next. Each
	 * mapping took about 55 us under TCG, 1.3 ms of microvm's boot. */
	static uint64_t mapped_lo, mapped_hi;
	if (d->base < mapped_lo || d->base + d->size > mapped_hi) {
		if (paging_map_mmio(d->base, d->size) < 0) {
			refuse(word, d, "cannot map the block");
			return 0;
		}
		mapped_lo = d->base & ~(PAGE_SIZE - 1);
		mapped_hi = (d->base + d->size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	}
	volatile uint8_t *regs = (volatile uint8_t *)(uintptr_t)d->base;
	uint32_t magic = mmio_read32(regs + VIRTIO_MMIO_MAGIC_VALUE);
	uint32_t version = mmio_read32(regs + VIRTIO_MMIO_VERSION);
	uint32_t id = mmio_read32(regs + VIRTIO_MMIO_DEVICE_ID);
	if (magic != VIRTIO_MMIO_MAGIC) {
		snprintf(msg, sizeof(msg), "magic value %#x, not %#x (\"virt\")", magic, VIRTIO_MMIO_MAGIC);
		refuse(word, d, msg);
		return 0;
	}
	if (version != 1 && version != 2) {
		snprintf(msg, sizeof(msg), "version %u; blimp knows 1 (legacy) and 2", version);
		refuse(word, d, msg);
		return 0;
	}
	if (id == 0) /* a transport with nothing behind it (4.2.3.1.1) */
		return 0;
	struct virtio_dev *vd = virtio_new();
	if (!vd) {
		refuse(word, d, "no room for another virtio device");
		return 0;
	}
	vd->legacy = version == 1;
	vd->ops = vd->legacy ? &mmio_legacy_ops : &mmio_ops;
	vd->type = id;
	vd->mmio = regs;
	vd->mmio_base = d->base;
	vd->mmio_size = d->size;
	vd->mmio_version = version;
	vd->gsi = (int)d->irq;
	virtio_add(vd);
	printf("virtio-mmio: %s at %#lx, version %u%s, vendor %#x, GSI %u\n", virtio_dev_name(vd),
	       (unsigned long)d->base, version, vd->legacy ? " (legacy)" : "",
	       mmio_read32(regs + VIRTIO_MMIO_VENDOR_ID), d->irq);
	return 1;
}

int virtio_mmio_probe(bool poll)
{
	int found = 0;
	virtio_poll_devices = virtio_poll_devices || poll;
	const char *word, *why;
	struct virtio_mmio_desc d;
	for (int i = 0; (word = cmdline_get_nth("virtio_mmio.device", i)) != NULL; i++) {
		if (virtio_mmio_parse_device(word, &d, &why) < 0)
			refuse(word, &d, why);
		else
			found += probe_block(word, &d);
	}
	for (int i = 0; i < acpi.n_mmio; i++) {
		d = (struct virtio_mmio_desc){ .base = acpi.mmio[i].base, .size = acpi.mmio[i].size,
					       .irq = acpi.mmio[i].gsi };
		if (virtio_mmio_check(&d, &why) < 0)
			refuse(NULL, &d, why);
		else
			found += probe_block(NULL, &d);
	}
	return found;
}
