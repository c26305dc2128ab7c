/*
 * mm: the page-frame allocator set up for this machine (see mm.h), and the
 * shell commands that let a person take and give back memory by hand.
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
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mm.h"
#include "kframe.h"
#include "addr.h"
#include "bootmem.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "kernel.h"
#include "panic.h"
#include "parse.h"
#include "shell.h"
#include "arch/x86_64/paging.h"

struct pfa kernel_pfa;
struct kframes kernel_kframes;

CMDLINE_OPTION(reserve, "reserve",
	       "memory the balloon always leaves free, e.g. reserve=32M (default: 5% of RAM, at least 16M)");
CMDLINE_OPTION(hugepages, "hugepages", "2 MiB pages set apart in the huge-page pool (default 0)");
CMDLINE_OPTION(mm_no_group, "mm.no_group",
	       "hand out page tables and heap pages from anywhere, not from 2 MiB chunks (to see what grouping saves)");
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
	char why[160];
	if (pfa_check(&kernel_pfa, why, sizeof(why)) < 0)
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

/* ---------------------------------------------------------------- shell */

/*
 * `alloc <size>` holds memory the way a program would: every frame gets a
 * pattern (so the host really backs it), and `free` checks the pattern is
 * intact before giving the frames back — a frame the host discarded behind
 * the guest's back reads as zeros and is caught.
 */
#define MAX_ALLOCS 64
#define PATTERN_STRIDE 512 /* bytes between pattern words: 8 per frame */
/* Numbers typed at the shell are checked against these before use. Ids are
 * ints (`free 4294967297` was once cut to an int and freed allocation 1);
 * no x86-64 machine has more than 2^52 bytes of physical memory, and near
 * 2^64 the round-up to frames wrapped (`alloc 18446744073709551615` took
 * 0 KiB and said it succeeded). */
#define ALLOC_ID_MAX INT_MAX
#define ALLOC_BYTES_MAX (1ULL << 52)

struct allocation {
	int id;
	uint64_t frames;
	size_t n_runs, cap_runs;
	struct pfa_run *runs;
};
static struct allocation *allocs[MAX_ALLOCS];
static int next_id = 1;

static uint64_t pattern(uint64_t pfn, int id, unsigned word)
{
	return 0xb1a3000000000000ULL ^ (pfn << 16) ^ ((uint64_t)id << 8) ^ word;
}

static void fill_run(const struct pfa_run *r, int id)
{
	for (uint64_t pfn = r->pfn; pfn < r->pfn + (1ULL << r->order); pfn++) {
		uint64_t *p = phys_to_virt(pfn << PAGE_SHIFT);
		for (unsigned w = 0; w < PAGE_SIZE / PATTERN_STRIDE; w++)
			p[w * PATTERN_STRIDE / 8] = pattern(pfn, id, w);
	}
}

/* Frames whose pattern is wrong; the first one is reported in *bad_pfn. */
static uint64_t check_run(const struct pfa_run *r, int id, uint64_t *bad_pfn, uint64_t *seen)
{
	uint64_t bad = 0;
	for (uint64_t pfn = r->pfn; pfn < r->pfn + (1ULL << r->order); pfn++) {
		const uint64_t *p = phys_to_virt(pfn << PAGE_SHIFT);
		for (unsigned w = 0; w < PAGE_SIZE / PATTERN_STRIDE; w++)
			if (p[w * PATTERN_STRIDE / 8] != pattern(pfn, id, w)) {
				if (bad++ == 0) {
					*bad_pfn = pfn;
					*seen = p[w * PATTERN_STRIDE / 8];
				}
				break;
			}
	}
	return bad;
}

