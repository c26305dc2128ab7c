/*
 * pci: see pci.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "pci.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "kernel/acpi.h"
#include "kernel/addr.h"
#include "kernel/event.h"
#include "kernel/shell.h"

struct pci_dev pci_devs[PCI_MAX_DEVICES];
int pci_ndevs;
static bool use_ecam;
static enum { CHIP_UNKNOWN, CHIP_Q35, CHIP_PC } chipset;

/* ---------------------------------------------------------------- config */

static volatile void *ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return phys_to_virt(acpi.ecam_base + ((uint64_t)(bus - acpi.ecam_bus_start) << 20) +
			    ((uint64_t)dev << 15) + ((uint64_t)fn << 12) + off);
}

static uint32_t cfg_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (use_ecam)
		return *(volatile uint32_t *)ecam_addr(bus, dev, fn, off & ~3);
	outl(0xcf8, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc));
	return inl(0xcfc);
}

static void cfg_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
	if (use_ecam) {
		*(volatile uint32_t *)ecam_addr(bus, dev, fn, off & ~3) = v;
		return;
	}
	outl(0xcf8, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc));
	outl(0xcfc, v);
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off) { return cfg_read32(d->bus, d->dev, d->fn, off); }
uint16_t pci_read16(const struct pci_dev *d, uint16_t off) { return (uint16_t)(pci_read32(d, off) >> ((off & 2) * 8)); }
uint8_t pci_read8(const struct pci_dev *d, uint16_t off) { return (uint8_t)(pci_read32(d, off) >> ((off & 3) * 8)); }
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v) { cfg_write32(d->bus, d->dev, d->fn, off, v); }

void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v)
{
	uint32_t old = pci_read32(d, off & ~3);
	unsigned shift = (off & 2) * 8;
	pci_write32(d, off & ~3, (old & ~(0xffffu << shift)) | ((uint32_t)v << shift));
}

/* ---------------------------------------------------------------- scan */

static void size_bars(struct pci_dev *d)
{
	int nbars = (d->header_type & 0x7f) == 0 ? 6 : (d->header_type & 0x7f) == 1 ? 2 : 0;
	uint16_t cmd = pci_read16(d, 0x04);
	pci_write16(d, 0x04, cmd & ~3); /* no decoding while BARs read all-ones */
	for (int i = 0; i < nbars; i++) {
		uint16_t off = 0x10 + 4 * i;
		uint32_t lo = pci_read32(d, off);
		struct pci_bar *b = &d->bar[i];
		b->io = lo & 1;
		b->is64 = !b->io && ((lo >> 1) & 3) == 2;
		pci_write32(d, off, 0xffffffff);
		uint32_t mask_lo = pci_read32(d, off);
		pci_write32(d, off, lo);
		uint64_t base = lo & (b->io ? ~3u : ~15u), mask = mask_lo & (b->io ? ~3u : ~15u);
		if (b->is64 && i < 5) {
			uint32_t hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffff);
			uint32_t mask_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
			base |= (uint64_t)hi << 32;
			mask |= (uint64_t)mask_hi << 32;
		} else {
			mask |= b->io ? 0xffff0000ULL : 0xffffffff00000000ULL;
		}
		b->base = base;
		b->size = mask ? (~mask + 1) & (b->io ? 0xffff : UINT64_MAX) : 0;
		if (b->is64)
			i++; /* the next slot is this BAR's high half */
	}
	pci_write16(d, 0x04, cmd);
}

static void scan_bus(uint8_t bus, struct pci_dev *bridge, int depth);

static void add_function(uint8_t bus, uint8_t dev, uint8_t fn, struct pci_dev *bridge, int depth)
{
	uint32_t id = cfg_read32(bus, dev, fn, 0);
	if ((id & 0xffff) == 0xffff || pci_ndevs == PCI_MAX_DEVICES)
		return;
	struct pci_dev *d = &pci_devs[pci_ndevs++];
	memset(d, 0, sizeof(*d));
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->vendor = id & 0xffff;
	d->device = id >> 16;
	d->class_code = pci_read32(d, 0x08) >> 8;
	d->header_type = pci_read8(d, 0x0e);
	d->irq_pin = pci_read8(d, 0x3d);
	if (d->irq_pin > 4)
		d->irq_pin = 0; /* nonsense from the device: treat as none */
	d->parent_bridge = bridge;
	size_bars(d);
	if (bus == 0 && dev == 0 && fn == 0 && d->vendor == 0x8086)
		chipset = d->device == 0x29c0 ? CHIP_Q35 : d->device == 0x1237 ? CHIP_PC : CHIP_UNKNOWN;
	if ((d->header_type & 0x7f) == 1 && depth < 8) {
		uint8_t secondary = pci_read8(d, 0x19);
		if (secondary > bus)
			scan_bus(secondary, d, depth + 1);
	}
}

