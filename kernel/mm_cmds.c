/*
 * mm_cmds: the shell commands that let a person look at the kernel's memory
 * and take and give it back by hand: `alloc`, `free`, `pfa [map]`. They
 * use only mm.h's public state (kernel_pfa, kernel_kframes); the set-up is
 * in mm.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mm.h"
#include "kframe.h"
#include "addr.h"
#include "clock.h"
#include "event.h"
#include "parse.h"
#include "shell.h"

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
	uint64_t meta = pfa_metadata_bytes(&kernel_pfa);
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
	printf("lazy sections: %lu of %lu (64 MiB each) not written yet (wholly free or wholly reserved)\n",
	       (unsigned long)s->lazy_sections, (unsigned long)kernel_pfa.lazy_limit);
	printf("kernel frames: %u chunks of 2 MiB, %lu frames free in them, %lu outside any (chunks taken %lu, "
	       "returned %lu)\n", k->n_chunks, (unsigned long)k->free_in_chunks, (unsigned long)k->strays,
	       (unsigned long)k->chunks_taken, (unsigned long)k->chunks_returned);
	printf("invariant check: %s\n", why);
	char esc[420];
	event_emit("pfa", "\"managed\":%lu,\"free\":%lu,\"used\":%lu,\"ballooned\":%lu,\"reported\":%lu,"
		   "\"reserve_floor\":%lu,\"pool_total\":%lu,\"pool_free\":%lu,\"huge_allocs\":%lu,"
		   "\"huge_failures\":%lu,\"meta_bytes\":%lu,\"meta_millibytes_per_frame\":%lu,"
		   "\"lazy_sections\":%lu,\"frag_permille\":%lu,\"kframe_chunks\":%u,\"kframe_free\":%lu,\"kframe_strays\":%lu,"
		   "\"check\":\"%s\"",
		   (unsigned long)s->managed, (unsigned long)s->free, (unsigned long)s->used,
		   (unsigned long)s->ballooned, (unsigned long)s->reported,
		   (unsigned long)kernel_pfa.reserve_floor, (unsigned long)s->pool_total,
		   (unsigned long)s->pool_free, (unsigned long)s->huge_allocs, (unsigned long)s->huge_failures,
		   (unsigned long)meta, (unsigned long)mbpf, (unsigned long)s->lazy_sections,
		   (unsigned long)pfa_fragmentation_permille(&kernel_pfa), k->n_chunks,
		   (unsigned long)k->free_in_chunks, (unsigned long)k->strays,
		   event_json_escape(esc, sizeof(esc), why));
	return rc;
}
SHELL_COMMAND(pfa, "[map]", "page-frame allocator: totals, free blocks per order, metadata, invariant check; "
	      "map: a character per 2 MiB block", cmd_pfa);
