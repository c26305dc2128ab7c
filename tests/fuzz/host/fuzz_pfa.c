/*
 * fuzz_pfa: the page-frame allocator (kernel/pfa.c) driven by a program the
 * fuzzer writes: the balloon's batch path and free page reporting
 * interleaved with ordinary allocation, and bad calls of every kind.
 *
 * Input: setup bytes (frames 512..4607, up to three usable ranges with
 * holes, a reserve floor, huge-pool pages, which hooks and which OOM handler
 * behaviour), then one operation per byte:
 *   alloc / free                 pfa_alloc_block, pfa_free_block
 *   balloon take / return / split the balloon's batch path
 *   report take / done           free page reporting, accepted or not
 *   pool alloc / free            the huge-page pool
 *   reserve / add range          pfa_reserve_range, pfa_add_free_range
 *   floor                        pfa_set_reserve_floor
 * A call that hands a block back names a real block, or one bent by the
 * fuzzer (another order, a frame inside, a neighbour, a block in another
 * state, an address past the end, a block already given back).
 *
 * A shadow model keeps each frame's owner (reserved, free, used, ballooned,
 * isolated, pool) and which frames head an outstanding block. After every
 * operation: pfa_check passes; every frame's state is the model's (so no
 * frame is both ballooned and free); the counters (free, used, ballooned,
 * isolated, pool, managed) add up to the model's counts. A call the model
 * says is bad must fail and leave every byte of metadata and every counter
 * as it was; one the model says is good must succeed. balloon_take stays
 * above the reserve floor and stops early only when nothing is left;
 * report_take hands out only whole free blocks not yet reported.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/pfa.h"
#include "kernel/pfa_bits.h"
#include "tests/fuzz/host/fuzz_util.h"

#define MAX_FRAMES 4608
#define MAX_RUNS 32

static struct pfa A;
static uint8_t *meta, *snap_meta;
static size_t meta_cap, meta_size; /* allocated; used by this input */
static struct pfa snap;
static uint64_t limit;

/* The model: an owner per frame; head[f] = order + 1 at an outstanding
 * block's first frame (used, ballooned, isolated, pool). */
static uint8_t kind[MAX_FRAMES], head[MAX_FRAMES];
/* Release hook and OOM handler observations. */
static uint64_t hook_pfn;
static unsigned hook_order;
static int hook_calls, oom_mode;
static uint64_t free_hook_calls;

static const char *const names[] = { "reserved", "free", "used", "ballooned", "isolated",
				     "pool free", "pool used" };

static void set_block(uint64_t pfn, unsigned order, unsigned k)
{
	for (uint64_t i = 0; i < (1ULL << order); i++) {
		kind[pfn + i] = (uint8_t)k;
		head[pfn + i] = 0;
	}
	if (k != PFA_FREE && k != PFA_RESERVED)
		head[pfn] = (uint8_t)(order + 1);
}

static bool is_block(uint64_t pfn, unsigned order, unsigned k)
{
	return pfn < limit && order <= PFA_MAX_ORDER && kind[pfn] == k && head[pfn] == order + 1;
}

static void check_all(const char *after)
{
	char why[256];
	if (pfa_check(&A, why, sizeof(why)) != 0)
		fh_fail("after %s: pfa_check: %s", after, why);
	uint64_t count[8] = { 0 };
	for (uint64_t f = 0; f < limit; f++) {
		if (pfa_frame_state(&A, f) != kind[f])
			fh_fail("after %s: frame %#llx is %s, model says %s", after, (unsigned long long)f,
				names[pfa_frame_state(&A, f) % 7], names[kind[f]]);
		if (head[f] && pfa_bits_order(A.frame[f]) != head[f] - 1u)
			fh_fail("after %s: block %#llx has order %u, model %u", after, (unsigned long long)f,
				pfa_bits_order(A.frame[f]), head[f] - 1u);
		count[kind[f]]++;
	}
	if (A.st.free != count[PFA_FREE] || A.st.used != count[PFA_USED] ||
	    A.st.ballooned != count[PFA_BALLOONED] || A.st.isolated != count[PFA_ISOLATED] ||
	    A.st.pool_free << PFA_HUGE_ORDER != count[PFA_POOL_FREE] ||
	    A.st.managed != limit - count[PFA_RESERVED])
		fh_fail("after %s: counters free %llu used %llu ballooned %llu isolated %llu pool free "
			"%llu managed %llu; model %llu %llu %llu %llu %llu %llu", after,
			(unsigned long long)A.st.free, (unsigned long long)A.st.used,
			(unsigned long long)A.st.ballooned, (unsigned long long)A.st.isolated,
			(unsigned long long)A.st.pool_free, (unsigned long long)A.st.managed,
			(unsigned long long)count[PFA_FREE], (unsigned long long)count[PFA_USED],
			(unsigned long long)count[PFA_BALLOONED], (unsigned long long)count[PFA_ISOLATED],
			(unsigned long long)count[PFA_POOL_FREE] >> PFA_HUGE_ORDER,
			(unsigned long long)(limit - count[PFA_RESERVED]));
}

