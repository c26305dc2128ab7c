/*
 * buddy_sim: a seeded exercise on blimp's buddy allocator (kernel/pfa.c).
 *
 *   buddy -s SEED -n OPS [-m MEMORY] [-c]
 *
 * Poses a problem: a sequence of allocations (of various orders) and frees
 * over a small memory, all of it free at the start, then questions: which
 * frame each allocation gets, the free blocks of each order at the end, the
 * fragmentation figure, and which blocks free page reporting would hand to
 * the host. With -c it prints the answers, step by step.
 *
 * The answers are the real allocator's: the operations run through
 * pfa_alloc_block and pfa_free_block, the figures come from its counters
 * and pfa_fragmentation_permille, the reported blocks from pfa_report_take,
 * and pfa_check must pass. The sequence comes from SplitMix64 (kernel/prng.h)
 * seeded with SEED, and is chosen as it runs (a free names a block that was
 * really given), so the same seed prints the same text on every machine.
 *
 * Exit status: 0, 2 for a bad argument (with the reason and the usage), 1
 * if the allocator breaks an invariant (a bug in pfa.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/pfa.h"
#include "kernel/prng.h"

#define MAX_OPS 1000
#define MIN_MEM (2ULL << 20)
#define MAX_MEM (256ULL << 20)

/* The orders a generated allocation asks for: small ones most often, an
 * occasional 2 MiB (order 9) one — the size that matters to the host. */
static const unsigned gen_orders[] = { 0, 0, 0, 1, 1, 2, 3, 4, 5, 7, 9 };
#define N_GEN_ORDERS (sizeof(gen_orders) / sizeof(gen_orders[0]))

struct op {
	bool alloc;
	unsigned id;      /* a1, a2, ...: the allocation made or freed */
	unsigned order;
	int64_t pfn;      /* what pfa_alloc_block returned (negative: it failed) */
	uint64_t free_blocks[PFA_MAX_ORDER + 1]; /* after the operation */
};

static struct op ops[MAX_OPS];

/* The options, on f (stdout for -h, stderr after a bad argument). */
static void usage(FILE *f)
{
	fprintf(f, "usage: buddy [-s SEED] [-n OPS] [-m MEMORY] [-c]\n"
		   "  -s SEED    the problem's seed (default 0)\n"
		   "  -n OPS     how many allocations and frees, 1-%d (default 10)\n"
		   "  -m MEMORY  the memory managed, a multiple of 2M from 2M to 256M (default 16M)\n"
		   "  -c         print the answers, computed by kernel/pfa.c\n", MAX_OPS);
}

/* Say what is wrong with the arguments (fmt with one %s) and how to call:
 * the exit status for main, 2. */
static int bad_arg(const char *fmt, const char *what)
{
	fprintf(stderr, "buddy: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n");
	usage(stderr);
	return 2;
}

