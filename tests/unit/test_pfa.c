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
#include "kernel/pfa_bits.h"
#include "kernel/prng.h"

static struct pfa A;
static void *meta;

static void setup(uint64_t limit)
{
	free(meta);
	meta = malloc(pfa_metadata_size(limit));
	/* pfa_init need not be given zeroes, and must not read what it did
	 * not write: garbage makes a read of an unwritten byte show. */
	memset(meta, 0xa5, pfa_metadata_size(limit));
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

/* ------------------------------------------------------- lazy sections */

#define SEC PFA_SECTION_FRAMES

/* Frame bytes pfa has written (the rest still hold setup()'s garbage). */
static uint64_t frame_bytes_written(void)
{
	uint64_t n = 0;
	for (uint64_t f = 0; f < A.pfn_limit; f++)
		n += *pfa_frame_ptr(&A, f) != 0xa5;
	return n;
}

/* The section hook's record: which sections were announced, in order. */
static uint8_t announced[2048];
static uint64_t announcements;

static void section_hook(void *ctx, uint64_t pfn, uint64_t frames)
{
	(void)ctx;
	assert_int_equal(frames, SEC);
	assert_int_equal(pfn % SEC, 0);
	assert_true(pfn / SEC < 2048);
	assert_int_equal(announced[pfn / SEC], 0); /* once a section */
	announced[pfn / SEC] = 1;
	announcements++;
}

/* Every frame of [pfn, pfn + 2^order) was announced before it was handed out. */
static void expect_announced(uint64_t pfn, unsigned order)
{
	for (uint64_t s = pfn / SEC; s <= (pfn + (1ULL << order) - 1) / SEC; s++)
		if (!announced[s])
			fail_msg("frame %#llx handed out from section %llu, never announced", (unsigned long long)pfn,
				 (unsigned long long)s);
}

static void lazy_sections_are_written_only_when_used(void **state)
{
	(void)state;
	memset(announced, 0, sizeof(announced));
	announcements = 0;
	/* 64 GiB, with RAM as on q35: [1 MiB, 2 GiB) and [4 GiB, 64 GiB + 2 GiB). */
	uint64_t lo_end = (2ULL << 30) >> 12, hi = (4ULL << 30) >> 12, limit = hi + ((62ULL << 30) >> 12);
	setup(limit);
	pfa_set_section_hook(&A, section_hook, NULL);
	assert_int_equal(A.st.lazy_sections, limit / SEC);
	assert_int_equal(pfa_add_free_range(&A, 256, lo_end - 256), 0);
	assert_int_equal(pfa_add_free_range(&A, hi, limit - hi), 0);
	expect_ok();
	/* Only section 0 (which starts with the low 1 MiB) was written. */
	assert_int_equal(A.st.lazy_sections, limit / SEC - 1);
	assert_true(frame_bytes_written() <= SEC);
	assert_int_equal(A.st.managed, lo_end - 256 + limit - hi);
	assert_int_equal(A.st.free, A.st.managed);
	assert_int_equal(A.st.free_blocks[PFA_MAX_ORDER], (lo_end - SEC) / SEC + (limit - hi) / SEC);
	/* Lazy frames answer as what they stand for. */
	assert_int_equal(pfa_frame_state(&A, hi + 12345), PFA_FREE);
	assert_int_equal(pfa_frame_state(&A, lo_end + 7), PFA_RESERVED);
	assert_false(pfa_frame_reported(&A, hi + 1));

	/* Bad calls on a lazy section change nothing, not even its bytes. */
	struct pfa_stats before = A.st;
	assert_int_equal(pfa_free_block(&A, hi + SEC, 0, NULL), -EFAULT);         /* free already */
	assert_int_equal(pfa_free_block(&A, hi + SEC, PFA_MAX_ORDER, NULL), -EFAULT);
	assert_int_equal(pfa_free_block(&A, lo_end + SEC, 0, NULL), -EFAULT);     /* reserved */
	assert_int_equal(pfa_balloon_return(&A, hi + 2 * SEC, 9, NULL), -EFAULT);
	assert_int_equal(pfa_add_free_range(&A, hi + 3 * SEC + 5, 10), -EFAULT);   /* managed */
	assert_memory_equal(&before, &A.st, sizeof(before));
	assert_true(frame_bytes_written() <= SEC);
	expect_ok();

	/* One allocation writes one section: the lowest with a free block. */
	int64_t p = pfa_alloc_block(&A, 0);
	assert_true(p >= 0);
	assert_int_equal(A.st.lazy_sections, before.lazy_sections);
	for (int i = 0; i < 20000; i++) {
		p = pfa_alloc_block(&A, (unsigned)(i % 11));
		assert_true(p >= 0);
		expect_announced((uint64_t)p, (unsigned)(i % 11));
	}
	expect_ok();
	/* Frame bytes written in written sections only. */
	assert_true(frame_bytes_written() <= (limit / SEC - A.st.lazy_sections) * SEC);
	assert_true(A.st.lazy_sections > limit / SEC / 2);

	/* The balloon takes 40 GiB; the sections it splits are written. */
	static struct pfa_run runs[40000];
	size_t n;
	uint64_t got = pfa_balloon_take(&A, (40ULL << 30) >> 12, runs, 40000, &n);
	assert_int_equal(got, (40ULL << 30) >> 12);
	expect_ok();
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(pfa_frame_state(&A, runs[i].pfn + (1ULL << runs[i].order) - 1), PFA_BALLOONED);
		expect_announced(runs[i].pfn, runs[i].order);
	}
	uint64_t lazy_mid = A.st.lazy_sections;
	assert_true(lazy_mid < before.lazy_sections);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pfa_balloon_return(&A, runs[i].pfn, runs[i].order, NULL), 0);
	expect_ok();

	/* Reserving: a whole lazy section without writing it, a part of one
	 * by writing it; reported back the same. */
	uint64_t top = limit - 4 * SEC; /* still lazy: the balloon went low first */
	assert_true(pfa_frame_state(&A, top) == PFA_FREE);
	uint64_t lazy_before = A.st.lazy_sections, managed = A.st.managed;
	assert_int_equal(pfa_reserve_range(&A, top, SEC), 0);
	assert_int_equal(A.st.lazy_sections, lazy_before);
	assert_int_equal(pfa_frame_state(&A, top + 9), PFA_RESERVED);
	assert_int_equal(pfa_reserve_range(&A, top + SEC + 100, 50), 0);
	assert_int_equal(A.st.lazy_sections, lazy_before - 1);
	assert_int_equal(A.st.managed, managed - SEC - 50);
	expect_ok();
	assert_int_equal(pfa_add_free_range(&A, top, SEC), 0); /* lazy again, reserved -> free */
	assert_int_equal(A.st.lazy_sections, lazy_before - 1);
	assert_int_equal(pfa_frame_state(&A, top + 9), PFA_FREE);
	expect_ok();

	/* Reporting a lazy section writes it (it becomes isolated). */
	struct pfa_run rep[4];
	size_t r = pfa_report_take(&A, PFA_MAX_ORDER, rep, 4);
	assert_int_equal(r, 4);
	assert_int_equal(pfa_frame_state(&A, rep[3].pfn + 77), PFA_ISOLATED);
	for (size_t i = 0; i < r; i++)
		expect_announced(rep[i].pfn, rep[i].order);
	/* Announced exactly the sections written. */
	assert_int_equal(announcements, limit / SEC - A.st.lazy_sections);
	for (size_t i = 0; i < r; i++)
		assert_int_equal(pfa_report_done(&A, rep[i].pfn, rep[i].order, true), 0);
	assert_true(pfa_frame_reported(&A, rep[0].pfn + 5));
	expect_ok();
}

