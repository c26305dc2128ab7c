/*
 * Host tests for the swap-slot allocator (kernel/swap_slots.c).
 *
 * The randomized test runs a million mixed operations, good and bad calls,
 * against a reference model that keeps an owner and a state per slot, and
 * runs swap_slots_check along the way. The seed is printed first;
 * SWAP_SEED=<n> replays a run, SWAP_VERBOSE=1 with the bad-call reports.
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
#include <fcntl.h>
#include <unistd.h>

#include "kernel/prng.h"
#include "kernel/swap_slots.h"

static struct swap_slots S;
static void *meta;

static void setup(uint64_t n)
{
	free(meta);
	meta = malloc(swap_slots_metadata_size(n));
	assert_int_equal(swap_slots_init(&S, meta, swap_slots_metadata_size(n), n), 0);
}

static void expect_ok(void)
{
	char why[256];
	if (swap_slots_check(&S, why, sizeof(why)) != 0)
		fail_msg("swap_slots_check: %s", why);
}

static int64_t alloc(unsigned want, uint64_t *first)
{
	return swap_slots_alloc(&S, want, first);
}

static void init_rejects_bad_sizes(void **state)
{
	(void)state;
	uint64_t buf[64];
	assert_int_equal(swap_slots_init(&S, buf, sizeof(buf), 0), -EINVAL);
	assert_int_equal(swap_slots_init(&S, buf, sizeof(buf), 100000), -EINVAL); /* too small */
	assert_int_equal(swap_slots_init(&S, buf, sizeof(buf), SWAP_SLOTS_LIMIT + 1), -EINVAL);
	assert_int_equal(swap_slots_init(&S, buf, sizeof(buf), 1), 0);
	expect_ok();
	assert_int_equal(S.st.free, 1);
}

/* On an empty area, runs come out back to back from slot 0. */
static void runs_are_adjacent_on_an_empty_area(void **state)
{
	(void)state;
	setup(1000);
	uint64_t first;
	for (unsigned i = 0; i < 20; i++) {
		assert_int_equal(alloc(16, &first), 16);
		assert_int_equal(first, i * 16);
	}
	assert_int_equal(alloc(64, &first), 64);
	assert_int_equal(first, 320);
	assert_int_equal(S.st.clustered, 21);
	assert_int_equal(S.st.short_allocs, 0);
	assert_int_equal(S.st.used, 384);
	assert_int_equal(alloc(0, &first), -EINVAL);
	assert_int_equal(alloc(SWAP_SLOTS_RUN_MAX + 1, &first), -EINVAL);
	expect_ok();
}

/* Every other slot free: runs of one, the lowest first; then a freed
 * cluster gives a full run again. */
static void fragmented_area_hands_out_shorter_runs(void **state)
{
	(void)state;
	setup(256);
	uint64_t first;
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(alloc(64, &first), 64);
	for (uint64_t i = 0; i < 256; i += 2)
		assert_int_equal(swap_slots_free(&S, i, 1, NULL), 0);
	expect_ok();
	uint64_t allocs = S.st.allocs;
	for (uint64_t i = 0; i < 10; i++) {
		assert_int_equal(alloc(8, &first), 1);
		assert_int_equal(first % 2, 0);
	}
	assert_int_equal(S.st.short_allocs, 10);
	assert_int_equal(S.st.allocs - allocs, 10);
	/* 21 joins the free 20 and 22: the lowest free slot starts a run of three. */
	assert_int_equal(swap_slots_free(&S, 21, 1, NULL), 0);
	assert_int_equal(alloc(8, &first), 3);
	assert_int_equal(first, 20);
	/* A wholly free cluster wins over scattered slots. */
	for (uint64_t i = 129; i < 192; i += 2)
		assert_int_equal(swap_slots_free(&S, i, 1, NULL), 0);
	assert_int_equal(alloc(40, &first), 40);
	assert_int_equal(first, 128);
	assert_int_equal(alloc(24, &first), 24); /* next-fit: the rest of it */
	assert_int_equal(first, 168);
	expect_ok();
}

/* A run stops at the end of the area; the cursor wraps to the start. */
static void runs_stop_at_the_end_and_wrap(void **state)
{
	(void)state;
	setup(100);
	uint64_t first;
	assert_int_equal(alloc(64, &first), 64);
	assert_int_equal(alloc(64, &first), 36); /* no whole cluster left: 64..99 */
	assert_int_equal(first, 64);
	assert_int_equal(S.cursor, 0);
	assert_int_equal(swap_slots_free(&S, 10, 5, NULL), 0);
	assert_int_equal(alloc(3, &first), 3);
	assert_int_equal(first, 10);
	assert_int_equal(alloc(3, &first), 2);
	assert_int_equal(first, 13);
	expect_ok();
}