static int release(struct allocation *a, bool quiet)
{
	uint64_t bad = 0, bad_pfn = 0, seen = 0, start = clock_ms();
	for (size_t i = 0; i < a->n_runs; i++) {
		bad += check_run(&a->runs[i], a->id, &bad_pfn, &seen);
		pfa_free_block(&kernel_pfa, a->runs[i].pfn, a->runs[i].order, __builtin_return_address(0));
	}
	if (bad)
		printf("free %d: %lu frames lost their pattern; first: frame %#lx reads %#lx, expected %#lx\n",
		       a->id, (unsigned long)bad, (unsigned long)bad_pfn, (unsigned long)seen,
		       (unsigned long)pattern(bad_pfn, a->id, 0));
	else if (!quiet)
		printf("free %d: %lu MiB, pattern intact\n", a->id, (unsigned long)(a->frames >> 8));
	if (!quiet || bad)
		event_emit("free", "\"id\":%d,\"bytes\":%lu,\"bad_frames\":%lu,\"ms\":%lu", a->id,
		   (unsigned long)(a->frames << PAGE_SHIFT), (unsigned long)bad,
		   (unsigned long)(clock_ms() - start));
	free(a->runs);
	free(a);
	return bad ? -EIO : 0;
}

static int cmd_alloc(int argc, char **argv)
{
	uint64_t bytes = 0;
	int rc = argc == 2 ? parse_size_max(argv[1], ALLOC_BYTES_MAX, &bytes) : -EINVAL;
	if (rc == -ERANGE) {
		printf("alloc: %s is out of range: at most %lu TiB (x86-64's physical address space)\n",
		       argv[1], (unsigned long)(ALLOC_BYTES_MAX >> 40));
		return rc;
	}
	if (rc < 0 || bytes == 0) {
		printf("usage: alloc <size>, e.g. alloc 512M\n");
		return -EINVAL;
	}
	int slot = 0;
	while (slot < MAX_ALLOCS && allocs[slot])
		slot++;
	struct allocation *a = calloc(1, sizeof(*a));
	if (slot == MAX_ALLOCS || !a) {
		free(a);
		printf("alloc: at most %d allocations at once\n", MAX_ALLOCS);
		return -ENOSPC;
	}
	a->id = next_id++;
	uint64_t want = (bytes + PAGE_SIZE - 1) >> PAGE_SHIFT, start = clock_ms();
	while (a->frames < want) {
		uint64_t left = want - a->frames;
		unsigned order = 63 - __builtin_clzll(left);
		if (order > PFA_HUGE_ORDER)
			order = PFA_HUGE_ORDER;
		/* Smaller blocks before asking the OOM handler (the balloon) for more. */
		int64_t pfn = -ENOMEM;
		for (int o = (int)order; o >= 0; o--) {
			pfn = pfa_alloc_block_flags(&kernel_pfa, (unsigned)o, PFA_NO_OOM);
			if (pfn >= 0) {
				order = (unsigned)o;
				break;
			}
		}
		if (pfn < 0) {
			order = 0;
			pfn = pfa_alloc_block(&kernel_pfa, order);
		}
		if (pfn < 0)
			break;
		if (a->n_runs == a->cap_runs) {
			size_t cap = a->cap_runs ? a->cap_runs * 2 : 64;
			struct pfa_run *r = realloc(a->runs, cap * sizeof(*r));
			if (!r) {
				pfa_free_block(&kernel_pfa, (uint64_t)pfn, order, NULL);
				break;
			}
			a->runs = r;
			a->cap_runs = cap;
		}
		a->runs[a->n_runs] = (struct pfa_run){ (uint64_t)pfn, order };
		fill_run(&a->runs[a->n_runs++], a->id);
		a->frames += 1ULL << order;
	}
	if (a->frames < want) {
		printf("alloc: only %lu of %lu KiB available, nothing kept\n",
		       (unsigned long)(a->frames << 2), (unsigned long)(want << 2));
		event_emit("alloc_failed", "\"bytes\":%lu,\"got\":%lu", (unsigned long)bytes,
			   (unsigned long)(a->frames << PAGE_SHIFT));
		release(a, true);
		return -ENOMEM;
	}
	allocs[slot] = a;
	printf("alloc %d: %lu KiB in %zu blocks, pattern written\n", a->id, (unsigned long)(a->frames << 2),
	       a->n_runs);
	event_emit("alloc", "\"id\":%d,\"bytes\":%lu,\"blocks\":%zu,\"ms\":%lu", a->id,
		   (unsigned long)(a->frames << PAGE_SHIFT), a->n_runs, (unsigned long)(clock_ms() - start));
	return 0;
}
SHELL_COMMAND(alloc, "<size>", "take memory (e.g. 512M), write a pattern into every frame, hold it", cmd_alloc);

