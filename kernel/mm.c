/*
 * mm: the page-frame allocator set up for this machine (see mm.h). The
 * shell commands on it (alloc, free, pfa) are in mm_cmds.c.
 *
 * Physical memory once mm_init has run:
 *
 *   0        1 MiB       never handed out (firmware, real-mode leftovers)
 *   1 MiB    _kernel_end the kernel image
 *            ...         boot memory: early page tables, allocator metadata
 *            ...         free RAM, managed by kernel_pfa
 *                          - huge-page pool (hugepages=N), kept apart
 *                          - reserve floor (reserve=SIZE): the balloon
 *                            leaves at least this much free
 */
#include <stdio.h>
#include <string.h>
#include "mm.h"
#include "kframe.h"
#include "addr.h"
#include "bootmem.h"
#include "cmdline.h"
#include "kernel.h"
#include "panic.h"
#include "arch/x86_64/paging.h"

struct pfa kernel_pfa;
struct kframes kernel_kframes;

CMDLINE_OPTION(reserve, "reserve",
	       "memory the balloon always leaves free, e.g. reserve=32M (default: 5% of RAM, at least 16M)");
CMDLINE_OPTION(hugepages, "hugepages", "2 MiB pages set apart in the huge-page pool (default 0)");
CMDLINE_OPTION(mm_no_group, "mm.no_group",
	       "hand out page tables and heap pages from anywhere, not from 2 MiB chunks (to see what grouping saves)");
CMDLINE_OPTION(mm_check, "mm.check",
	       "check the allocator's every frame after setup, at boot (the `pfa` command checks on demand)");
CMDLINE_OPTION(poison, "poison",
	       "fill every freed frame with this byte (e.g. poison=0xaa); off by default, it defeats reporting");

static int poison_byte = -1;

int mm_poison_value(void)
{
	return poison_byte;
}

/* xv6 fills freed memory with junk so dangling uses show; blimp does it only
 * when asked, because writing a freed frame makes the host back it again. */
static void poison_released(void *ctx, uint64_t pfn, unsigned order)
{
	(void)ctx;
	/* Deflated blocks are mapped again before they come back; a block
	 * that is not mapped has nobody who could read the poison anyway. */
	if (paging_is_mapped(pfn << PAGE_SHIFT))
		memset(phys_to_virt(pfn << PAGE_SHIFT), poison_byte, PAGE_SIZE << order);
}

/* The allocator is about to use a section of RAM for the first time: RAM
 * above 4 GiB is mapped then, not at boot (arch/x86_64/paging.c). */
static void map_section(void *ctx, uint64_t pfn, uint64_t frames)
{
	(void)ctx;
	paging_ram_used(pfn << PAGE_SHIFT, frames << PAGE_SHIFT);
}

/* Boot memory [addr, addr + bytes) back to the allocator, the whole pages
 * inside it. */
static void give_back(const void *addr, uint64_t bytes)
{
	uint64_t lo = (virt_to_phys(addr) + PAGE_SIZE - 1) >> PAGE_SHIFT;
	uint64_t hi = (virt_to_phys(addr) + bytes) >> PAGE_SHIFT;
	if (hi > lo && pfa_add_free_range(&kernel_pfa, lo, hi - lo) < 0)
		panic("mm_init: cannot give back metadata frames %#lx-%#lx", (unsigned long)lo, (unsigned long)hi);
}

/*
 * The metadata covers every frame up to the end of RAM, holes included: on
 * an AMD CPU QEMU puts RAM above 4 GiB of a guest of 1 TiB or more at
 * 1 TiB, and the 1 TiB between is 385 MiB of metadata that nothing will
 * ever read (the allocator stops describing a hole's sections: pfa_set_absent).
 * Those pages of boot memory become free RAM.
 */
static void give_back_hole_metadata(const struct boot_info *bi)
{
	uint64_t end = 0; /* of the usable RAM before, in frames */
	uint64_t given = 0;
	for (uint32_t i = 0; i < bi->memmap_count; i++) {
		const struct boot_mem_range *r = &bi->memmap[i];
		if (r->type != BOOT_MEM_USABLE)
			continue;
		uint64_t lo = r->base >> PAGE_SHIFT;
		uint64_t s0 = (end + PFA_SECTION_FRAMES - 1) / PFA_SECTION_FRAMES, s1 = lo / PFA_SECTION_FRAMES;
		if (end && s1 > s0 && pfa_set_absent(&kernel_pfa, end, lo - end) == s1 - s0) {
			const struct pfa *a = &kernel_pfa;
			give_back(&a->frame[s0 * PFA_SECTION_FRAMES], (s1 - s0) * PFA_SECTION_FRAMES);
			give_back(&a->chunks[s0 * a->chunk_words], (s1 - s0) * a->chunk_words * 8);
			given += (s1 - s0) * (PFA_SECTION_FRAMES + a->chunk_words * 8);
		}
		end = (r->base + r->size) >> PAGE_SHIFT;
	}
	if (given)
		printf("mm: %lu MiB of metadata for holes in the memory map given back\n",
		       (unsigned long)(given >> 20));
}