static void full_area_returns_enospc(void **state)
{
	(void)state;
	setup(130);
	uint64_t first, got = 0;
	int64_t n;
	while ((n = alloc(7, &first)) > 0)
		got += (uint64_t)n;
	assert_int_equal(n, -ENOSPC);
	assert_int_equal(got, 130);
	assert_int_equal(S.st.free, 0);
	assert_int_equal(S.st.full, 1);
	struct swap_slots_stats before = S.st;
	assert_int_equal(alloc(1, &first), -ENOSPC);
	before.full++;
	assert_memory_equal(&before, &S.st, sizeof(before));
	assert_int_equal(swap_slots_free(&S, 77, 1, NULL), 0);
	assert_int_equal(alloc(7, &first), 1);
	assert_int_equal(first, 77);
	expect_ok();
}

/* A slot marked bad is out of use for good: not freed, not handed out. */
static void bad_slots_are_never_handed_out_again(void **state)
{
	(void)state;
	setup(200);
	uint64_t first;
	assert_int_equal(alloc(64, &first), 64);
	assert_int_equal(swap_slots_written(&S, 0, 64, NULL), 0);
	assert_int_equal(swap_slots_mark_bad(&S, 5, 3, NULL), 0);  /* a failed read of valid slots */
	assert_int_equal(alloc(1, &first), 1);
	assert_int_equal(swap_slots_mark_bad(&S, first, 1, NULL), 0); /* a failed write */
	uint64_t bad_slot = first;
	assert_int_equal(S.st.bad, 4);
	assert_int_equal(swap_slots_free(&S, 5, 1, NULL), -EFAULT);
	assert_int_equal(swap_slots_mark_bad(&S, 5, 1, NULL), -EFAULT);
	assert_int_equal(swap_slots_free(&S, 0, 64, NULL), -EFAULT); /* covers bad ones */
	assert_int_equal(swap_slots_free(&S, 0, 5, NULL), 0);
	assert_int_equal(swap_slots_free(&S, 8, 56, NULL), 0);
	int64_t n;
	uint64_t got = 0;
	while ((n = alloc(64, &first)) > 0) {
		for (uint64_t i = first; i < first + (uint64_t)n; i++)
			if ((i >= 5 && i < 8) || i == bad_slot)
				fail_msg("bad slot %llu handed out", (unsigned long long)i);
		got += (uint64_t)n;
	}
	assert_int_equal(got, 200 - 4);
	assert_int_equal(S.st.used + S.st.bad, 200);
	expect_ok();
}

/* alloc -> written -> invalidate -> written -> free, and counters follow. */
static void states_follow_the_write_path(void **state)
{
	(void)state;
	setup(64);
	uint64_t first;
	assert_int_equal(alloc(4, &first), 4);
	assert_int_equal(swap_slots_state(&S, first), SWAP_SLOT_ALLOCATED);
	assert_int_equal(swap_slots_written(&S, first, 4, NULL), 0);
	assert_int_equal(swap_slots_state(&S, first + 3), SWAP_SLOT_VALID);
	assert_int_equal(S.st.valid, 4);
	assert_int_equal(swap_slots_invalidate(&S, first + 1, 1, NULL), 0);
	assert_int_equal(S.st.valid, 3);
	assert_int_equal(S.st.used, 4);
	assert_int_equal(swap_slots_written(&S, first + 1, 1, NULL), 0);
	assert_int_equal(swap_slots_free(&S, first, 4, NULL), 0);
	assert_int_equal(S.st.used, 0);
	assert_int_equal(S.st.valid, 0);
	assert_int_equal(S.st.frees, 4);
	assert_int_equal(swap_slots_state(&S, 64), SWAP_SLOT_BAD); /* outside */
	expect_ok();
}