static int cmd_free(int argc, char **argv)
{
	uint64_t id = 0;
	bool all = argc == 2 && strcmp(argv[1], "all") == 0;
	int rc = argc != 2 ? -EINVAL : all ? 0 : parse_u64_max(argv[1], ALLOC_ID_MAX, &id);
	if (rc == -ERANGE) {
		printf("free: %s is out of range: allocation ids go from 1 to %d\n", argv[1], ALLOC_ID_MAX);
		return rc;
	}
	if (rc < 0) {
		printf("usage: free <id> | free all\n");
		return -EINVAL;
	}
	int found = 0;
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i] && (all || allocs[i]->id == (int)id)) {
			int r = release(allocs[i], false);
			allocs[i] = NULL;
			found++;
			if (r < 0)
				rc = r;
		}
	if (!found && !all) {
		printf("free: no allocation %lu\n", (unsigned long)id);
		return -ENOENT;
	}
	return rc;
}
SHELL_COMMAND(free, "<id>|all", "check the pattern of an allocation and give it back", cmd_free);

/* One character per 2 MiB block of RAM: what a host with 2 MiB pages sees
 * (docs/allocator.md has the legend and pictures). */
static char block_char(uint64_t blk)
{
	static const char whole[] = { '-', 'F', 'U', 'B', 'I', 'H', 'H' }; /* by pfa_state */
	uint64_t first = blk << PFA_HUGE_ORDER;
	if (kframe_in_chunk(&kernel_kframes, first))
		return 'K';
	enum pfa_state st = pfa_frame_state(&kernel_pfa, first);
	bool reported = pfa_frame_reported(&kernel_pfa, first);
	for (uint64_t f = first + 1; f < first + (1ULL << PFA_HUGE_ORDER); f++)
		if (pfa_frame_state(&kernel_pfa, f) != st || pfa_frame_reported(&kernel_pfa, f) != reported)
			return st == PFA_RESERVED || pfa_frame_state(&kernel_pfa, f) == PFA_RESERVED ? '-' : '*';
	return st == PFA_FREE && reported ? 'R' : whole[st];
}

static void print_block_map(void)
{
	uint64_t blocks = kernel_pfa.pfn_limit >> PFA_HUGE_ORDER;
	printf("2 MiB blocks: R free, reported  F free  U used  B ballooned  K kernel frames  H huge pool\n"
	       "              I being reported  * mixed (kept from being whole)  - not RAM or the kernel's\n");
	for (uint64_t b = 0; b < blocks; b += 64) {
		char line[65];
		unsigned n = 0;
		for (; n < 64 && b + n < blocks; n++)
			line[n] = block_char(b + n);
		line[n] = 0;
		printf("%#11lx %s\n", (unsigned long)(b << (PFA_HUGE_ORDER + PAGE_SHIFT)), line);
	}
}

