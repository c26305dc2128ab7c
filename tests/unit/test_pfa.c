/*
 * Host tests for the page-frame allocator (kernel/pfa.c, kernel/pfa_check.c).
 *
 * The randomized test runs a million mixed operations against a reference
 * model that is just an owner per frame, and runs pfa_check along the way.
 * The seed is printed first; PFA_SEED=<n> replays a run.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/pfa.h"
#include "kernel/prng.h"

static struct pfa A;
static void *meta;

static void setup(uint64_t limit)
{
	free(meta);
	meta = malloc(pfa_metadata_size(limit));
	assert_int_equal(pfa_init(&A, meta, pfa_metadata_size(limit), limit), 0);
}

static void expect_ok(void)
{
	char why[256];
	if (pfa_check(&A, why, sizeof(why)) != 0)
		fail_msg("pfa_check: %s", why);
}

static uint64_t rng_state;
static uint64_t rnd(void) { return prng_xorshift64(&rng_state); }

static void merges_back_to_maximal_blocks(void **state)
{
	(void)state;
	setup(1 << 16); /* 256 MiB */
	assert_int_equal(pfa_add_free_range(&A, 0, 1 << 16), 0);
	assert_int_equal(A.st.free_blocks[PFA_MAX_ORDER], 4);
	int64_t got[4096];
	int n = 0;
	for (; n < 4096; n++) {
		got[n] = pfa_alloc_block(&A, (unsigned)(n % 5));
		assert_true(got[n] >= 0);
	}
	expect_ok();
	for (int i = n - 1; i >= 0; i--)
		assert_int_equal(pfa_free_block(&A, (uint64_t)got[i], (unsigned)(i % 5), NULL), 0);
	expect_ok();
	assert_int_equal(A.st.free, 1 << 16);
	assert_int_equal(A.st.free_blocks[PFA_MAX_ORDER], 4);
	for (unsigned k = 0; k < PFA_MAX_ORDER; k++)
		assert_int_equal(A.st.free_blocks[k], 0);
}

static void ranges_with_holes_odd_alignment_and_high_pfns(void **state)
{
	(void)state;
	uint64_t base = (5ULL << 30) >> 12; /* 5 GiB */
	setup(base + 3000);
	assert_int_equal(pfa_add_free_range(&A, 1, 7), 0);
	assert_int_equal(pfa_add_free_range(&A, 259, 1000), 0);
	assert_int_equal(pfa_add_free_range(&A, base + 13, 2987), 0);
	expect_ok();
	assert_int_equal(A.st.managed, 7 + 1000 + 2987);
	assert_int_equal(pfa_add_free_range(&A, 5, 4), -EFAULT); /* overlaps */
	/* Long ranges whose only managed frames are at their end, at every
	 * place in the eight frames the check reads at a time: refused. */
	for (uint64_t s = 200; s < 216; s++) {
		assert_int_equal(pfa_add_free_range(&A, s, 259 - s + 1 + s % 3), -EFAULT);
		assert_int_equal(A.st.managed, 7 + 1000 + 2987);
	}
	assert_int_equal(pfa_add_free_range(&A, base + 2990, 100), -EINVAL); /* past the end */
	/* Take everything in single frames: every one must come from a range. */
	uint64_t n = 0;
	int64_t pfn;
	while ((pfn = pfa_alloc_block(&A, 0)) >= 0) {
		assert_true((pfn >= 1 && pfn < 8) || (pfn >= 259 && pfn < 1259) ||
			    ((uint64_t)pfn >= base + 13 && (uint64_t)pfn < base + 3000));
		n++;
	}
	assert_int_equal(n, A.st.managed);
	assert_int_equal(A.st.free, 0);
	expect_ok();
}

static void reserve_punches_holes(void **state)
{
	(void)state;
	setup(4096);
	assert_int_equal(pfa_add_free_range(&A, 0, 4096), 0);
	assert_int_equal(pfa_reserve_range(&A, 100, 300), 0);
	expect_ok();
	assert_int_equal(A.st.managed, 4096 - 300);
	assert_int_equal(pfa_frame_state(&A, 99), PFA_FREE);
	assert_int_equal(pfa_frame_state(&A, 100), PFA_RESERVED);
	assert_int_equal(pfa_frame_state(&A, 399), PFA_RESERVED);
	assert_int_equal(pfa_frame_state(&A, 400), PFA_FREE);
	int64_t used = pfa_alloc_block(&A, 0);
	assert_int_equal(pfa_reserve_range(&A, (uint64_t)used, 1), -EFAULT);
	expect_ok();
}

