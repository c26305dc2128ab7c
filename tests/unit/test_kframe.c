/*
 * Host tests for kernel/kframe.c: the kernel's single frames grouped in
 * 2 MiB chunks over the real allocator (kernel/pfa.c).
 *
 * The point of the module is what free memory looks like afterwards, so the
 * tests end by asking the allocator how much of its free memory sits in
 * whole 2 MiB blocks — what free page reporting can hand back.
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

#include "kernel/kframe.h"
#include "kernel/pfa.h"
#include "kernel/prng.h"

#define FRAMES (1u << 15) /* 128 MiB */
#define CHUNK 512u

static struct pfa A;
static struct kframes K;
static void *meta;

static void setup(void)
{
	free(meta);
	meta = malloc(pfa_metadata_size(FRAMES));
	assert_int_equal(pfa_init(&A, meta, pfa_metadata_size(FRAMES), FRAMES), 0);
	assert_int_equal(pfa_add_free_range(&A, 256, FRAMES - 256), 0);
	kframe_init(&K, &A);
}

static void expect_ok(void)
{
	char why[256];
	if (pfa_check(&A, why, sizeof(why)) != 0)
		fail_msg("pfa_check: %s", why);
	if (kframe_check(&K, why, sizeof(why)) != 0)
		fail_msg("kframe_check: %s", why);
}

/* Free frames in blocks of at least 2 MiB, per thousand free frames. */
static uint64_t whole_permille(void)
{
	uint64_t whole = 0;
	for (unsigned o = PFA_HUGE_ORDER; o <= PFA_MAX_ORDER; o++)
		whole += A.st.free_blocks[o] << o;
	return A.st.free ? whole * 1000 / A.st.free : 1000;
}

static unsigned chunks_spanned(const int64_t *pfns, unsigned n)
{
	uint64_t seen[64];
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t blk = (uint64_t)pfns[i] / CHUNK;
		unsigned j = 0;
		while (j < k && seen[j] != blk)
			j++;
		if (j == k && k < 64)
			seen[k++] = blk;
	}
	return k;
}

/* Kernel frames asked for between user allocations land together. */
static void kernel_frames_share_a_chunk(void **state)
{
	(void)state;
	setup();
	int64_t kf[300];
	for (unsigned i = 0; i < 300; i++) {
		assert_true(pfa_alloc_block(&A, 0) >= 0); /* a user frame between each */
		kf[i] = kframe_alloc(&K, 0);
		assert_true(kf[i] >= 0);
	}
	expect_ok();
	assert_int_equal(chunks_spanned(kf, 300), 1);
	assert_int_equal(K.strays, 0);
}

/* A new chunk is taken before the last one runs out, so grouped frames are
 * there when no whole block is free any more. */
static void a_chunk_is_ready_before_the_last_is_full(void **state)
{
	(void)state;
	setup();
	for (unsigned i = 0; i < CHUNK - KFRAME_LOW; i++)
		assert_true(kframe_alloc(&K, 0) >= 0);
	assert_int_equal(K.n_chunks, 1);
	assert_true(kframe_alloc(&K, 0) >= 0);
	assert_int_equal(K.n_chunks, 2);
	/* The guest takes everything else: kernel frames still come grouped. */
	while (pfa_alloc_block_flags(&A, 0, PFA_NO_OOM) >= 0)
		;
	for (unsigned i = 0; i < 300; i++)
		assert_true(kframe_alloc(&K, PFA_NO_OOM) >= 0);
	assert_int_equal(K.strays, 0);
	expect_ok();
}

/* Chunks full and no whole block free: a frame from anywhere, counted, and
 * freed like any other. */
static void strays_when_nothing_is_whole(void **state)
{
	(void)state;
	setup();
	static int64_t user[FRAMES];
	unsigned n = 0;
	int64_t p;
	while ((p = pfa_alloc_block_flags(&A, 0, PFA_NO_OOM)) >= 0)
		user[n++] = p;
	assert_true(n > 800);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(pfa_free_block(&A, (uint64_t)user[i * 100], 0, NULL), 0);
	int64_t kf[8];
	for (unsigned i = 0; i < 8; i++) {
		kf[i] = kframe_alloc(&K, PFA_NO_OOM);
		assert_true(kf[i] >= 0);
	}
	assert_int_equal(K.n_chunks, 0);
	assert_int_equal(K.strays, 8);
	assert_true(kframe_alloc(&K, PFA_NO_OOM) < 0);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(kframe_free(&K, (uint64_t)kf[i]), 0);
	assert_int_equal(K.strays, 0);
	assert_int_equal(kframe_free(&K, (uint64_t)kf[0]), -EFAULT); /* twice */
	expect_ok();
}

/* An empty chunk goes back whole once enough is ready without it. */
static void an_empty_chunk_goes_back(void **state)
{
	(void)state;
	setup();
	int64_t kf[2 * CHUNK];
	unsigned n = 0;
	while (K.n_chunks < 3)
		kf[n++] = kframe_alloc(&K, 0);
	expect_ok();
	uint64_t before = A.st.free;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(kframe_free(&K, (uint64_t)kf[i]), 0);
	assert_true(K.chunks_returned >= 1);
	assert_true(A.st.free > before);
	assert_true(K.free_in_chunks >= KFRAME_LOW);
	assert_int_equal(kframe_free(&K, (uint64_t)kf[0]), -EFAULT);
	expect_ok();
}

