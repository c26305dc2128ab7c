/*
 * pci_irq: device interrupts. Legacy INTx follows the chipset's wiring (the
 * table in pci.h) to an IOAPIC input; every device on one input shares one
 * vector, and each handler on it checks its own device, because a
 * level-triggered line that nobody quiets fires again at once. MSI-X
 * (PCI Local Bus 3.0, 6.8.2) writes a message straight to the local APIC.
 */
#include <errno.h>
#include <stdio.h>
#include "pci.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "kernel/acpi.h"
#include "kernel/addr.h"

#define MAX_LINES 8    /* q35 has 8 PIRQs, pc 4 */
#define MAX_SHARERS 4

struct intx_line {
	int gsi, vector, n;
	struct {
		irq_handler_fn fn;
		void *ctx;
	} h[MAX_SHARERS];
	uint64_t count;
};

static struct intx_line lines[MAX_LINES];
static int nlines;

/* ---------------------------------------------------------------- routing */

/* The function at 00:dev.fn, or NULL. */
static const struct pci_dev *bus0(uint8_t dev, uint8_t fn)
{
	for (int i = 0; i < pci_ndevs; i++)
		if (pci_devs[i].bus == 0 && pci_devs[i].dev == dev && pci_devs[i].fn == fn)
			return &pci_devs[i];
	return NULL;
}

/*
 * ICH9's PIRQ for bus-0 slot `slot`, pin `pin` (0 = INTA). Slots 25-31
 * are the chipset's own: their D<slot>IR registers in the root complex
 * register block decide, and QEMU resets them to 0x3210 (pin n -> PIRQ n).
 * The block is read when the firmware enabled it (SeaBIOS does), else the
 * reset value is what QEMU uses.
 */
static int q35_pirq(unsigned slot, unsigned pin)
{
	static const uint16_t dir_reg[7] = { 0x3150, 0x314c, 0x3148, 0x3146, 0x3144, 0, 0x3140 };
	if (slot < 25)
		return (int)((slot + pin) % 4 + 4);
	if (slot == 30)
		return (int)pin + 4; /* D30IR reads 0: QEMU wires its INTx to PIRQ E-H */
	uint16_t ir = 0x3210;
	const struct pci_dev *lpc = bus0(31, 0);
	if (lpc && lpc->vendor == 0x8086) {
		uint32_t rcba = pci_read32(lpc, 0xf0);
		uint64_t base = rcba & 0xffffc000u;
		if ((rcba & 1) && base && paging_map_mmio(base, 0x4000) == 0)
			ir = *(volatile uint16_t *)phys_to_virt(base + dir_reg[slot - 25]);
	}
	return (ir >> (4 * pin)) & 7;
}

int pci_intx_route(const struct pci_dev *d, struct pci_intx_route *r)
{
	if (d->irq_pin == 0)
		return -ENODEV;
	unsigned pin = d->irq_pin - 1, slot = d->dev;
	for (const struct pci_dev *b = d->parent_bridge; b; b = b->parent_bridge) {
		pin = (pin + slot) % 4; /* the bridge swizzle */
		slot = b->dev;
	}
	r->level = true; /* PCI INTx is level-triggered by definition */
	r->active_low = false;
	if (pci_chipset_id() == PCI_CHIPSET_Q35) {
		r->pirq = q35_pirq(slot, pin);
		r->gsi = 16 + r->pirq;
		return 0;
	}
	if (pci_chipset_id() == PCI_CHIPSET_PC) {
		const struct pci_dev *piix = bus0(1, 0);
		if (!piix || piix->vendor != 0x8086 || piix->device != 0x7000) {
			printf("pci: no PIIX3 at 00:01.0; cannot route INTx\n");
			return -ENODEV;
		}
		r->pirq = (int)((slot + 3 + pin) % 4); /* PIIX3 counts slots from 1 here */
		uint8_t irq = pci_read8(piix, 0x60 + r->pirq);
		if (irq & 0x80 || irq == 0 || irq > 15) {
			printf("pci %02x:%02x.%x: PIRQ %c route register %#x: unrouted by the firmware\n",
			       d->bus, d->dev, d->fn, 'A' + r->pirq, irq);
			return -ENODEV;
		}
		r->gsi = irq;
		for (int i = 0; i < acpi.n_overrides; i++)
			if (acpi.overrides[i].isa_irq == irq) {
				r->gsi = (int)acpi.overrides[i].gsi;
				r->active_low = acpi.overrides[i].active_low;
			}
		return 0;
	}
	return -ENODEV;
}