static void bad_calls_are_refused_and_change_nothing(void **state)
{
	(void)state;
	setup(300);
	uint64_t first;
	assert_int_equal(alloc(10, &first), 10);
	assert_int_equal(swap_slots_written(&S, 0, 5, NULL), 0);
	uint8_t *snap = malloc(swap_slots_metadata_size(300));
	memcpy(snap, meta, swap_slots_metadata_size(300));
	struct swap_slots_stats before = S.st;
	uint64_t cursor = S.cursor;
	assert_int_equal(swap_slots_free(&S, 20, 1, NULL), -EFAULT);        /* never allocated */
	assert_int_equal(swap_slots_free(&S, 8, 4, NULL), -EFAULT);         /* runs into free ones */
	assert_int_equal(swap_slots_free(&S, 300, 1, NULL), -EFAULT);       /* past the end */
	assert_int_equal(swap_slots_free(&S, 299, 2, NULL), -EFAULT);       /* straddles the end */
	assert_int_equal(swap_slots_free(&S, 1, UINT64_MAX, NULL), -EFAULT);/* wraps */
	assert_int_equal(swap_slots_free(&S, 0, 0, NULL), -EINVAL);
	assert_int_equal(swap_slots_written(&S, 4, 2, NULL), -EFAULT);      /* 4 is valid already */
	assert_int_equal(swap_slots_invalidate(&S, 5, 1, NULL), -EFAULT);   /* not valid */
	assert_int_equal(swap_slots_mark_bad(&S, 10, 1, NULL), -EFAULT);    /* free */
	before.bad_calls += 9;
	assert_memory_equal(snap, meta, swap_slots_metadata_size(300));
	assert_memory_equal(&before, &S.st, sizeof(before));
	assert_int_equal(cursor, S.cursor);
	assert_int_equal(swap_slots_free(&S, 0, 10, NULL), 0);
	assert_int_equal(swap_slots_free(&S, 0, 10, NULL), -EFAULT);        /* double free */
	free(snap);
	expect_ok();
}

/* Each kind of corruption is caught, and the message says where. */
static void checker_catches_corruption(void **state)
{
	(void)state;
	char why[256];
	uint64_t first;
	struct {
		const char *name, *expect;
	} cases[] = {
		{ "free bit cleared", "slot 0x50 is free but its free bit is 0" },
		{ "free bit set", "slot 0x3 is allocated but its free bit is 1" },
		{ "summary bit cleared", "free bitmap level 1 bit 2" },
		{ "whole bit cleared", "cluster 3 (slots 0xc0..) has whole bit 0" },
		{ "state byte", "slot 0x7 has state byte 9" },
		{ "counter", "counters free" },
		{ "bit past the end", "free bitmap level 0: bits set past the end" },
	};
	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		setup(1000);
		assert_int_equal(alloc(64, &first), 64);
		expect_ok();
		switch (c) {
		case 0: S.free.level[0][1] &= ~(1ULL << 16); break;
		case 1: S.free.level[0][0] |= 1ULL << 3; break;
		case 2: S.free.level[1][0] &= ~(1ULL << 2); break;
		case 3: S.whole.level[0][0] &= ~(1ULL << 3); break;
		case 4: S.state[7] = 9; break;
		case 5: S.st.free--; break;
		case 6: S.free.level[0][15] |= 1ULL << 60; break; /* slot 1020 */
		}
		assert_int_equal(swap_slots_check(&S, why, sizeof(why)), -EFAULT);
		if (!strstr(why, cases[c].expect))
			fail_msg("%s: checker said \"%s\", expected \"%s\"", cases[c].name, why,
				 cases[c].expect);
	}
}

/* --------------------------------------------------------------- random */

#define RSLOTS 5003 /* not a multiple of 64: a partial last cluster */
static uint32_t owner[RSLOTS];   /* reference: allocation that owns the slot, 0 none */
static uint8_t mstate[RSLOTS];   /* reference: enum swap_slot_state */
static uint16_t cfree[RSLOTS / 64 + 1]; /* reference: free slots per 64-slot cluster */
static uint64_t n_free, n_used, n_valid, n_bad;
static uint64_t rng_state;
static uint64_t rnd(void) { return prng_xorshift64(&rng_state); }

static void model_reset(void)
{
	memset(owner, 0, sizeof(owner));
	memset(mstate, SWAP_SLOT_FREE, sizeof(mstate));
	for (uint64_t c = 0; c < RSLOTS / 64 + 1; c++)
		cfree[c] = (uint16_t)(RSLOTS - c * 64 < 64 ? RSLOTS - c * 64 : 64);
	n_free = RSLOTS;
	n_used = n_valid = n_bad = 0;
}