/*
 * The squeeze-and-need of issue 12 in the small: the guest takes all free
 * memory a frame at a time, the kernel needs frames meanwhile (page tables,
 * heap), then the guest frees everything. With the frames grouped, free
 * memory is whole again; taken from the allocator directly (as before),
 * each kernel frame pins a 2 MiB block apart.
 */
static void after_a_squeeze_free_memory_is_whole_again(void **state)
{
	(void)state;
	for (int grouped = 1; grouped >= 0; grouped--) {
		setup();
		for (unsigned i = 0; i < 40; i++)
			assert_true(kframe_alloc(&K, 0) >= 0); /* boot */
		static int64_t user[FRAMES];
		unsigned n = 0;
		int64_t p;
		while ((p = pfa_alloc_block_flags(&A, 0, PFA_NO_OOM)) >= 0) {
			user[n++] = p;
			if (n % 256 == 0) /* the kernel needs a frame now and then */
				(void)(grouped ? kframe_alloc(&K, PFA_NO_OOM) : pfa_alloc_block_flags(&A, 0, PFA_NO_OOM));
		}
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(pfa_free_block(&A, (uint64_t)user[i], 0, NULL), 0);
		expect_ok();
		uint64_t whole = whole_permille();
		if (grouped)
			assert_true(whole >= 950);
		else
			assert_true(whole < 500); /* what the test would see without kframe */
		print_message("%s: %lu.%lu%% of free memory in whole 2 MiB blocks, %lu strays\n",
			      grouped ? "grouped" : "ungrouped", (unsigned long)(whole / 10),
			      (unsigned long)(whole % 10), (unsigned long)K.strays);
	}
}

static uint64_t rng_state;
static uint64_t rnd(void) { return prng_xorshift64(&rng_state); }

/* Any sequence: random user allocations (any order up to 2 MiB) and frees,
 * kernel frames taken and given back among them, memory often exhausted.
 * Once the guest has freed its memory, at least 95 % of free memory is in
 * whole 2 MiB blocks. The kernel's share is about what blimp's is (a few
 * hundred frames in a 512 MiB guest, here some 300 of 32768): with ten
 * times that (a kernel frame in every tenth operation), frames taken while
 * no whole block was free (strays) pinned up to 15 % in one seed of 20 —
 * moving them into chunks later is not done. KFRAME_SEED=<n> replays one. */
static void any_sequence_leaves_free_memory_whole(void **state)
{
	(void)state;
	const char *env = getenv("KFRAME_SEED");
	uint64_t first = env ? strtoull(env, NULL, 0) : 1, worst = 1000;
	for (uint64_t seed = first; seed < first + (env ? 1 : 20); seed++) {
		rng_state = seed * PRNG_GOLDEN_GAMMA | 1;
		setup();
		static struct { int64_t pfn; unsigned order; } user[FRAMES];
		static int64_t kern[4096];
		unsigned nu = 0, nk = 0;
		for (unsigned op = 0; op < 20000; op++) {
			unsigned r = (unsigned)(rnd() % 100);
			if (r < 60) {
				unsigned order = (unsigned)(rnd() % (PFA_HUGE_ORDER + 1));
				int64_t p = pfa_alloc_block_flags(&A, order, PFA_NO_OOM);
				if (p >= 0) {
					user[nu].pfn = p;
					user[nu++].order = order;
				}
			} else if (r < 97 && nu) {
				unsigned i = (unsigned)(rnd() % nu);
				assert_int_equal(pfa_free_block(&A, (uint64_t)user[i].pfn, user[i].order, NULL), 0);
				user[i] = user[--nu];
			} else if (r < 99 && nk < 4096) {
				int64_t p = kframe_alloc(&K, PFA_NO_OOM);
				if (p >= 0)
					kern[nk++] = p;
			} else if (nk) {
				unsigned i = (unsigned)(rnd() % nk);
				assert_int_equal(kframe_free(&K, (uint64_t)kern[i]), 0);
				kern[i] = kern[--nk];
			}
		}
		expect_ok();
		while (nu) {
			nu--;
			assert_int_equal(pfa_free_block(&A, (uint64_t)user[nu].pfn, user[nu].order, NULL), 0);
		}
		expect_ok();
		uint64_t whole = whole_permille();
		if (whole < worst)
			worst = whole;
		if (whole < 950)
			fail_msg("seed %lu: %lu.%lu%% of free memory in whole 2 MiB blocks, %u kernel frames "
				 "(%lu outside chunks)", (unsigned long)seed, (unsigned long)(whole / 10),
				 (unsigned long)(whole % 10), nk, (unsigned long)K.strays);
	}
	print_message("worst of the seeds: %lu.%lu%% of free memory in whole 2 MiB blocks\n",
		      (unsigned long)(worst / 10), (unsigned long)(worst % 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kernel_frames_share_a_chunk),
		cmocka_unit_test(a_chunk_is_ready_before_the_last_is_full),
		cmocka_unit_test(strays_when_nothing_is_whole),
		cmocka_unit_test(an_empty_chunk_goes_back),
		cmocka_unit_test(after_a_squeeze_free_memory_is_whole_again),
		cmocka_unit_test(any_sequence_leaves_free_memory_whole),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(meta);
	return rc;
}