static void bad_calls_are_detected_and_change_nothing(void **state)
{
	(void)state;
	setup(1024);
	assert_int_equal(pfa_add_free_range(&A, 16, 1000), 0);
	int64_t p = pfa_alloc_block(&A, 2);
	int64_t b;
	size_t nb;
	struct pfa_run run;
	assert_true(p >= 0);
	struct pfa_stats before = A.st;
	assert_int_equal(pfa_free_block(&A, (uint64_t)p, 1, NULL), -EFAULT);     /* wrong order */
	assert_int_equal(pfa_free_block(&A, (uint64_t)p + 1, 0, NULL), -EFAULT); /* inside a block */
	assert_int_equal(pfa_free_block(&A, 4, 0, NULL), -EFAULT);               /* reserved */
	assert_int_equal(pfa_free_block(&A, 5000, 0, NULL), -EFAULT);            /* not managed */
	assert_int_equal(pfa_free_block(&A, (uint64_t)p + 2, 2, NULL), -EFAULT); /* misaligned */
	assert_int_equal(pfa_free_block(&A, 600, 0, NULL), -EFAULT);             /* free frame */
	assert_int_equal(pfa_free_block(&A, (uint64_t)p, 99, NULL), -EFAULT);    /* bad order */
	assert_memory_equal(&before, &A.st, sizeof(before));
	expect_ok();
	assert_int_equal(pfa_free_block(&A, (uint64_t)p, 2, NULL), 0);
	assert_int_equal(pfa_free_block(&A, (uint64_t)p, 2, NULL), -EFAULT);     /* double free */
	assert_int_equal(pfa_balloon_take(&A, 1, &run, 1, &nb), 1);
	b = (int64_t)run.pfn;
	assert_int_equal(pfa_free_block(&A, (uint64_t)b, 0, NULL), -EFAULT);     /* ballooned */
	assert_int_equal(pfa_balloon_return(&A, (uint64_t)b, 0, NULL), 0);
	assert_int_equal(pfa_balloon_return(&A, (uint64_t)b, 0, NULL), -EFAULT); /* twice */
	expect_ok();
}

static void balloon_prefers_2mib_blocks_and_splits_last(void **state)
{
	(void)state;
	setup(8192); /* 32 MiB: 16 huge-page-sized blocks */
	assert_int_equal(pfa_add_free_range(&A, 0, 8192), 0);
	/* Fragment one 2 MiB block by taking a single frame from it. */
	int64_t small = pfa_alloc_block(&A, 0);
	struct pfa_run runs[64];
	size_t n;
	uint64_t got = pfa_balloon_take(&A, 15 * 512, runs, 64, &n);
	assert_int_equal(got, 15 * 512);
	assert_int_equal(n, 15);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(runs[i].order, PFA_HUGE_ORDER);
		assert_int_equal(runs[i].pfn % 512, 0);
		assert_int_equal(pfa_frame_state(&A, runs[i].pfn), PFA_BALLOONED);
	}
	/* Now only the fragmented block is left: smaller runs, largest first. */
	size_t n2;
	got = pfa_balloon_take(&A, 511, runs + n, 64 - n, &n2);
	assert_int_equal(got, 511);
	assert_int_equal(runs[n].order, 8);
	expect_ok();
	for (size_t i = 0; i < n + n2; i++)
		assert_int_equal(pfa_balloon_return(&A, runs[i].pfn, runs[i].order, NULL), 0);
	/* Deflated frames are not backed by the host: marked reported. */
	assert_int_equal(A.st.reported, 8191);
	assert_int_equal(A.st.ballooned, 0);
	/* Freeing the one frame the host does back merges everything into one
	 * block, which by the merge rule is not reported: it will be sent again
	 * rather than missed. */
	assert_int_equal(pfa_free_block(&A, (uint64_t)small, 0, NULL), 0);
	expect_ok();
	assert_int_equal(A.st.free, 8192);
	assert_int_equal(A.st.reported, 0);
}

