/*
 * fuzz_swap_slots: the swap-slot allocator (kernel/swap_slots.c) driven by a
 * program the fuzzer writes: allocations of runs, and the four run calls
 * (free, written, invalidate, mark bad) on real runs or on runs bent by the
 * fuzzer (a slot inside, before, past the end, a count that wraps).
 *
 * Input: two bytes of area size (1 .. 4096 slots), then one operation per
 * byte, op % 6:
 *   0, 1  alloc          want = next byte % 66 (0 and 65 are bad arguments)
 *   2     free           then: how, start (u16), [bend argument]
 *   3     written        the same
 *   4     invalidate     the same
 *   5     mark bad       the same
 *
 * A shadow model keeps each slot's state and owner. After every operation:
 * swap_slots_check passes; every slot's state is the model's; the counters
 * are the model's. A call the model says is bad must fail with the model's
 * error and leave every byte of metadata and every counter as it was (but
 * bad_calls); one the model says is good must succeed. An allocation hands
 * out only free slots, 1 .. want of them, fails only on a full area, and
 * hands out all `want` while an aligned 64-slot cluster is wholly free.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/swap_slots.h"
#include "tests/fuzz/host/fuzz_util.h"

#define MAX_SLOTS 4096

static struct swap_slots S, snap;
static uint8_t *meta, *snap_meta;
static size_t meta_cap, meta_size;
static uint64_t nslots;

/* The model: a state per slot; owner[i] = the allocation that made it. */
static uint8_t mstate[MAX_SLOTS];
static uint32_t owner[MAX_SLOTS];

static const char *const names[] = { "free", "allocated", "valid", "bad" };

static void check_all(const char *after)
{
	char why[256];
	if (swap_slots_check(&S, why, sizeof(why)) != 0)
		fh_fail("after %s: swap_slots_check: %s", after, why);
	uint64_t c[4] = { 0 };
	for (uint64_t i = 0; i < nslots; i++) {
		if (swap_slots_state(&S, i) != mstate[i])
			fh_fail("after %s: slot %#llx is %s, model says %s", after, (unsigned long long)i,
				names[swap_slots_state(&S, i) & 3], names[mstate[i]]);
		c[mstate[i]]++;
	}
	if (S.st.free != c[0] || S.st.used != c[1] + c[2] || S.st.valid != c[2] || S.st.bad != c[3])
		fh_fail("after %s: counters free %llu used %llu valid %llu bad %llu; model %llu %llu "
			"%llu %llu", after, (unsigned long long)S.st.free, (unsigned long long)S.st.used,
			(unsigned long long)S.st.valid, (unsigned long long)S.st.bad,
			(unsigned long long)c[0], (unsigned long long)(c[1] + c[2]),
			(unsigned long long)c[2], (unsigned long long)c[3]);
}

static bool model_whole_cluster(void)
{
	for (uint64_t c = 0; c + 64 <= nslots; c += 64) {
		uint64_t i = 0;
		while (i < 64 && mstate[c + i] == SWAP_SLOT_FREE)
			i++;
		if (i == 64)
			return true;
	}
	return false;
}

static void op_alloc(struct fh *f, uint32_t who)
{
	unsigned want = fh_u8(f) % 66;
	bool whole = model_whole_cluster(), any = S.st.free > 0;
	uint64_t first = UINT64_MAX;
	int64_t n = swap_slots_alloc(&S, want, &first);
	if (want == 0 || want > SWAP_SLOTS_RUN_MAX) {
		if (n != -EINVAL)
			fh_fail("swap_slots_alloc(%u) = %lld, expected -EINVAL", want, (long long)n);
		return;
	}
	if (!any) {
		if (n != -ENOSPC)
			fh_fail("swap_slots_alloc(%u) on a full area = %lld", want, (long long)n);
		return;
	}
	if (n < 1 || n > want || first >= nslots || (uint64_t)n > nslots - first)
		fh_fail("swap_slots_alloc(%u) = %lld at %#llx with %llu slots", want, (long long)n,
			(unsigned long long)first, (unsigned long long)nslots);
	if (whole && n != want)
		fh_fail("swap_slots_alloc(%u) = %lld while a whole cluster is free", want, (long long)n);
	for (uint64_t i = first; i < first + (uint64_t)n; i++) {
		if (mstate[i] != SWAP_SLOT_FREE)
			fh_fail("swap_slots_alloc handed out slot %#llx, which is %s (owner %u)",
				(unsigned long long)i, names[mstate[i]], owner[i]);
		mstate[i] = SWAP_SLOT_ALLOCATED;
		owner[i] = who;
	}
}

typedef int (*run_fn)(struct swap_slots *, uint64_t, uint64_t, const void *);

