/*
 * pci_cap: what a function's configuration space says about it — BAR sizes
 * and addresses, the capability list, mapping a memory BAR (see pci.h).
 *
 * Everything here reads and writes configuration space only through
 * pci_read32 / pci_write32 (pci.c: ports 0xCF8/0xCFC or ECAM) and maps
 * only through paging_map_mmio, so the same file compiles into the kernel
 * and into the host fuzz harness (tests/fuzz/host/fuzz_pci.c), which plays
 * a device whose configuration space and BAR answers the fuzzer writes.
 */
#include <stdio.h>
#include "pci.h"
#include "arch/x86_64/paging.h"
#include "kernel/addr.h"

uint16_t pci_read16(const struct pci_dev *d, uint16_t off) { return (uint16_t)(pci_read32(d, off) >> ((off & 2) * 8)); }
uint8_t pci_read8(const struct pci_dev *d, uint16_t off) { return (uint8_t)(pci_read32(d, off) >> ((off & 3) * 8)); }

/*
 * Configuration writes are whole dwords, so a 16-bit write reads the other
 * half and writes it back. The status register (0x06) shares the command
 * register's dword, and its error bits are write-1-to-clear: writing back
 * what was read would wipe an error the device reported. Zeros there
 * change nothing (the rest of status is read-only).
 */
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v)
{
	uint32_t old = pci_read32(d, off & ~3);
	if ((off & ~3) == 0x04)
		old &= 0x0000ffff;
	unsigned shift = (off & 2) * 8;
	pci_write32(d, off & ~3, (old & ~(0xffffu << shift)) | ((uint32_t)v << shift));
}

void pci_size_bars(struct pci_dev *d)
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
		bool last = i == nbars - 1; /* a bridge has two BARs; 0x18 is its bus numbers */
		if (b->is64 && !last) {
			uint32_t hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xffffffff);
			uint32_t mask_hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
			base |= (uint64_t)hi << 32;
			mask |= (uint64_t)mask_hi << 32;
		} else if (mask) {
			mask |= b->io ? 0xffff0000ULL : 0xffffffff00000000ULL;
		}
		b->base = base;
		/* No writable bit: the BAR is not implemented (it must not read as 4 GiB). */
		b->size = mask ? (~mask + 1) & (b->io ? 0xffff : UINT64_MAX) : 0;
		/* The writable bits of a BAR are its high ones: a size that is not
		 * a power of two, or a 64-bit BAR with no room for its high half,
		 * is a device lying about itself. */
		if ((b->size & (b->size - 1)) || (b->is64 && last)) {
			printf("pci %02x:%02x.%x: BAR %d reads back mask %#lx%s; BAR ignored\n", d->bus, d->dev,
			       d->fn, i, (unsigned long)mask, b->is64 && last ? " as 64-bit in the last slot" : "");
			b->size = 0;
		}
		/* Nor can a BAR end past what a physical address can name. */
		if (b->size && !b->io && (b->base >= PAGING_PHYS_LIMIT || b->size > PAGING_PHYS_LIMIT - b->base)) {
			printf("pci %02x:%02x.%x: BAR %d at %#lx size %#lx ends past 2^52; BAR ignored\n", d->bus,
			       d->dev, d->fn, i, (unsigned long)b->base, (unsigned long)b->size);
			b->size = 0;
		}
		if (b->is64)
			i++; /* the next slot is this BAR's high half */
	}
	pci_write16(d, 0x04, cmd);
}

uint8_t pci_next_cap(const struct pci_dev *d, uint8_t at)
{
	if (!(pci_read16(d, 0x06) & (1 << 4)))
		return 0; /* no capability list */
	uint8_t p = at ? pci_read8(d, at + 1) : pci_read8(d, 0x34);
	if (p == 0)
		return 0;
	if (p < 0x40 || (p & 3)) {
		printf("pci %02x:%02x.%x: capability pointer %#x (after %#x) outside 0x40-0xfc or "
		       "misaligned; list ignored from there\n", d->bus, d->dev, d->fn, p, at);
		return 0;
	}
	return p;
}

uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after)
{
	/* At most 48 capabilities fit in 192 bytes: more means a loop. */
	int n = 0;
	for (uint8_t p = pci_next_cap(d, after); p; p = pci_next_cap(d, p)) {
		if (pci_read8(d, p) == id)
			return p;
		if (++n == 48) {
			printf("pci %02x:%02x.%x: capability list loops; ignored\n", d->bus, d->dev, d->fn);
			return 0;
		}
	}
	return 0;
}

volatile void *pci_map_bar(struct pci_dev *d, int i, uint64_t off, uint64_t len)
{
	struct pci_bar *b = i >= 0 && i <= 5 ? &d->bar[i] : NULL;
	if (!b || b->io || b->size == 0 || b->base == 0) {
		printf("pci %02x:%02x.%x: BAR %d is not a memory BAR\n", d->bus, d->dev, d->fn, i);
		return NULL;
	}
	if (off > b->size || len > b->size - off) {
		printf("pci %02x:%02x.%x: range %#lx+%#lx is outside BAR %d (%#lx bytes)\n", d->bus, d->dev,
		       d->fn, (unsigned long)off, (unsigned long)len, i, (unsigned long)b->size);
		return NULL;
	}
	if (len && paging_map_mmio(b->base + off, len) < 0) { /* an empty region maps nothing */
		printf("pci %02x:%02x.%x: cannot map BAR %d at %#lx+%#lx\n", d->bus, d->dev, d->fn, i,
		       (unsigned long)b->base, (unsigned long)off);
		return NULL;
	}
	if (!b->mapped) {
		b->mapped = true;
		pci_write16(d, 0x04, pci_read16(d, 0x04) | 0x6); /* memory space, bus master */
	}
	return phys_to_virt(b->base + off);
}