static void snapshot(void)
{
	memcpy(snap_meta, meta, meta_size);
	snap = A;
}

/* A refused call must change nothing but the bad-call report it prints. */
static void expect_unchanged(const char *call, int rc)
{
	if (rc >= 0)
		fh_fail("%s: a bad call returned %d", call, rc);
	if (memcmp(snap_meta, meta, meta_size) || memcmp(&snap.st, &A.st, sizeof(A.st)))
		fh_fail("%s: refused (%d) but changed the allocator", call, rc);
}

/* Some block of kind k (the i-th found from a fuzz-chosen start), or none. */
static bool pick_block(struct fh *f, unsigned k, uint64_t *pfn, unsigned *order)
{
	uint64_t start = fh_u16(f) % limit;
	for (uint64_t n = 0; n < limit; n++) {
		uint64_t p = (start + n) % limit;
		if (kind[p] == k && head[p]) {
			*pfn = p;
			*order = head[p] - 1u;
			return true;
		}
	}
	return false;
}

/* The block to hand back: a real one of kind k, possibly bent. */
static void choose(struct fh *f, unsigned k, uint64_t *pfn, unsigned *order)
{
	uint8_t how = fh_u8(f);
	if (!pick_block(f, k, pfn, order)) {
		*pfn = fh_u16(f) % (limit + 64);
		*order = fh_u8(f) % 17;
		return;
	}
	switch (how % 12) {
	case 0: *order = (*order + 1 + fh_u8(f) % 16) % 17; break;         /* another order */
	case 1: *pfn += 1 + fh_u8(f) % ((1u << *order) + 1); break;       /* inside, or past */
	case 2: *pfn -= *pfn ? 1 + fh_u8(f) % *pfn : 0; break;            /* before */
	case 3: *pfn = limit + fh_u8(f); break;                           /* past the end */
	case 4: *pfn = fh_u16(f) % limit; *order = fh_u8(f) % 16; break;  /* anywhere */
	case 5: *pfn |= (uint64_t)fh_u8(f) << 40; break;                  /* huge pfn */
	default: break;                                                   /* as it is */
	}
}

typedef int (*give_fn)(uint64_t pfn, unsigned order, bool flag);

static int give_free(uint64_t pfn, unsigned order, bool flag) { (void)flag; return pfa_free_block(&A, pfn, order, NULL); }
static int give_balloon(uint64_t pfn, unsigned order, bool flag) { (void)flag; return pfa_balloon_return(&A, pfn, order, NULL); }
static int give_report(uint64_t pfn, unsigned order, bool flag) { return pfa_report_done(&A, pfn, order, flag); }
static int give_pool(uint64_t pfn, unsigned order, bool flag) { (void)flag; (void)order; return pfa_pool_free(&A, pfn, NULL); }

/* Hand a block of kind k back to the free lists (or the free pool). */
static void op_give(struct fh *f, const char *call, unsigned k, give_fn fn)
{
	uint64_t pfn;
	unsigned order;
	choose(f, k, &pfn, &order);
	bool flag = fh_u8(f) & 1;
	if (k == PFA_POOL_USED)
		order = PFA_HUGE_ORDER;
	bool good = is_block(pfn, order, k);
	snapshot();
	hook_calls = 0;
	int rc = fn(pfn, order, flag);
	if (!good) {
		expect_unchanged(call, rc);
		if (hook_calls)
			fh_fail("%s: refused, but the release hook ran", call);
		return;
	}
	if (rc != 0)
		fh_fail("%s(%#llx, order %u) = %d for a %s block", call, (unsigned long long)pfn, order,
			rc, names[k]);
	bool hooked = k == PFA_USED || k == PFA_BALLOONED;
	if (hooked && A.release_hook && (hook_calls != 1 || hook_pfn != pfn || hook_order != order))
		fh_fail("%s: release hook called %d times, last with %#llx order %u", call, hook_calls,
			(unsigned long long)hook_pfn, hook_order);
	set_block(pfn, order, k == PFA_POOL_USED ? PFA_POOL_FREE : PFA_FREE);
	if (k == PFA_POOL_USED)
		head[pfn] = PFA_HUGE_ORDER + 1;
}

