/*
 * paging: four-level page tables for the direct map (see paging.h).
 *
 * Only one address space exists, so there is one PML4, and every helper
 * walks from it. Entries use the identity mapping for table frames too:
 * a table's physical address is the pointer to it.
 */
#include <errno.h>
#include <string.h>
#include "paging.h"
#include "cpu.h"
#include "kernel/addr.h"

#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_PS (1ULL << 7)
#define PTE_ADDR 0x000ffffffffff000ULL
#define GIB (1ULL << 30)

static uint64_t *pml4;
static paging_frame_fn frame_provider;
static uint64_t table_frames;

void paging_set_frame_provider(paging_frame_fn fn)
{
	frame_provider = fn;
}

uint64_t paging_table_frames(void)
{
	return table_frames;
}

static uint64_t *new_table(void)
{
	uint64_t pa = frame_provider ? frame_provider() : 0;
	if (!pa)
		return NULL;
	table_frames++;
	return memset(phys_to_virt(pa), 0, PAGE_SIZE);
}

/* The entry slot for `va` at `level` (3 = PML4 ... 0 = PT), creating tables
 * on the way down; NULL if a frame for a table could not be had. Stops early
 * (returns the large-page entry) if it meets a 2 MiB mapping above level 0
 * and `split` is false. */
static uint64_t *walk(uint64_t va, int level, int split)
{
	uint64_t *table = pml4;
	for (int l = 3; l > level; l--) {
		uint64_t *e = &table[(va >> (12 + 9 * l)) & 511];
		if ((*e & PTE_P) && (*e & PTE_PS)) {
			if (!split)
				return e;
			/* Replace one 2 MiB page by 512 4 KiB ones with the same flags. */
			uint64_t *pt = new_table();
			if (!pt)
				return NULL;
			uint64_t base = *e & PTE_ADDR & ~(HUGE_PAGE_SIZE - 1);
			uint64_t flags = (*e & 0xfff & ~PTE_PS);
			for (int i = 0; i < 512; i++)
				pt[i] = (base + i * PAGE_SIZE) | flags;
			*e = virt_to_phys(pt) | PTE_P | PTE_W;
			invlpg(va & ~(HUGE_PAGE_SIZE - 1));
		} else if (!(*e & PTE_P)) {
			uint64_t *t = new_table();
			if (!t)
				return NULL;
			*e = virt_to_phys(t) | PTE_P | PTE_W;
		}
		table = phys_to_virt(*e & PTE_ADDR);
	}
	return &table[(va >> (12 + 9 * level)) & 511];
}

/* Point [pa, pa+size) at itself with `flags` (0: unmap it), as 2 MiB
 * entries where aligned and not already split into 4 KiB ones. */
static int map_identity(uint64_t pa, uint64_t size, uint64_t flags)
{
	uint64_t end = pa + size;
	pa &= ~(PAGE_SIZE - 1);
	while (pa < end) {
		uint64_t *e;
		if ((pa & (HUGE_PAGE_SIZE - 1)) == 0 && end - pa >= HUGE_PAGE_SIZE) {
			e = walk(pa, 1, 0);
			if (!e)
				return -ENOMEM;
			if (!(*e & PTE_P) || (*e & PTE_PS)) {
				*e = flags ? pa | flags | PTE_PS : 0;
				invlpg(pa);
				pa += HUGE_PAGE_SIZE;
				continue;
			}
			/* Already split into 4 KiB pages: set them one by one. */
		}
		e = walk(pa, 0, 1);
		if (!e)
			return -ENOMEM;
		*e = flags ? pa | flags : 0;
		invlpg(pa);
		pa += PAGE_SIZE;
	}
	return 0;
}

int paging_init(const struct boot_info *bi)
{
	pml4 = new_table();
	if (!pml4)
		return -ENOMEM;
	/* The low 4 GiB whole: RAM, firmware, and the chipset's MMIO. */
	int rc = map_identity(0, 4 * GIB, PTE_P | PTE_W);
	for (uint32_t i = 0; rc == 0 && i < bi->memmap_count; i++) {
		const struct boot_mem_range *r = &bi->memmap[i];
		if (r->base + r->size > 4 * GIB) {
			uint64_t lo = r->base < 4 * GIB ? 4 * GIB : r->base;
			rc = map_identity(lo & ~(HUGE_PAGE_SIZE - 1),
					  r->base + r->size - (lo & ~(HUGE_PAGE_SIZE - 1)), PTE_P | PTE_W);
		}
	}
	if (rc == 0) {
		/* Page 0 stays unmapped so NULL dereferences fault. */
		uint64_t *e = walk(0, 0, 1);
		if (!e)
			return -ENOMEM;
		*e = 0;
	}
	if (rc == 0)
		write_cr3(virt_to_phys(pml4));
	return rc;
}

int paging_map_mmio(uint64_t pa, uint64_t size)
{
	/* Past the limit, walk() would index the tables with the wrong bits and
	 * overwrite the mapping of some other, low, address. */
	if (size == 0 || pa >= PAGING_PHYS_LIMIT || size > PAGING_PHYS_LIMIT - pa)
		return -EINVAL;
	uint64_t start = pa & ~(PAGE_SIZE - 1);
	return map_identity(start, pa + size - start, PTE_P | PTE_W | PTE_PCD | PTE_PWT);
}

static int set_range(uint64_t pa, uint64_t size, int present)
{
	if ((pa | size) & (PAGE_SIZE - 1))
		return -EINVAL;
	return map_identity(pa, size, present ? PTE_P | PTE_W : 0);
}

int paging_unmap_range(uint64_t pa, uint64_t size)
{
	return set_range(pa, size, 0);
}

int paging_map_range(uint64_t pa, uint64_t size)
{
	return set_range(pa, size, 1);
}

int paging_map_page(uint64_t va, uint64_t pa)
{
	if ((va | pa) & (PAGE_SIZE - 1))
		return -EINVAL;
	uint64_t *e = walk(va, 0, 1);
	if (!e)
		return -ENOMEM;
	*e = pa | PTE_P | PTE_W;
	invlpg(va);
	return 0;
}

uint64_t paging_unmap_page(uint64_t va)
{
	if (!paging_is_mapped(va))
		return 0;
	uint64_t *e = walk(va, 0, 1);
	if (!e)
		return 0;
	uint64_t pa = *e & PTE_ADDR;
	*e = 0;
	invlpg(va);
	return pa;
}

int paging_is_mapped(uint64_t va)
{
	uint64_t *table = pml4;
	for (int l = 3; l >= 0; l--) {
		uint64_t e = table[(va >> (12 + 9 * l)) & 511];
		if (!(e & PTE_P))
			return 0;
		if (l == 0 || (e & PTE_PS))
			return 1;
		table = phys_to_virt(e & PTE_ADDR);
	}
	return 0;
}