static void reserve_floor_and_huge_pool_hold(void **state)
{
	(void)state;
	setup(8192);
	assert_int_equal(pfa_add_free_range(&A, 0, 8192), 0);
	assert_int_equal(pfa_pool_init(&A, 4), 4);
	pfa_set_reserve_floor(&A, 1000);
	struct pfa_run runs[256];
	size_t n;
	uint64_t got = pfa_balloon_take(&A, 8192, runs, 256, &n);
	assert_int_equal(A.st.free, 1000);
	assert_int_equal(got, 8192 - 4 * 512 - 1000);
	for (size_t i = 0; i < n; i++)
		for (uint64_t f = runs[i].pfn; f < runs[i].pfn + (1ULL << runs[i].order); f++)
			assert_int_equal(pfa_frame_state(&A, f), PFA_BALLOONED);
	assert_int_equal(pfa_balloon_take(&A, 1, runs, 1, &n), 0);
	int64_t h = pfa_pool_alloc(&A);
	assert_true(h >= 0 && h % 512 == 0);
	assert_int_equal(pfa_frame_state(&A, (uint64_t)h), PFA_POOL_USED);
	assert_int_equal(pfa_pool_free(&A, (uint64_t)h + 1, NULL), -EFAULT);
	assert_int_equal(pfa_pool_free(&A, (uint64_t)h, NULL), 0);
	assert_int_equal(pfa_report_take(&A, 0, runs, 256) > 0, 1);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(pfa_frame_state(&A, A.pool[i]), PFA_POOL_FREE);
	expect_ok();
}

/* huge_allocs/huge_failures feed the balloon's HTLB_PGALLOC/HTLB_PGFAIL,
 * which Linux counts for its hugetlbfs pool. They counted every 2 MiB block
 * of the free lists, so a guest with no pool at all showed the host
 * hugetlb_pgfail=1250. Only the pool counts now: pages it gave, and
 * requests that found it empty. */
static void huge_page_counters_count_the_pool_only(void **state)
{
	(void)state;
	setup(4096);
	assert_int_equal(pfa_add_free_range(&A, 0, 4096), 0);
	/* No pool: 2 MiB blocks come and go, and fail, uncounted. */
	int64_t b1 = pfa_alloc_block(&A, PFA_HUGE_ORDER);
	int64_t b2 = pfa_alloc_block(&A, PFA_HUGE_ORDER);
	assert_true(b1 >= 0 && b2 >= 0);
	assert_int_equal(A.st.huge_allocs, 0);
	assert_int_equal(pfa_pool_alloc(&A), -ENOMEM);
	assert_int_equal(A.st.huge_failures, 1);
	assert_int_equal(pfa_free_block(&A, (uint64_t)b1, PFA_HUGE_ORDER, NULL), 0);
	assert_int_equal(pfa_free_block(&A, (uint64_t)b2, PFA_HUGE_ORDER, NULL), 0);
	/* A pool of two: two pages given, the third request fails. */
	assert_int_equal(pfa_pool_init(&A, 2), 2);
	int64_t p1 = pfa_pool_alloc(&A), p2 = pfa_pool_alloc(&A);
	assert_true(p1 >= 0 && p2 >= 0);
	assert_int_equal(pfa_pool_alloc(&A), -ENOMEM);
	assert_int_equal(A.st.huge_allocs, 2);
	assert_int_equal(A.st.huge_failures, 2);
	/* The free lists run dry of 2 MiB blocks: still not a pool failure. */
	while (pfa_alloc_block(&A, PFA_HUGE_ORDER) >= 0)
		;
	assert_int_equal(A.st.huge_allocs, 2);
	assert_int_equal(A.st.huge_failures, 2);
	/* A page given back can be had again, and counts again. */
	assert_int_equal(pfa_pool_free(&A, (uint64_t)p1, NULL), 0);
	assert_int_equal(pfa_pool_alloc(&A), p1);
	assert_int_equal(A.st.huge_allocs, 3);
	expect_ok();
}

static void reporting_isolates_then_marks_reported(void **state)
{
	(void)state;
	setup(4096);
	assert_int_equal(pfa_add_free_range(&A, 0, 4096), 0);
	int64_t used = pfa_alloc_block(&A, 0); /* breaks the first 2 MiB block apart */
	struct pfa_run runs[16];
	size_t n = pfa_report_take(&A, PFA_HUGE_ORDER, runs, 16);
	assert_true(n >= 1);
	uint64_t isolated = 0;
	for (size_t i = 0; i < n; i++) {
		assert_true(runs[i].order >= PFA_HUGE_ORDER);
		isolated += 1ULL << runs[i].order;
		assert_int_equal(pfa_frame_state(&A, runs[i].pfn), PFA_ISOLATED);
	}
	assert_int_equal(isolated, 4096 - 512);
	/* Nothing can allocate isolated frames meanwhile. */
	int64_t x = pfa_alloc_block(&A, PFA_HUGE_ORDER);
	assert_int_equal(x, -ENOMEM);
	expect_ok();
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pfa_report_done(&A, runs[i].pfn, runs[i].order, true), 0);
	assert_int_equal(A.st.reported, 4096 - 512);
	/* Not reported again until allocated and freed. */
	assert_int_equal(pfa_report_take(&A, PFA_HUGE_ORDER, runs, 16), 0);
	int64_t big = pfa_alloc_block(&A, PFA_HUGE_ORDER);
	assert_true(big >= 0);
	assert_int_equal(pfa_free_block(&A, (uint64_t)big, PFA_HUGE_ORDER, NULL), 0);
	assert_int_equal(pfa_report_take(&A, PFA_HUGE_ORDER, runs, 16), 1);
	assert_int_equal(runs[0].pfn, (uint64_t)big);
	assert_int_equal(pfa_report_done(&A, runs[0].pfn, runs[0].order, false), 0);
	assert_int_equal(pfa_free_block(&A, (uint64_t)used, 0, NULL), 0);
	expect_ok();
}