static void model_set(uint64_t i, unsigned to, uint32_t who)
{
	unsigned from = mstate[i];
	n_free -= from == SWAP_SLOT_FREE;
	n_used -= from == SWAP_SLOT_ALLOCATED || from == SWAP_SLOT_VALID;
	n_valid -= from == SWAP_SLOT_VALID;
	n_bad -= from == SWAP_SLOT_BAD;
	cfree[i / 64] -= from == SWAP_SLOT_FREE;
	n_free += to == SWAP_SLOT_FREE;
	n_used += to == SWAP_SLOT_ALLOCATED || to == SWAP_SLOT_VALID;
	n_valid += to == SWAP_SLOT_VALID;
	n_bad += to == SWAP_SLOT_BAD;
	cfree[i / 64] += to == SWAP_SLOT_FREE;
	mstate[i] = (uint8_t)to;
	owner[i] = to == SWAP_SLOT_FREE || to == SWAP_SLOT_BAD ? 0 : who ? who : owner[i];
}

/* Would a run call find every slot of [first, first + count) in `from`? */
static int model_run_ok(uint64_t first, uint64_t count, unsigned from)
{
	if (count == 0)
		return -EINVAL;
	if (first >= RSLOTS || count > RSLOTS - first)
		return -EFAULT;
	for (uint64_t i = first; i < first + count; i++)
		if (!((from >> mstate[i]) & 1u))
			return -EFAULT;
	return 0;
}

static int model_has_whole_cluster(void)
{
	for (uint64_t c = 0; c < RSLOTS / 64; c++)
		if (cfree[c] == 64)
			return 1;
	return 0;
}