static int cmd_pfa(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "map")) {
		print_block_map();
		return 0;
	}
	if (argc != 1) {
		printf("usage: pfa [map]\n");
		return -EINVAL;
	}
	const struct pfa_stats *s = &kernel_pfa.st;
	const struct kframes *k = &kernel_kframes;
	char why[200] = "ok";
	int rc = pfa_check(&kernel_pfa, why, sizeof(why));
	if (rc == 0)
		rc = kframe_check(k, why, sizeof(why));
	uint64_t meta = pfa_metadata_size(kernel_pfa.pfn_limit);
	printf("frames (4 KiB): managed %lu, free %lu (reported %lu), used %lu, ballooned %lu, "
	       "being reported %lu\n", (unsigned long)s->managed, (unsigned long)s->free,
	       (unsigned long)s->reported, (unsigned long)s->used, (unsigned long)s->ballooned,
	       (unsigned long)s->isolated);
	printf("reserve floor %lu MiB; huge-page pool %lu/%lu pages free\n",
	       (unsigned long)(kernel_pfa.reserve_floor >> 8), (unsigned long)s->pool_free,
	       (unsigned long)s->pool_total);
	printf("free blocks per order:");
	for (unsigned o = 0; o <= PFA_MAX_ORDER; o++)
		printf(" %u:%lu", o, (unsigned long)s->free_blocks[o]);
	printf("\nallocations %lu, frees %lu, failures %lu; huge-pool allocations %lu, failures %lu\n",
	       (unsigned long)s->allocs, (unsigned long)s->frees, (unsigned long)s->alloc_failures,
	       (unsigned long)s->huge_allocs, (unsigned long)s->huge_failures);
	uint64_t mbpf = pfa_metadata_millibytes_per_frame(&kernel_pfa);
	printf("metadata %lu KiB: %lu.%03lu bytes per frame, %lu.%03lu%% of RAM; fragmentation %lu.%lu%%\n",
	       (unsigned long)(meta >> 10), (unsigned long)(mbpf / 1000), (unsigned long)(mbpf % 1000),
	       (unsigned long)(mbpf * 100 / 4096 / 1000), (unsigned long)(mbpf * 100 / 4096 % 1000),
	       (unsigned long)(pfa_fragmentation_permille(&kernel_pfa) / 10),
	       (unsigned long)(pfa_fragmentation_permille(&kernel_pfa) % 10));
	printf("kernel frames: %u chunks of 2 MiB, %lu frames free in them, %lu outside any (chunks taken %lu, "
	       "returned %lu)\n", k->n_chunks, (unsigned long)k->free_in_chunks, (unsigned long)k->strays,
	       (unsigned long)k->chunks_taken, (unsigned long)k->chunks_returned);
	printf("invariant check: %s\n", why);
	char esc[420];
	event_emit("pfa", "\"managed\":%lu,\"free\":%lu,\"used\":%lu,\"ballooned\":%lu,\"reported\":%lu,"
		   "\"reserve_floor\":%lu,\"pool_total\":%lu,\"pool_free\":%lu,\"huge_allocs\":%lu,"
		   "\"huge_failures\":%lu,\"meta_bytes\":%lu,\"meta_millibytes_per_frame\":%lu,"
		   "\"frag_permille\":%lu,\"kframe_chunks\":%u,\"kframe_free\":%lu,\"kframe_strays\":%lu,"
		   "\"check\":\"%s\"",
		   (unsigned long)s->managed, (unsigned long)s->free, (unsigned long)s->used,
		   (unsigned long)s->ballooned, (unsigned long)s->reported,
		   (unsigned long)kernel_pfa.reserve_floor, (unsigned long)s->pool_total,
		   (unsigned long)s->pool_free, (unsigned long)s->huge_allocs, (unsigned long)s->huge_failures,
		   (unsigned long)meta, (unsigned long)mbpf,
		   (unsigned long)pfa_fragmentation_permille(&kernel_pfa), k->n_chunks,
		   (unsigned long)k->free_in_chunks, (unsigned long)k->strays,
		   event_json_escape(esc, sizeof(esc), why));
	return rc;
}
SHELL_COMMAND(pfa, "[map]", "page-frame allocator: totals, free blocks per order, metadata, invariant check; "
	      "map: a character per 2 MiB block", cmd_pfa);