void mm_init(const struct boot_info *bi)
{
	uint64_t limit = 0;
	for (uint32_t i = 0; i < bi->memmap_count; i++)
		if (bi->memmap[i].type == BOOT_MEM_USABLE)
			limit = bi->memmap[i].base + bi->memmap[i].size;
	uint64_t pfn_limit = limit >> PAGE_SHIFT;
	size_t meta_size = pfa_metadata_size(pfn_limit);
	uint64_t meta = bootmem_alloc(meta_size);
	if (!meta)
		panic("mm_init: no boot memory for %zu bytes of allocator metadata", meta_size);
	if (pfa_init(&kernel_pfa, phys_to_virt(meta), meta_size, pfn_limit) < 0)
		panic("mm_init: pfa_init(%#lx frames) failed", (unsigned long)pfn_limit);
	pfa_set_section_hook(&kernel_pfa, map_section, NULL);

	for (uint32_t i = 0; i < bi->memmap_count; i++) {
		const struct boot_mem_range *r = &bi->memmap[i];
		if (r->type != BOOT_MEM_USABLE)
			continue;
		uint64_t lo = (r->base + PAGE_SIZE - 1) >> PAGE_SHIFT, hi = (r->base + r->size) >> PAGE_SHIFT;
		if (lo < (1ULL << 20) >> PAGE_SHIFT)
			lo = (1ULL << 20) >> PAGE_SHIFT; /* the low 1 MiB stays out */
		if (hi > lo)
			pfa_add_free_range(&kernel_pfa, lo, hi - lo);
	}
	/* From here on page tables come from the allocator, so boot memory is final. */
	uint64_t bm_start, bm_end;
	bootmem_close();
	bootmem_used(&bm_start, &bm_end);
	uint64_t k0 = virt_to_phys(_kernel_start) >> PAGE_SHIFT;
	uint64_t k1 = (virt_to_phys(_kernel_end) + PAGE_SIZE - 1) >> PAGE_SHIFT;
	if (pfa_reserve_range(&kernel_pfa, k0, k1 - k0) < 0 ||
	    pfa_reserve_range(&kernel_pfa, bm_start >> PAGE_SHIFT, (bm_end - bm_start) >> PAGE_SHIFT) < 0)
		panic("mm_init: cannot reserve the kernel image or boot memory");
	give_back_hole_metadata(bi);
	kframe_init(&kernel_kframes, &kernel_pfa);
	kernel_kframes.ungrouped = cmdline_has("mm.no_group");
	paging_set_frame_provider(mm_alloc_table_frame, mm_free_table_frame);

	uint64_t managed = kernel_pfa.st.managed;
	uint64_t floor = managed / 20 > (16 << 20) >> PAGE_SHIFT ? managed / 20 : (16 << 20) >> PAGE_SHIFT;
	floor = cmdline_get_size("reserve", floor << PAGE_SHIFT) >> PAGE_SHIFT;
	pfa_set_reserve_floor(&kernel_pfa, floor);
	if (cmdline_has("poison")) {
		poison_byte = (int)(cmdline_get_u64("poison", 0xaa) & 0xff);
		pfa_set_release_hook(&kernel_pfa, poison_released, NULL);
	}
	uint64_t want = cmdline_get_u64("hugepages", 0);
	uint64_t got = pfa_pool_init(&kernel_pfa, want);
	if (got < want)
		printf("mm: huge-page pool has %lu of the %lu pages asked for\n", (unsigned long)got,
		       (unsigned long)want);
	/* The full check walks every frame: 3.4 ms of a 2 GiB guest's boot
	 * under TCG, growing with memory. The `pfa` shell command runs it on
	 * demand (the QEMU tests do, before and after what they change), so
	 * at boot it is asked for. */
	char why[160];
	if (cmdline_has("mm.check") && pfa_check(&kernel_pfa, why, sizeof(why)) < 0)
		panic("mm_init: allocator inconsistent after setup: %s", why);
}

uint64_t mm_alloc_table_frame(void)
{
	/* No OOM handler: page tables are asked for in the middle of a balloon
	 * step or deflate, and paging keeps a reserve for when this fails. */
	int64_t pfn = kframe_alloc(&kernel_kframes, PFA_NO_OOM);
	if (pfn < 0)
		return 0;
	uint64_t pa = (uint64_t)pfn << PAGE_SHIFT;
	memset(phys_to_virt(pa), 0, PAGE_SIZE);
	return pa;
}

void mm_free_table_frame(uint64_t pa)
{
	/* Tables built at boot came from boot memory, which stays reserved. */
	if (pfa_frame_state(&kernel_pfa, pa >> PAGE_SHIFT) == PFA_USED)
		kframe_free(&kernel_kframes, pa >> PAGE_SHIFT);
}

static unsigned order_for(size_t bytes)
{
	unsigned order = 0;
	while ((PAGE_SIZE << order) < bytes)
		order++;
	return order;
}

void *mm_alloc_dma(size_t bytes)
{
	unsigned order = order_for(bytes);
	int64_t pfn = pfa_alloc_block(&kernel_pfa, order);
	if (pfn < 0)
		return NULL;
	void *p = phys_to_virt((uint64_t)pfn << PAGE_SHIFT);
	memset(p, 0, PAGE_SIZE << order);
	return p;
}

void mm_free_dma(void *p, size_t bytes)
{
	pfa_free_block(&kernel_pfa, virt_to_phys(p) >> PAGE_SHIFT, order_for(bytes),
		       __builtin_return_address(0));
}