static void random_operations_against_a_model(void **state)
{
	(void)state;
	uint64_t seed = getenv("SWAP_SEED") ? strtoull(getenv("SWAP_SEED"), 0, 0) : 0x5a1075ULL;
	printf("swap_slots random seed %llu (SWAP_SEED to replay)\n", (unsigned long long)seed);
	rng_state = seed ? seed : 1;
	setup(RSLOTS);
	model_reset();
	/* Half the run calls are bad ones; their reports would flood the log
	 * (SWAP_VERBOSE=1 keeps them, for a replay). */
	fflush(stdout);
	int saved_stdout = dup(1), null = open("/dev/null", O_WRONLY);
	assert_true(saved_stdout >= 0 && null >= 0);
	if (!getenv("SWAP_VERBOSE"))
		dup2(null, 1);
	close(null);
	uint32_t next_owner = 1;
	struct swap_slots_stats total = { 0 };
	unsigned disks = 1;
	static const unsigned from_of[] = {
		1u << SWAP_SLOT_ALLOCATED | 1u << SWAP_SLOT_VALID, /* free */
		1u << SWAP_SLOT_ALLOCATED,                         /* written */
		1u << SWAP_SLOT_VALID,                             /* invalidate */
		1u << SWAP_SLOT_ALLOCATED | 1u << SWAP_SLOT_VALID, /* mark bad */
	};
	static const unsigned to_of[] = { SWAP_SLOT_FREE, SWAP_SLOT_VALID, SWAP_SLOT_ALLOCATED,
					  SWAP_SLOT_BAD };

	for (long op = 0; op < 1000000; op++) {
		uint64_t r = rnd();
		/* Phases that fill the area and drain it, so it goes through full,
		 * fragmented, and nearly empty with whole clusters again. */
		unsigned kind = (unsigned)(r % 100), fill = (op / 20000) % 2 ? 60 : 15;
		if (kind < fill) {
			/* Mostly small runs, so the area fills and fragments. */
			unsigned want = (r >> 8) & 1 ? 1 + (unsigned)((r >> 9) % 8)
						      : 1 + (unsigned)((r >> 9) % SWAP_SLOTS_RUN_MAX);
			int whole = model_has_whole_cluster();
			uint64_t first = UINT64_MAX;
			int64_t n = swap_slots_alloc(&S, want, &first);
			if (n_free == 0) {
				if (n != -ENOSPC)
					fail_msg("op %ld: alloc(%u) on a full area = %lld", op, want, (long long)n);
				continue;
			}
			if (n < 1 || n > want)
				fail_msg("op %ld: alloc(%u) = %lld with %llu free", op, want, (long long)n,
					 (unsigned long long)n_free);
			if (whole && n != want)
				fail_msg("op %ld: alloc(%u) = %lld with a whole free cluster", op, want,
					 (long long)n);
			for (uint64_t i = first; i < first + (uint64_t)n; i++) {
				if (i >= RSLOTS || mstate[i] != SWAP_SLOT_FREE)
					fail_msg("op %ld: slot %llu handed out while %s (owner %u)", op,
						 (unsigned long long)i, i < RSLOTS ? "not free" : "outside",
						 i < RSLOTS ? owner[i] : 0);
				model_set(i, SWAP_SLOT_ALLOCATED, next_owner);
			}
			next_owner++;
		} else {
			/* A run call on a run near an owned slot, or anywhere: good
			 * and bad calls both, the model says which. */
			unsigned k = (unsigned)((r >> 56) % 100);
			unsigned call = k < 55 ? 0 : k < 78 ? 1 : k < 99 ? 2 : 3;
			uint64_t first = (r >> 8) % (RSLOTS + 8);
			uint64_t count = (r >> 24) % 4 ? 1 + (r >> 26) % 16 : (r >> 26) % 3;
			if ((r >> 32) % 8 && first < RSLOTS && owner[first]) {
				/* Stretch to the whole run of this owner. */
				uint32_t o = owner[first];
				while (first > 0 && owner[first - 1] == o)
					first--;
				count = 0;
				while (first + count < RSLOTS && owner[first + count] == o)
					count++;
				if ((r >> 40) % 4 == 0 && count > 1)
					count = 1 + (r >> 42) % (count - 1); /* a part of it */
			}
			int want = model_run_ok(first, count, from_of[call]);
			int rc = call == 0 ? swap_slots_free(&S, first, count, NULL)
			       : call == 1 ? swap_slots_written(&S, first, count, NULL)
			       : call == 2 ? swap_slots_invalidate(&S, first, count, NULL)
					   : swap_slots_mark_bad(&S, first, count, NULL);
			if (rc != want)
				fail_msg("op %ld: call %u on %llu + %llu = %d, model says %d", op, call,
					 (unsigned long long)first, (unsigned long long)count, rc, want);
			if (rc == 0)
				for (uint64_t i = first; i < first + count; i++)
					model_set(i, to_of[call], 0);
		}
		if (S.st.free != n_free || S.st.used != n_used || S.st.valid != n_valid ||
		    S.st.bad != n_bad)
			fail_msg("op %ld: counters free %llu used %llu valid %llu bad %llu, model %llu %llu "
				 "%llu %llu", op, (unsigned long long)S.st.free, (unsigned long long)S.st.used,
				 (unsigned long long)S.st.valid, (unsigned long long)S.st.bad,
				 (unsigned long long)n_free, (unsigned long long)n_used,
				 (unsigned long long)n_valid, (unsigned long long)n_bad);
		if (n_bad > RSLOTS / 4) {
			total.allocs += S.st.allocs, total.clustered += S.st.clustered;
			total.short_allocs += S.st.short_allocs, total.full += S.st.full;
			total.bad_calls += S.st.bad_calls, disks++;
			/* A fresh disk now and then, so bad slots do not take over. */
			setup(RSLOTS);
			model_reset();
		}
		if (op % 1000 == 0) { /* O(slots): a thousand checks */
			expect_ok();
			for (uint64_t i = 0; i < RSLOTS; i++)
				if (swap_slots_state(&S, i) != mstate[i])
					fail_msg("op %ld: slot %llu is %d, model %d", op, (unsigned long long)i,
						 swap_slots_state(&S, i), mstate[i]);
		}
	}
	expect_ok();
	fflush(stdout);
	dup2(saved_stdout, 1);
	close(saved_stdout);
	printf("swap_slots random: %u disks, %llu allocations, %llu clustered, %llu short, "
	       "%llu full, %llu bad calls refused\n", disks,
	       (unsigned long long)(total.allocs + S.st.allocs),
	       (unsigned long long)(total.clustered + S.st.clustered),
	       (unsigned long long)(total.short_allocs + S.st.short_allocs),
	       (unsigned long long)(total.full + S.st.full),
	       (unsigned long long)(total.bad_calls + S.st.bad_calls));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_rejects_bad_sizes),
		cmocka_unit_test(runs_are_adjacent_on_an_empty_area),
		cmocka_unit_test(fragmented_area_hands_out_shorter_runs),
		cmocka_unit_test(runs_stop_at_the_end_and_wrap),
		cmocka_unit_test(full_area_returns_enospc),
		cmocka_unit_test(bad_slots_are_never_handed_out_again),
		cmocka_unit_test(states_follow_the_write_path),
		cmocka_unit_test(bad_calls_are_refused_and_change_nothing),
		cmocka_unit_test(checker_catches_corruption),
		cmocka_unit_test(random_operations_against_a_model),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(meta);
	return rc;
}