/* pfa_check sees what a stray write into a lazy section's bitmap did. */
static void check_finds_a_bit_set_for_a_lazy_section(void **state)
{
	(void)state;
	setup(8 * SEC + 100);
	assert_int_equal(pfa_add_free_range(&A, 0, 8 * SEC + 100), 0);
	expect_ok();
	assert_int_equal(A.st.lazy_sections, 8);
	/* An order-9 bit for section 5, set behind the allocator's back. */
	sbitmap_set(&A.unreported[9], (5 * SEC) >> 9);
	char why[256];
	assert_int_equal(pfa_check(&A, why, sizeof(why)), -EFAULT);
	printf("pfa_check: %s\n", why);
	assert_non_null(strstr(why, "order 9"));
}


/* A hole's sections: never described, their metadata free for other use. */
static void absent_sections_are_never_touched(void **state)
{
	(void)state;
	/* RAM [0, 2 sections) and [10, 12 sections): sections 2-9 a hole. */
	uint64_t limit = 12 * SEC;
	setup(limit);
	assert_int_equal(pfa_add_free_range(&A, 100, 2 * SEC - 100), 0);
	assert_int_equal(pfa_add_free_range(&A, 10 * SEC, 2 * SEC), 0);
	uint64_t meta_before = pfa_metadata_bytes(&A);
	/* Marks whole lazy reserved sections only: 3 to 8 of [2.5, 9). */
	assert_int_equal(pfa_set_absent(&A, 2 * SEC + SEC / 2, 6 * SEC + SEC / 2), 6);
	assert_int_equal(pfa_set_absent(&A, 2 * SEC, 8 * SEC), 2); /* then 2 and 9 */
	assert_int_equal(pfa_set_absent(&A, 10 * SEC, 2 * SEC), 0); /* free: not a hole */
	assert_int_equal(A.st.absent_sections, 8);
	assert_int_equal(pfa_metadata_bytes(&A), meta_before - 8 * (SEC + 8 * A.chunk_words));
	expect_ok();
	/* Scribble over their metadata, as the kernel's new owner of it would. */
	memset(pfa_frame_ptr(&A, 2 * SEC), 0x5a, 8 * SEC);
	memset(&A.chunks[2 * A.chunk_words], 0x5a, 8 * 8 * A.chunk_words);
	struct pfa_stats before = A.st;
	assert_int_equal(pfa_add_free_range(&A, 5 * SEC + 3, 10), -EINVAL);
	assert_int_equal(pfa_add_free_range(&A, 2 * SEC - 10, 20), -EINVAL); /* reaches into it */
	assert_int_equal(pfa_free_block(&A, 4 * SEC, 0, NULL), -EFAULT);
	assert_int_equal(pfa_frame_state(&A, 6 * SEC + 1), PFA_RESERVED);
	assert_int_equal(pfa_reserve_range(&A, 3 * SEC, 2 * SEC), 0);
	assert_memory_equal(&before, &A.st, sizeof(before));
	expect_ok();
	/* Everything else works around it; none of it writes there. */
	static struct pfa_run runs[4096];
	size_t n;
	assert_true(pfa_balloon_take(&A, 3 * SEC, runs, 4096, &n) > 0);
	for (int i = 0; i < 3000; i++)
		assert_true(pfa_alloc_block(&A, 0) >= 0 || A.st.free <= A.reserve_floor);
	struct pfa_run rep[8];
	size_t r = pfa_report_take(&A, 9, rep, 8);
	for (size_t i = 0; i < r; i++)
		assert_int_equal(pfa_report_done(&A, rep[i].pfn, rep[i].order, true), 0);
	expect_ok();
	for (uint64_t i = 0; i < 8 * SEC; i++)
		if (pfa_frame_ptr(&A, 2 * SEC)[i] != 0x5a)
			fail_msg("byte %llu of a hole's frame bytes was written", (unsigned long long)i);
	for (uint64_t i = 0; i < 8 * A.chunk_words; i++)
		assert_int_equal(A.chunks[2 * A.chunk_words + i], 0x5a5a5a5a5a5a5a5aULL);
}