static void scan_bus(uint8_t bus, struct pci_dev *bridge, int depth)
{
	for (uint8_t dev = 0; dev < 32; dev++) {
		if ((cfg_read32(bus, dev, 0, 0) & 0xffff) == 0xffff)
			continue;
		bool multi = cfg_read32(bus, dev, 0, 0x0c) & (0x80 << 16);
		for (uint8_t fn = 0; fn < (multi ? 8 : 1); fn++)
			add_function(bus, dev, fn, bridge, depth);
	}
}

int pci_scan(void)
{
	use_ecam = acpi.have_mcfg && acpi.ecam_segment == 0 && acpi.ecam_bus_start == 0;
	if (use_ecam)
		paging_map_mmio(acpi.ecam_base, (uint64_t)(acpi.ecam_bus_end + 1) << 20);
	pci_ndevs = 0;
	scan_bus(0, NULL, 0);
	for (int i = 0; i < pci_ndevs; i++) {
		uint8_t c = pci_find_cap(&pci_devs[i], PCI_CAP_MSIX, 0);
		if (c) {
			pci_devs[i].msix_cap = c;
			pci_devs[i].msix_size = (pci_read16(&pci_devs[i], c + 2) & 0x7ff) + 1;
		}
	}
	return pci_ndevs;
}

const char *pci_chipset(void)
{
	return chipset == CHIP_Q35 ? "q35" : chipset == CHIP_PC ? "pc" : "unknown";
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after)
{
	if (!(pci_read16(d, 0x06) & (1 << 4)))
		return 0; /* no capability list */
	uint8_t p = after ? pci_read8(d, after + 1) : pci_read8(d, 0x34);
	/* At most 48 capabilities fit in 192 bytes: more means a loop. */
	for (int n = 0; p && n < 48; n++) {
		if (p < 0x40 || (p & 3)) {
			printf("pci %02x:%02x.%x: capability pointer %#x outside the capability area, "
			       "list ignored from there\n", d->bus, d->dev, d->fn, p);
			return 0;
		}
		if (pci_read8(d, p) == id)
			return p;
		p = pci_read8(d, p + 1);
	}
	if (p)
		printf("pci %02x:%02x.%x: capability list loops; ignored\n", d->bus, d->dev, d->fn);
	return 0;
}

volatile void *pci_map_bar(struct pci_dev *d, int i)
{
	struct pci_bar *b = &d->bar[i];
	if (i < 0 || i > 5 || b->io || b->size == 0 || b->base == 0) {
		printf("pci %02x:%02x.%x: BAR %d is not a memory BAR\n", d->bus, d->dev, d->fn, i);
		return NULL;
	}
	if (!b->mapped) {
		if (paging_map_mmio(b->base, b->size) < 0) {
			printf("pci %02x:%02x.%x: cannot map BAR %d at %#lx\n", d->bus, d->dev, d->fn, i,
			       (unsigned long)b->base);
			return NULL;
		}
		b->mapped = true;
		pci_write16(d, 0x04, pci_read16(d, 0x04) | 0x6); /* memory space, bus master */
	}
	return phys_to_virt(b->base);
}

/* ---------------------------------------------------------------- interrupts */