/* Is there a fully free, aligned block of `order` in the model? */
static bool model_has_free(unsigned order)
{
	uint64_t n = 1ULL << order;
	for (uint64_t p = 0; p + n <= limit; p += n) {
		uint64_t i = 0;
		while (i < n && kind[p + i] == PFA_FREE)
			i++;
		if (i == n)
			return true;
	}
	return false;
}

static void take_run(const char *call, uint64_t pfn, unsigned order, unsigned k)
{
	if (order > PFA_MAX_ORDER || pfn >= limit || (1ULL << order) > limit - pfn || (pfn & ((1ULL << order) - 1)))
		fh_fail("%s: run %#llx order %u misaligned or outside", call, (unsigned long long)pfn, order);
	for (uint64_t i = 0; i < (1ULL << order); i++)
		if (kind[pfn + i] != PFA_FREE)
			fh_fail("%s: run %#llx order %u holds frame %#llx which was %s", call,
				(unsigned long long)pfn, order, (unsigned long long)(pfn + i), names[kind[pfn + i]]);
	set_block(pfn, order, k);
}

static void op_alloc(struct fh *f)
{
	uint8_t b = fh_u8(f);
	unsigned order = b < 240 ? b % 11 : b % 17;
	bool avail = order <= PFA_MAX_ORDER && model_has_free(order);
	int64_t pfn = pfa_alloc_block_flags(&A, order, (b & 0x80) ? PFA_NO_OOM : 0);
	if (pfn >= 0) {
		take_run("pfa_alloc_block", (uint64_t)pfn, order, PFA_USED);
		return;
	}
	if (order > PFA_MAX_ORDER ? pfn != -EINVAL : pfn != -ENOMEM)
		fh_fail("pfa_alloc_block(order %u) = %lld", order, (long long)pfn);
	/* The OOM handler may have given frames back; only then can a block
	 * that was there before be gone (it cannot: nothing else allocates). */
	if (avail)
		fh_fail("pfa_alloc_block(order %u) = -ENOMEM with a free aligned block", order);
}

static void op_balloon_take(struct fh *f)
{
	uint64_t want = fh_u8(f) < 64 ? fh_u16(f) : fh_u8(f);
	size_t max_out = 1 + fh_u8(f) % MAX_RUNS, n = 99;
	struct pfa_run out[MAX_RUNS];
	uint64_t free_before = A.st.free, floor = A.reserve_floor;
	uint64_t taken = pfa_balloon_take(&A, want, out, max_out, &n);
	if (n > max_out)
		fh_fail("pfa_balloon_take: %zu runs, room for %zu", n, max_out);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		take_run("pfa_balloon_take", out[i].pfn, out[i].order, PFA_BALLOONED);
		sum += 1ULL << out[i].order;
	}
	if (sum != taken || taken > want)
		fh_fail("pfa_balloon_take(%llu) = %llu, runs hold %llu", (unsigned long long)want,
			(unsigned long long)taken, (unsigned long long)sum);
	if (taken && free_before - taken < floor)
		fh_fail("pfa_balloon_take went below the floor: %llu free, took %llu, floor %llu",
			(unsigned long long)free_before, (unsigned long long)taken, (unsigned long long)floor);
	if (taken < want && n < max_out && A.st.free > floor && A.st.free > 0)
		fh_fail("pfa_balloon_take stopped at %llu of %llu with %llu free above floor %llu",
			(unsigned long long)taken, (unsigned long long)want, (unsigned long long)A.st.free,
			(unsigned long long)floor);
}