static const struct {
	const char *name;
	run_fn fn;
	unsigned from, to;
} calls[] = {
	{ "swap_slots_free", swap_slots_free, 1u << SWAP_SLOT_ALLOCATED | 1u << SWAP_SLOT_VALID,
	  SWAP_SLOT_FREE },
	{ "swap_slots_written", swap_slots_written, 1u << SWAP_SLOT_ALLOCATED, SWAP_SLOT_VALID },
	{ "swap_slots_invalidate", swap_slots_invalidate, 1u << SWAP_SLOT_VALID, SWAP_SLOT_ALLOCATED },
	{ "swap_slots_mark_bad", swap_slots_mark_bad, 1u << SWAP_SLOT_ALLOCATED | 1u << SWAP_SLOT_VALID,
	  SWAP_SLOT_BAD },
};

/* The run to act on: the whole run of the owner found from a fuzz-chosen
 * start, or a bent one. */
static void choose(struct fh *f, uint64_t *first, uint64_t *count)
{
	uint8_t how = fh_u8(f);
	uint64_t p = fh_u16(f) % (nslots + 8);
	*count = 1;
	if (p < nslots && owner[p]) {
		uint32_t o = owner[p];
		while (p > 0 && owner[p - 1] == o)
			p--;
		*count = 0;
		while (p + *count < nslots && owner[p + *count] == o)
			(*count)++;
	}
	*first = p;
	switch (how % 10) {
	case 0: *count = 1 + fh_u8(f) % *count; break;                 /* a part of it */
	case 1: *first += fh_u8(f) % (*count + 1); *count = 1; break;   /* one slot inside, or past */
	case 2: *first -= *first ? 1 : 0; break;                        /* one before */
	case 3: *count += 1 + fh_u8(f) % 4; break;                      /* runs over */
	case 4: *count = fh_u8(f) & 1 ? 0 : UINT64_MAX - fh_u8(f); break;/* 0, or wraps */
	case 5: *first = nslots + fh_u8(f); break;                      /* past the end */
	case 6: *first |= (uint64_t)fh_u8(f) << 40; break;              /* far away */
	default: break;                                                 /* as it is */
	}
}

static void op_run(struct fh *f, unsigned c)
{
	uint64_t first, count;
	choose(f, &first, &count);
	int want = 0;
	if (count == 0)
		want = -EINVAL;
	else if (first >= nslots || count > nslots - first)
		want = -EFAULT;
	else
		for (uint64_t i = first; i < first + count; i++)
			if (!((calls[c].from >> mstate[i]) & 1u))
				want = -EFAULT;
	memcpy(snap_meta, meta, meta_size);
	snap = S;
	int rc = calls[c].fn(&S, first, count, NULL);
	if (rc != want)
		fh_fail("%s(%#llx, %llu) = %d, model says %d", calls[c].name, (unsigned long long)first,
			(unsigned long long)count, rc, want);
	fh_trace("%s(%#llx, %llu) = %d", calls[c].name, (unsigned long long)first,
		 (unsigned long long)count, rc);
	if (rc) {
		snap.st.bad_calls++;
		if (memcmp(snap_meta, meta, meta_size) || memcmp(&snap.st, &S.st, sizeof(S.st)) ||
		    snap.cursor != S.cursor)
			fh_fail("%s: refused (%d) but changed the allocator", calls[c].name, rc);
		return;
	}
	for (uint64_t i = first; i < first + count; i++) {
		mstate[i] = (uint8_t)calls[c].to;
		if (calls[c].to == SWAP_SLOT_FREE || calls[c].to == SWAP_SLOT_BAD)
			owner[i] = 0;
	}
}

/* The metadata buffers, as large as any input needs, once. */
void fh_setup(void)
{
	meta_cap = swap_slots_metadata_size(MAX_SLOTS);
	meta = malloc(meta_cap);
	snap_meta = malloc(meta_cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	nslots = 1 + fh_u16(&f) % MAX_SLOTS;
	if (swap_slots_init(&S, meta, meta_cap, nslots) != 0)
		fh_fail("swap_slots_init(%llu) failed", (unsigned long long)nslots);
	meta_size = swap_slots_metadata_size(nslots);
	memset(mstate, SWAP_SLOT_FREE, sizeof(mstate));
	memset(owner, 0, sizeof(owner));
	check_all("init");
	for (uint32_t step = 1; fh_left(&f); step++) {
		uint8_t op = fh_u8(&f) % 6;
		if (op < 2) {
			op_alloc(&f, step);
			check_all("alloc");
		} else {
			op_run(&f, op - 2u);
			check_all(calls[op - 2].name);
		}
	}
	return 0;
}