int pci_intx_gsi(const struct pci_dev *d)
{
	struct pci_intx_route r;
	int rc = pci_intx_route(d, &r);
	return rc < 0 ? rc : r.gsi;
}

/* ---------------------------------------------------------------- INTx */

/* Ask every device on the line; those that did not interrupt say so by
 * finding their own status clear. */
static void line_dispatch(void *ctx)
{
	struct intx_line *l = ctx;
	l->count++;
	for (int i = 0; i < l->n; i++)
		l->h[i].fn(l->h[i].ctx);
}

int pci_enable_intx(struct pci_dev *d, irq_handler_fn fn, void *ctx)
{
	struct pci_intx_route r;
	int rc = pci_intx_route(d, &r);
	if (rc < 0)
		return rc;
	struct intx_line *l = NULL;
	for (int i = 0; i < nlines; i++)
		if (lines[i].gsi == r.gsi)
			l = &lines[i];
	if (!l) {
		if (nlines == MAX_LINES)
			return -ENOSPC;
		int v = irq_alloc_vector();
		if (v < 0)
			return v;
		l = &lines[nlines];
		l->gsi = r.gsi;
		l->vector = v;
		l->n = 0;
		if ((rc = irq_set_handler(v, line_dispatch, l)) < 0)
			return rc;
		nlines++;
	}
	if (l->n == MAX_SHARERS)
		return -ENOSPC;
	bool was = irq_save();
	l->h[l->n].fn = fn;
	l->h[l->n].ctx = ctx;
	l->n++;
	irq_restore(was);
	pci_write16(d, 0x04, pci_read16(d, 0x04) & ~(1 << 10)); /* INTx not disabled */
	if (l->n == 1 && (rc = ioapic_route_gsi((uint32_t)r.gsi, l->vector, r.level, r.active_low)) < 0)
		return rc;
	return r.gsi;
}

uint64_t pci_intx_count(int gsi)
{
	for (int i = 0; i < nlines; i++)
		if (lines[i].gsi == gsi)
			return lines[i].count;
	return 0;
}

/* ---------------------------------------------------------------- MSI-X */

int pci_msix_enable(struct pci_dev *d)
{
	if (!d->msix_cap)
		return -ENODEV;
	uint32_t table = pci_read32(d, d->msix_cap + 4);
	int bir = table & 7;
	uint64_t off = table & ~7u;
	if (bir > 5 || d->bar[bir].io || off + (uint64_t)d->msix_size * 16 > d->bar[bir].size) {
		printf("pci %02x:%02x.%x: MSI-X table (BAR %d + %#lx, %u entries) lies outside its BAR; "
		       "MSI-X not used\n", d->bus, d->dev, d->fn, bir, (unsigned long)off, d->msix_size);
		return -EINVAL;
	}
	volatile uint8_t *table_va = pci_map_bar(d, bir, off, (uint64_t)d->msix_size * 16);
	if (!table_va)
		return -ENOMEM;
	d->msix_table = (volatile uint32_t *)table_va;
	for (uint16_t i = 0; i < d->msix_size; i++)
		d->msix_table[i * 4 + 3] = 1; /* masked until given a vector */
	uint16_t ctl = pci_read16(d, d->msix_cap + 2);
	pci_write16(d, d->msix_cap + 2, (ctl | 0x8000) & ~0x4000); /* enable, function unmasked */
	pci_write16(d, 0x04, pci_read16(d, 0x04) | (1 << 10));      /* INTx off */
	return 0;
}

void pci_msix_disable(struct pci_dev *d)
{
	if (!d->msix_cap)
		return;
	pci_write16(d, d->msix_cap + 2, pci_read16(d, d->msix_cap + 2) & ~0x8000);
	pci_write16(d, 0x04, pci_read16(d, 0x04) & ~(1 << 10));
	d->msix_table = NULL;
}

int pci_msix_set_vector(struct pci_dev *d, uint16_t entry, int vector)
{
	if (!d->msix_table || entry >= d->msix_size || vector < 0x20 || vector > 0xfe)
		return -EINVAL;
	volatile uint32_t *e = &d->msix_table[entry * 4];
	e[0] = 0xfee00000u | (lapic_id() << 12); /* this CPU, physical destination */
	e[1] = 0;
	e[2] = (uint32_t)vector;                  /* fixed delivery, edge */
	e[3] = 0;                                 /* unmasked */
	return 0;
}