static void op_balloon_split(struct fh *f)
{
	uint64_t pfn;
	unsigned order;
	choose(f, PFA_BALLOONED, &pfn, &order);
	bool good = is_block(pfn, order, PFA_BALLOONED) && order > 0;
	snapshot();
	int rc = pfa_balloon_split(&A, pfn, order);
	if (!good) {
		expect_unchanged("pfa_balloon_split", rc);
		return;
	}
	if (rc != 0)
		fh_fail("pfa_balloon_split(%#llx, %u) = %d", (unsigned long long)pfn, order, rc);
	set_block(pfn, order - 1, PFA_BALLOONED);
	set_block(pfn + (1ULL << (order - 1)), order - 1, PFA_BALLOONED);
}

static void op_report_take(struct fh *f)
{
	unsigned min_order = fh_u8(f) % 17;
	size_t max_out = 1 + fh_u8(f) % MAX_RUNS;
	struct pfa_run out[MAX_RUNS];
	snapshot();
	size_t n = pfa_report_take(&A, min_order, out, max_out);
	if (n > max_out)
		fh_fail("pfa_report_take: %zu runs, room for %zu", n, max_out);
	for (size_t i = 0; i < n; i++) {
		if (out[i].order < min_order)
			fh_fail("pfa_report_take(min order %u) gave order %u", min_order, out[i].order);
		/* The frame's byte before the call (it lives in its section's chunk). */
		if (out[i].pfn >= limit ||
		    snap_meta[pfa_frame_ptr(&A, out[i].pfn) - meta] != pfa_bits_pack(PFA_FREE, 0, out[i].order))
			fh_fail("pfa_report_take gave %#llx order %u, not a whole unreported free block",
				(unsigned long long)out[i].pfn, out[i].order);
		take_run("pfa_report_take", out[i].pfn, out[i].order, PFA_ISOLATED);
	}
}

static void op_range(struct fh *f, bool reserve)
{
	uint64_t pfn = fh_u16(f) % (limit + 16), count = fh_u8(f) < 200 ? fh_u8(f) : fh_u16(f);
	snapshot();
	if (reserve) {
		bool bad = false;
		for (uint64_t i = pfn; i < limit && i < pfn + count; i++)
			bad |= kind[i] != PFA_RESERVED && kind[i] != PFA_FREE;
		int rc = pfa_reserve_range(&A, pfn, count);
		if (bad) {
			expect_unchanged("pfa_reserve_range", rc);
			return;
		}
		if (rc != 0)
			fh_fail("pfa_reserve_range(%#llx, %llu) = %d", (unsigned long long)pfn,
				(unsigned long long)count, rc);
		for (uint64_t i = pfn; i < limit && i < pfn + count; i++)
			kind[i] = PFA_RESERVED;
		return;
	}
	int want = 0;
	if (pfn >= limit || count > limit - pfn)
		want = -EINVAL;
	else
		for (uint64_t i = pfn; i < pfn + count; i++)
			if (kind[i] != PFA_RESERVED)
				want = -EFAULT;
	int rc = pfa_add_free_range(&A, pfn, count);
	if (rc != want)
		fh_fail("pfa_add_free_range(%#llx, %llu) = %d, expected %d", (unsigned long long)pfn,
			(unsigned long long)count, rc, want);
	if (rc < 0)
		expect_unchanged("pfa_add_free_range", rc);
	else
		for (uint64_t i = pfn; i < pfn + count; i++)
			kind[i] = PFA_FREE;
}

static void release_hook(void *ctx, uint64_t pfn, unsigned order)
{
	(void)ctx;
	hook_calls++;
	hook_pfn = pfn;
	hook_order = order;
}

static void free_hook(void *ctx)
{
	(void)ctx;
	free_hook_calls++;
}

/* Deflate on OOM, as the balloon does it: give back a ballooned block. */
static uint64_t oom(void *ctx, uint64_t wanted)
{
	(void)ctx;
	(void)wanted;
	if (oom_mode == 1)
		return 0;
	if (oom_mode == 3)
		return 1; /* claims progress, frees nothing: the retry bound must hold */
	for (uint64_t p = 0; p < limit; p++)
		if (kind[p] == PFA_BALLOONED && head[p]) {
			unsigned order = head[p] - 1u;
			if (pfa_balloon_return(&A, p, order, NULL) != 0)
				fh_fail("OOM handler could not return ballooned %#llx", (unsigned long long)p);
			set_block(p, order, PFA_FREE);
			return 1ULL << order;
		}
	return 0;
}