static int hook_calls;
static void count_hook(void *ctx)
{
	(void)ctx;
	hook_calls++;
}

static void balloon_split_and_free_hook(void **state)
{
	(void)state;
	setup(2048);
	assert_int_equal(pfa_add_free_range(&A, 0, 2048), 0);
	pfa_set_free_hook(&A, count_hook, NULL);
	struct pfa_run r;
	size_t n;
	assert_int_equal(pfa_balloon_take(&A, 512, &r, 1, &n), 512);
	/* Give back 3 frames of a 2 MiB run: split down to them. */
	uint64_t pfn = r.pfn;
	for (unsigned o = r.order; o > 0; o--)
		assert_int_equal(pfa_balloon_split(&A, pfn, o), 0);
	assert_int_equal(pfa_balloon_split(&A, pfn, 0), -EFAULT);
	assert_int_equal(pfa_balloon_split(&A, pfn + 1, 3), -EFAULT);
	assert_int_equal(pfa_balloon_split(&A, pfn + 2, 1), 0); /* the order-1 half at pfn+2 */
	for (int i = 0; i < 3; i++)
		assert_int_equal(pfa_balloon_return(&A, pfn + (uint64_t)i, 0, NULL), 0);
	assert_int_equal(A.st.ballooned, 509);
	expect_ok();
	assert_int_equal(hook_calls, 0); /* no 2 MiB block formed yet */
	int64_t b = pfa_alloc_block(&A, PFA_HUGE_ORDER);
	assert_true(b >= 0);
	assert_int_equal(pfa_free_block(&A, (uint64_t)b, PFA_HUGE_ORDER, NULL), 0);
	assert_true(hook_calls >= 1);
}

static uint64_t oom_frees;
static int64_t oom_victim = -1;
static uint64_t give_back(void *ctx, uint64_t wanted)
{
	(void)ctx;
	(void)wanted;
	if (oom_victim < 0)
		return 0;
	assert_int_equal(pfa_balloon_return(&A, (uint64_t)oom_victim, PFA_HUGE_ORDER, NULL), 0);
	oom_victim = -1;
	oom_frees++;
	return 512;
}

static void oom_handler_is_called_and_retried(void **state)
{
	(void)state;
	setup(1024);
	assert_int_equal(pfa_add_free_range(&A, 0, 1024), 0);
	struct pfa_run runs[4];
	size_t n;
	assert_int_equal(pfa_balloon_take(&A, 1024, runs, 4, &n), 1024);
	oom_victim = (int64_t)runs[0].pfn;
	pfa_set_oom_handler(&A, give_back, NULL);
	int64_t p = pfa_alloc_block(&A, 3);
	assert_true(p >= 0);
	assert_int_equal(oom_frees, 1);
	assert_int_equal(A.st.oom_calls, 1);
	/* A handler with nothing left: the allocation fails, bounded. A 2 MiB
	 * block is not a huge page: no huge-page failure is counted. */
	assert_int_equal(pfa_alloc_block(&A, PFA_HUGE_ORDER), -ENOMEM);
	assert_int_equal(A.st.alloc_failures, 1);
	assert_int_equal(A.st.huge_failures, 0);
	expect_ok();
}

/* --------------------------------------------------------------- random */

#define RLIMIT 20000
static int8_t owner_order[RLIMIT];  /* reference: order of the block starting here, -1 none */
static uint8_t owner_kind[RLIMIT];  /* 0 free/reserved, 1 used, 2 ballooned */

struct held {
	uint64_t pfn;
	unsigned order;
	int kind; /* 1 used, 2 ballooned */
};
static struct held held[RLIMIT];
static size_t n_held;