/* --------------------------------------------------------------- random */

#define RLIMIT (6 * PFA_SECTION_FRAMES + 1000) /* six whole sections and a part */
static int8_t owner_order[RLIMIT];  /* reference: order of the block starting here, -1 none */
static uint8_t owner_kind[RLIMIT];  /* 0 free/reserved, 1 used, 2 ballooned */

struct held {
	uint64_t pfn;
	unsigned order;
	int kind; /* 1 used, 2 ballooned */
};
static struct held held[RLIMIT];
static size_t n_held;

static void random_run(const uint64_t ranges[][2], size_t n_ranges)
{
	uint64_t seed = getenv("PFA_SEED") ? strtoull(getenv("PFA_SEED"), 0, 0) : 0x5eed1234ULL;
	printf("pfa random seed %llu (PFA_SEED to replay)\n", (unsigned long long)seed);
	rng_state = seed ? seed : 1;
	setup(RLIMIT);
	memset(owner_kind, 0, sizeof(owner_kind));
	for (size_t i = 0; i < n_ranges; i++)
		assert_int_equal(pfa_add_free_range(&A, ranges[i][0], ranges[i][1]), 0);
	expect_ok();
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

static void random_operations_against_a_model(void **state)
{
	(void)state;
	/* Three ranges with holes and odd edges, in the first section. */
	static const uint64_t ranges[][2] = { { 3, 5000 }, { 6001, 8190 }, { 15000, 4999 } };
	random_run(ranges, 3);
}

static void random_operations_over_lazy_sections(void **state)
{
	(void)state;
	/* Whole sections left lazy (1-3, 5) beside written ones (0, 4, 6). */
	static const uint64_t ranges[][2] = { { 3, 5000 }, { PFA_SECTION_FRAMES, 3 * PFA_SECTION_FRAMES },
					      { 4 * PFA_SECTION_FRAMES + 7, 2 * PFA_SECTION_FRAMES + 900 } };
	random_run(ranges, 3);
	assert_true(A.st.lazy_sections < 4); /* the operations reached into them */
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
		cmocka_unit_test(lazy_sections_are_written_only_when_used),
		cmocka_unit_test(check_finds_a_bit_set_for_a_lazy_section),
		cmocka_unit_test(absent_sections_are_never_touched),
		cmocka_unit_test(random_operations_against_a_model),
		cmocka_unit_test(random_operations_over_lazy_sections),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(meta);
	return rc;
}