/* The metadata buffers, as large as any input needs, once. */
void fh_setup(void)
{
	meta_cap = pfa_metadata_size(MAX_FRAMES);
	meta = malloc(meta_cap);
	snap_meta = malloc(meta_cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	limit = 512 * (1 + fh_u8(&f) % 8) + fh_u8(&f) % 512;
	if (pfa_init(&A, meta, meta_cap, limit) != 0)
		fh_fail("pfa_init(%llu) failed", (unsigned long long)limit);
	meta_size = pfa_metadata_size(limit);
	memset(kind, PFA_RESERVED, sizeof(kind));
	memset(head, 0, sizeof(head));
	uint8_t ranges = 1 + fh_u8(&f) % 3;
	for (uint8_t r = 0; r < ranges; r++) {
		uint64_t pfn = r == 0 ? fh_u8(&f) % 16 : fh_u16(&f) % limit;
		uint64_t count = r == 0 ? limit - pfn - fh_u8(&f) % 16 : fh_u16(&f) % (limit - pfn + 1);
		bool ok = true;
		for (uint64_t i = pfn; i < pfn + count; i++)
			ok &= kind[i] == PFA_RESERVED;
		int rc = pfa_add_free_range(&A, pfn, count);
		if (rc != (ok ? 0 : -EFAULT))
			fh_fail("setup: pfa_add_free_range(%#llx, %llu) = %d", (unsigned long long)pfn,
				(unsigned long long)count, rc);
		if (ok)
			memset(kind + pfn, PFA_FREE, count);
	}
	uint8_t opts = fh_u8(&f);
	pfa_set_reserve_floor(&A, fh_u8(&f) * 8u);
	uint64_t pages = pfa_pool_init(&A, opts & 3);
	for (uint64_t i = 0; i < pages; i++) {
		set_block(A.pool[i], PFA_HUGE_ORDER, PFA_POOL_FREE);
		head[A.pool[i]] = PFA_HUGE_ORDER + 1;
	}
	hook_calls = 0;
	free_hook_calls = 0;
	if (opts & 4)
		pfa_set_release_hook(&A, release_hook, NULL);
	if (opts & 8)
		pfa_set_free_hook(&A, free_hook, NULL);
	oom_mode = (opts >> 4) & 3;
	if (oom_mode)
		pfa_set_oom_handler(&A, oom, NULL);
	check_all("setup");

	while (fh_left(&f)) {
		uint8_t op = fh_u8(&f);
		const char *what = "?";
		switch (op % 13) {
		case 0: case 1: what = "alloc"; op_alloc(&f); break;
		case 2: what = "free"; op_give(&f, "pfa_free_block", PFA_USED, give_free); break;
		case 3: case 4: what = "balloon take"; op_balloon_take(&f); break;
		case 5: what = "balloon return"; op_give(&f, "pfa_balloon_return", PFA_BALLOONED, give_balloon); break;
		case 6: what = "balloon split"; op_balloon_split(&f); break;
		case 7: what = "report take"; op_report_take(&f); break;
		case 8: what = "report done"; op_give(&f, "pfa_report_done", PFA_ISOLATED, give_report); break;
		case 9: {
			what = "pool alloc";
			int64_t p = pfa_pool_alloc(&A);
			if (p >= 0) {
				if (!is_block((uint64_t)p, PFA_HUGE_ORDER, PFA_POOL_FREE))
					fh_fail("pfa_pool_alloc gave %#llx, not a free pool page", (long long)p);
				set_block((uint64_t)p, PFA_HUGE_ORDER, PFA_POOL_USED);
			} else if (A.st.pool_free) {
				fh_fail("pfa_pool_alloc failed with %llu pool pages free",
					(unsigned long long)A.st.pool_free);
			}
			break;
		}
		case 10: what = "pool free"; op_give(&f, "pfa_pool_free", PFA_POOL_USED, give_pool); break;
		case 11: what = op & 0x10 ? "reserve range" : "add range"; op_range(&f, op & 0x10); break;
		case 12: what = "floor"; pfa_set_reserve_floor(&A, fh_u16(&f) % (limit + 1)); break;
		}
		check_all(what);
	}
	return 0;
}