static void random_operations_against_a_model(void **state)
{
	(void)state;
	uint64_t seed = getenv("PFA_SEED") ? strtoull(getenv("PFA_SEED"), 0, 0) : 0x5eed1234ULL;
	printf("pfa random seed %llu (PFA_SEED to replay)\n", (unsigned long long)seed);
	rng_state = seed ? seed : 1;
	setup(RLIMIT);
	/* Three ranges with holes and odd edges. */
	assert_int_equal(pfa_add_free_range(&A, 3, 5000), 0);
	assert_int_equal(pfa_add_free_range(&A, 6001, 8190), 0);
	assert_int_equal(pfa_add_free_range(&A, 15000, 4999), 0);
	uint64_t managed = A.st.managed;
	memset(owner_order, -1, sizeof(owner_order));
	n_held = 0;

	for (long op = 0; op < 1000000; op++) {
		uint64_t r = rnd();
		if ((r & 3) != 0 && n_held < RLIMIT / 2 && ((r >> 2) & 1)) {
			unsigned order = (unsigned)((r >> 8) % 11);
			int64_t pfn = pfa_alloc_block(&A, order);
			if (pfn < 0)
				continue;
			for (uint64_t f = (uint64_t)pfn; f < (uint64_t)pfn + (1ULL << order); f++) {
				if (owner_kind[f] != 0)
					fail_msg("op %ld: frame %#llx handed out twice", op, (unsigned long long)f);
				owner_kind[f] = 1;
			}
			held[n_held++] = (struct held){ (uint64_t)pfn, order, 1 };
		} else if ((r & 3) == 1 && n_held < RLIMIT / 2) {
			struct pfa_run runs[8];
			size_t n;
			pfa_balloon_take(&A, 1 + (r >> 16) % 1500, runs, 8, &n);
			for (size_t i = 0; i < n; i++) {
				for (uint64_t f = runs[i].pfn; f < runs[i].pfn + (1ULL << runs[i].order); f++) {
					if (owner_kind[f] != 0)
						fail_msg("op %ld: frame %#llx ballooned while owned", op,
							 (unsigned long long)f);
					owner_kind[f] = 2;
				}
				held[n_held++] = (struct held){ runs[i].pfn, runs[i].order, 2 };
			}
		} else if (n_held > 0) {
			size_t i = (size_t)((r >> 20) % n_held);
			struct held h = held[i];
			held[i] = held[--n_held];
			int rc = h.kind == 1 ? pfa_free_block(&A, h.pfn, h.order, NULL)
					     : pfa_balloon_return(&A, h.pfn, h.order, NULL);
			if (rc != 0)
				fail_msg("op %ld: giving back %#llx order %u failed: %d", op,
					 (unsigned long long)h.pfn, h.order, rc);
			for (uint64_t f = h.pfn; f < h.pfn + (1ULL << h.order); f++)
				owner_kind[f] = 0;
		}
		if ((r >> 40) % 97 == 0) {
			/* a reporting pass, sometimes refused by the "host" */
			struct pfa_run runs[32];
			size_t n = pfa_report_take(&A, (unsigned)((r >> 50) % 10), runs, 32);
			for (size_t i = 0; i < n; i++)
				assert_int_equal(pfa_report_done(&A, runs[i].pfn, runs[i].order, (r >> 60) & 1), 0);
		}
		if (op % 100000 == 0) {
			expect_ok();
			uint64_t owned = 0;
			for (size_t i = 0; i < n_held; i++)
				owned += 1ULL << held[i].order;
			assert_int_equal(A.st.free + owned, managed); /* conservation */
		}
	}
	while (n_held > 0) {
		struct held h = held[--n_held];
		assert_int_equal(h.kind == 1 ? pfa_free_block(&A, h.pfn, h.order, NULL)
					     : pfa_balloon_return(&A, h.pfn, h.order, NULL), 0);
	}
	expect_ok();
	assert_int_equal(A.st.free, managed);
	assert_int_equal(A.st.used + A.st.ballooned + A.st.isolated, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(merges_back_to_maximal_blocks),
		cmocka_unit_test(ranges_with_holes_odd_alignment_and_high_pfns),
		cmocka_unit_test(reserve_punches_holes),
		cmocka_unit_test(bad_calls_are_detected_and_change_nothing),
		cmocka_unit_test(balloon_prefers_2mib_blocks_and_splits_last),
		cmocka_unit_test(reserve_floor_and_huge_pool_hold),
		cmocka_unit_test(huge_page_counters_count_the_pool_only),
		cmocka_unit_test(reporting_isolates_then_marks_reported),
		cmocka_unit_test(oom_handler_is_called_and_retried),
		cmocka_unit_test(balloon_split_and_free_hook),
		cmocka_unit_test(random_operations_against_a_model),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(meta);
	return rc;
}