int pci_intx_gsi(const struct pci_dev *d)
{
	if (d->irq_pin == 0)
		return -ENODEV;
	unsigned pin = d->irq_pin - 1, slot = d->dev;
	for (const struct pci_dev *b = d->parent_bridge; b; b = b->parent_bridge) {
		pin = (pin + slot) % 4; /* the bridge swizzle */
		slot = b->dev;
	}
	if (chipset == CHIP_Q35)
		return 16 + (int)((slot + pin) % 4 + 4);
	if (chipset == CHIP_PC) {
		struct pci_dev piix = { .bus = 0, .dev = 1, .fn = 0 };
		/* PIIX3 counts slots from 1 here, unlike ICH9. */
		uint8_t irq = pci_read8(&piix, 0x60 + (slot + pin + 3) % 4);
		if (irq & 0x80 || irq == 0 || irq > 15)
			return -ENODEV; /* the firmware left this PIRQ unrouted */
		return irq;
	}
	return -ENODEV;
}

int pci_enable_intx(struct pci_dev *d, int vector)
{
	int gsi = pci_intx_gsi(d);
	if (gsi < 0)
		return gsi;
	pci_write16(d, 0x04, pci_read16(d, 0x04) & ~(1 << 10)); /* INTx not disabled */
	/* QEMU's IOAPIC ignores polarity; ACPI describes these lines active-high. */
	return ioapic_route_gsi((uint32_t)gsi, vector, true, false);
}

int pci_msix_enable(struct pci_dev *d)
{
	if (!d->msix_cap)
		return -ENODEV;
	uint32_t table = pci_read32(d, d->msix_cap + 4);
	int bir = table & 7;
	uint64_t off = table & ~7u;
	if (bir > 5 || off + (uint64_t)d->msix_size * 16 > d->bar[bir].size) {
		printf("pci %02x:%02x.%x: MSI-X table (BAR %d + %#lx, %u entries) lies outside its BAR\n",
		       d->bus, d->dev, d->fn, bir, (unsigned long)off, d->msix_size);
		return -EINVAL;
	}
	volatile uint8_t *base = pci_map_bar(d, bir);
	if (!base)
		return -ENOMEM;
	d->msix_table = (volatile uint32_t *)(base + off);
	for (uint16_t i = 0; i < d->msix_size; i++)
		d->msix_table[i * 4 + 3] = 1; /* masked until given a vector */
	uint16_t ctl = pci_read16(d, d->msix_cap + 2);
	pci_write16(d, d->msix_cap + 2, (ctl | 0x8000) & ~0x4000); /* enable, function unmasked */
	pci_write16(d, 0x04, pci_read16(d, 0x04) | (1 << 10));      /* INTx off */
	return 0;
}

int pci_msix_set_vector(struct pci_dev *d, uint16_t entry, int vector)
{
	if (!d->msix_table || entry >= d->msix_size)
		return -EINVAL;
	volatile uint32_t *e = &d->msix_table[entry * 4];
	e[0] = 0xfee00000u | (lapic_id() << 12);
	e[1] = 0;
	e[2] = (uint32_t)vector;
	e[3] = 0; /* unmasked */
	return 0;
}

/* ---------------------------------------------------------------- shell */

static int cmd_pci(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("chipset %s, configuration through %s\n", pci_chipset(), use_ecam ? "ECAM" : "ports 0xcf8/0xcfc");
	for (int i = 0; i < pci_ndevs; i++) {
		struct pci_dev *d = &pci_devs[i];
		printf("%02x:%02x.%x %04x:%04x class %06x", d->bus, d->dev, d->fn, d->vendor, d->device,
		       d->class_code);
		if (d->irq_pin)
			printf(" INT%c", 'A' + d->irq_pin - 1);
		if (d->msix_cap)
			printf(" MSI-X(%u)", d->msix_size);
		printf("\n");
		for (int b = 0; b < 6; b++)
			if (d->bar[b].size)
				printf("    BAR%d %s %#lx size %#lx%s\n", b, d->bar[b].io ? "io " : "mem",
				       (unsigned long)d->bar[b].base, (unsigned long)d->bar[b].size,
				       d->bar[b].is64 ? " 64-bit" : "");
		event_emit("pci_device", "\"bus\":%u,\"slot\":%u,\"function\":%u,\"vendor\":%u,\"device\":%u,"
			   "\"class\":%u,\"msix\":%u", d->bus, d->dev, d->fn, d->vendor, d->device,
			   d->class_code, d->msix_cap ? d->msix_size : 0);
	}
	return 0;
}
SHELL_COMMAND(pci, "", "list PCI devices: ids, class, BARs, MSI-X", cmd_pci);