/* A decimal number in [lo, hi] into *out; false if it is not one. */
static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* A size: digits with an optional K, M or G. */
static bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	unsigned shift = 0;
	if (*end == 'k' || *end == 'K')
		shift = 10;
	else if (*end == 'm' || *end == 'M')
		shift = 20;
	else if (*end == 'g' || *end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (*end || v > (1ULL << (63 - shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

/* "4 KiB", "2 MiB": the size of 2^order frames. */
static const char *size_of(unsigned order, char *buf, size_t len)
{
	uint64_t kib = 4ULL << order;
	if (kib >= 1024)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(kib >> 10));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)kib);
	return buf;
}

/* "frame 0x3 (at 12 KiB)": a frame number and the address it stands for. */
static const char *frame_name(uint64_t pfn, char *buf, size_t len)
{
	uint64_t kib = pfn * 4;
	if (kib % 1024 == 0 && kib)
		snprintf(buf, len, "frame 0x%llx (at %llu MiB)", (unsigned long long)pfn,
			 (unsigned long long)(kib >> 10));
	else
		snprintf(buf, len, "frame 0x%llx (at %llu KiB)", (unsigned long long)pfn, (unsigned long long)kib);
	return buf;
}

/* "o0:1 o3:2 o9:5": the non-empty orders of a free_blocks array. */
static void print_blocks(const uint64_t *blocks, unsigned top)
{
	bool any = false;
	for (unsigned o = 0; o <= top; o++)
		if (blocks[o]) {
			printf("%so%u:%llu", any ? " " : "", o, (unsigned long long)blocks[o]);
			any = true;
		}
	if (!any)
		printf("none");
}

int main(int argc, char **argv)
{
	uint64_t seed = 0, n_ops = 10, mem = 16ULL << 20;
	bool answers = false;
	int c;
	opterr = 0;
	while ((c = getopt(argc, argv, "s:n:m:ch")) != -1) {
		switch (c) {
		case 's':
			if (!parse_u64(optarg, 0, UINT64_MAX, &seed))
				return bad_arg("-s wants a number from 0 to 2^64-1, not '%s'", optarg);
			break;
		case 'n':
			if (!parse_u64(optarg, 1, MAX_OPS, &n_ops))
				return bad_arg("-n wants a number of operations from 1 to 1000, not '%s'", optarg);
			break;
		case 'm':
			if (!parse_size(optarg, &mem) || mem < MIN_MEM || mem > MAX_MEM || mem % MIN_MEM)
				return bad_arg("-m wants a multiple of 2M from 2M to 256M, not '%s'", optarg);
			break;
		case 'c':
			answers = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default: {
			char opt[3] = { '-', (char)optopt, 0 };
			return bad_arg(strchr("snm", optopt) ? "%s needs a value" : "unknown option '%s'", opt);
		}
		}
	}
	if (optind < argc)
		return bad_arg("unexpected argument '%s'", argv[optind]);

	uint64_t frames = mem >> 12;
	unsigned top = 63 - (unsigned)__builtin_clzll(frames); /* the largest order memory holds */
	if (top > PFA_MAX_ORDER)
		top = PFA_MAX_ORDER;
	static struct pfa a;
	size_t meta_len = pfa_metadata_size(frames);
	void *meta = malloc(meta_len);
	if (!meta || pfa_init(&a, meta, meta_len, frames) < 0 || pfa_add_free_range(&a, 0, frames) < 0) {
		fprintf(stderr, "buddy: cannot set up the allocator over %llu frames\n", (unsigned long long)frames);
		return 1;
	}

	/* Generate and run at once: a free always names a block that was given.
	 * Allocations stop at three quarters of memory, so a failure comes from
	 * fragmentation, not from plain lack of memory. */
	uint64_t state = seed;
	struct { unsigned id, order; int64_t pfn; } live[MAX_OPS];
	unsigned n_live = 0, next_id = 1;
	uint64_t held = 0;
	for (uint64_t i = 0; i < n_ops; i++) {
		struct op *op = &ops[i];
		uint64_t r = prng_splitmix64(&state);
		unsigned order = gen_orders[(r >> 8) % N_GEN_ORDERS];
		while (order > top)
			order--;
		bool want_free = n_live && ((r & 0xff) < 96 || held + (1ULL << order) > frames * 3 / 4);
		if (want_free) {
			unsigned k = (unsigned)((r >> 32) % n_live);
			op->alloc = false;
			op->id = live[k].id;
			op->order = live[k].order;
			op->pfn = live[k].pfn;
			if (pfa_free_block(&a, (uint64_t)live[k].pfn, live[k].order, NULL) < 0) {
				fprintf(stderr, "buddy: pfa_free_block refused a block it gave\n");
				return 1;
			}
			held -= 1ULL << live[k].order;
			live[k] = live[--n_live];
		} else {
			op->alloc = true;
			op->id = next_id++;
			op->order = order;
			op->pfn = pfa_alloc_block(&a, order);
			if (op->pfn >= 0) {
				live[n_live].id = op->id;
				live[n_live].order = order;
				live[n_live].pfn = op->pfn;
				n_live++;
				held += 1ULL << order;
			}
		}
		memcpy(op->free_blocks, a.st.free_blocks, sizeof(op->free_blocks));
	}
	char why[256];
	if (pfa_check(&a, why, sizeof(why)) < 0) {
		fprintf(stderr, "buddy: the allocator broke an invariant: %s\n", why);
		return 1;
	}

	char b1[64], b2[64];
	printf("buddy: seed %llu, %llu operations over %llu MiB (%llu frames of 4 KiB)\n\n",
	       (unsigned long long)seed, (unsigned long long)n_ops, (unsigned long long)(mem >> 20),
	       (unsigned long long)frames);
	printf("blimp's buddy allocator (kernel/pfa.c). A block of order k is 2^k frames,\n"
	       "aligned to its size: order 0 is 4 KiB, order 9 is 2 MiB, order %u (%s) is\n"
	       "the largest here. All of memory is free at the start. An allocation takes\n"
	       "the lowest-addressed free block of the smallest order that is big enough;\n"
	       "if that block is bigger, it is halved until it fits, the allocation keeping\n"
	       "the lower half and each upper half staying free. A freed block merges with\n"
	       "its buddy (the other half of the block it was split from) while that buddy\n"
	       "is free and whole.\n\n", top, size_of(top, b1, sizeof(b1)));
	printf("operations:\n");
	for (uint64_t i = 0; i < n_ops; i++) {
		struct op *op = &ops[i];
		if (op->alloc)
			printf("  %3llu  a%u = alloc(order %u)   %s\n", (unsigned long long)i + 1, op->id,
			       op->order, size_of(op->order, b1, sizeof(b1)));
		else
			printf("  %3llu  free(a%u)\n", (unsigned long long)i + 1, op->id);
	}
	printf("\nquestions:\n"
	       "  1. Which frame does each allocation return (or does one fail)?\n"
	       "  2. After the last operation, how many free blocks of each order are there?\n"
	       "  3. What is frag_permille after the last operation? It is the share of free\n"
	       "     memory, in thousandths, that is NOT in free blocks of 2 MiB or more:\n"
	       "     (free frames - frames in free blocks of order >= 9) * 1000 / free frames,\n"
	       "     rounded down (0 when nothing is free).\n"
	       "  4. Free page reporting then hands the host every free block of at least\n"
	       "     2 MiB (order 9) that it has not reported yet, each whole, the largest\n"
	       "     orders first and, within an order, the lowest address first. Which\n"
	       "     blocks does it send (start and size)?\n");
	if (!answers) {
		printf("\nRun again with -c for the answers.\n");
		return 0;
	}

	printf("\nanswers (from kernel/pfa.c):\n"
	       "  step by step, with the free blocks after each operation (oK:N = N blocks of order K):\n");
	for (uint64_t i = 0; i < n_ops; i++) {
		struct op *op = &ops[i];
		char what[96];
		if (op->alloc && op->pfn >= 0)
			snprintf(what, sizeof(what), "a%u = %s", op->id, frame_name((uint64_t)op->pfn, b1, sizeof(b1)));
		else if (op->alloc)
			snprintf(what, sizeof(what), "a%u fails (ENOMEM): no free block of order %u or more",
				 op->id, op->order);
		else
			snprintf(what, sizeof(what), "free a%u at %s", op->id, frame_name((uint64_t)op->pfn, b1, sizeof(b1)));
		printf("  %3llu  %-42s free: ", (unsigned long long)i + 1, what);
		print_blocks(op->free_blocks, top);
		printf("\n");
	}
	uint64_t big = 0;
	for (unsigned o = PFA_HUGE_ORDER; o <= PFA_MAX_ORDER; o++)
		big += a.st.free_blocks[o] << o;
	printf("  1. see above\n  2. free blocks per order:\n");
	for (unsigned o = 0; o <= top; o++)
		printf("       order %2u (%7s): %llu\n", o, size_of(o, b1, sizeof(b1)),
		       (unsigned long long)a.st.free_blocks[o]);
	printf("     free frames %llu of %llu, %llu of them in blocks of 2 MiB or more\n",
	       (unsigned long long)a.st.free, (unsigned long long)frames, (unsigned long long)big);
	printf("  3. frag_permille = %llu\n", (unsigned long long)pfa_fragmentation_permille(&a));
	struct pfa_run runs[(MAX_MEM >> 12) >> PFA_HUGE_ORDER];
	size_t n = pfa_report_take(&a, PFA_HUGE_ORDER, runs, sizeof(runs) / sizeof(runs[0]));
	printf("  4. reporting sends %zu block%s", n, n == 1 ? "" : "s");
	uint64_t sent = 0;
	for (size_t i = 0; i < n; i++) {
		printf("%s %s at %s", i ? "," : ":", size_of(runs[i].order, b1, sizeof(b1)),
		       frame_name(runs[i].pfn, b2, sizeof(b2)));
		sent += 4ULL << runs[i].order;
	}
	printf(" (%llu MiB in all)\n", (unsigned long long)(sent >> 10));
	return 0;
}
