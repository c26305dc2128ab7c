/*
 * swap_slots: the swap-slot allocator (see swap_slots.h for the contract).
 *
 * Metadata, all in one caller-supplied buffer:
 *
 *   state[]   one byte per slot: enum swap_slot_state
 *   free      one bit per slot, set iff the slot is FREE, with summary
 *             levels (bit j of level l+1 set iff word j of level l is
 *             non-zero): the lowest free slot is a walk down a few words
 *   whole     one bit per word of `free`, set iff all 64 slots of that
 *             aligned cluster are FREE, with summary levels: the lowest
 *             wholly free cluster is found the same way
 *
 * That is about 1.03 bytes per 4 KiB slot (0.025 % of the swap area). The
 * bitmaps are the page-frame allocator's idea (kernel/pfa.c), kept separate
 * because its bitmaps are per buddy order and this one adds the cluster map.
 *
 * Clustering: successive allocations continue where the last run ended
 * (next-fit), so pages reclaimed together land next to each other on disk
 * and a virtio-blk request can carry up to SWAP_SLOTS_RUN_MAX of them. When
 * the area is fragmented a run gets shorter, down to one slot.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "swap_slots.h"
#include "check.h"

#define WORD_ALL ~0ULL

static const char *const state_names[] = { "free", "allocated", "valid", "bad" };

/* ---------------------------------------------------------------- setup */

size_t swap_slots_metadata_size(uint64_t nslots)
{
	uint64_t words[SBITMAP_MAX_LEVELS];
	int levels;
	size_t bytes = (nslots + 7) & ~7ULL;
	bytes += 8 * sbitmap_words(nslots, words, &levels);
	bytes += 8 * sbitmap_words((nslots + 63) / 64, words, &levels);
	return bytes;
}

int swap_slots_init(struct swap_slots *s, void *meta, size_t meta_size, uint64_t nslots)
{
	if (nslots == 0 || nslots > SWAP_SLOTS_LIMIT || meta_size < swap_slots_metadata_size(nslots))
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	memset(meta, 0, swap_slots_metadata_size(nslots));
	s->nslots = nslots;
	s->state = meta; /* all zero: every slot FREE ... */
	uint64_t *p = (uint64_t *)((uint8_t *)meta + ((nslots + 7) & ~7ULL));
	p = sbitmap_carve(&s->free, nslots, p);
	sbitmap_carve(&s->whole, (nslots + 63) / 64, p);
	for (uint64_t i = 0; i < nslots; i++) /* ... and so every free bit set */
		sbitmap_set(&s->free, i);
	for (uint64_t w = 0; w < nslots / 64; w++)
		sbitmap_set(&s->whole, w);
	s->st.total = s->st.free = nslots;
	return 0;
}

/* ---------------------------------------------------------------- states */

static void count(struct swap_slots_stats *st, unsigned state, uint64_t delta)
{
	switch (state) {
	case SWAP_SLOT_FREE: st->free += delta; break;
	case SWAP_SLOT_ALLOCATED: st->used += delta; break;
	case SWAP_SLOT_VALID: st->used += delta; st->valid += delta; break;
	default: st->bad += delta; break;
	}
}

/* Move one slot to state `to`, keeping both bitmaps and the counters. */
static void set_state(struct swap_slots *s, uint64_t slot, unsigned to)
{
	unsigned from = s->state[slot];
	count(&s->st, from, (uint64_t)-1);
	count(&s->st, to, 1);
	s->state[slot] = (uint8_t)to;
	if (from == SWAP_SLOT_FREE && to != SWAP_SLOT_FREE)
		sbitmap_clear(&s->free, slot);
	else if (from != SWAP_SLOT_FREE && to == SWAP_SLOT_FREE)
		sbitmap_set(&s->free, slot);
	uint64_t w = slot >> 6;
	bool whole = s->free.level[0][w] == WORD_ALL;
	if (whole && !sbitmap_test(&s->whole, w))
		sbitmap_set(&s->whole, w);
	else if (!whole && sbitmap_test(&s->whole, w))
		sbitmap_clear(&s->whole, w);
}

/* Free slots from `at` on, at most `want`. */
static uint64_t free_run(const struct swap_slots *s, uint64_t at, uint64_t want)
{
	uint64_t n = 0;
	while (n < want && at + n < s->nslots && s->state[at + n] == SWAP_SLOT_FREE)
		n++;
	return n;
}

int64_t swap_slots_alloc(struct swap_slots *s, unsigned want, uint64_t *first)
{
	if (want == 0 || want > SWAP_SLOTS_RUN_MAX)
		return -EINVAL;
	if (s->st.free == 0) {
		s->st.full++;
		return -ENOSPC;
	}
	uint64_t at = s->cursor, got = free_run(s, at, want);
	if (got < want) {
		int64_t c = sbitmap_first(&s->whole);
		if (c >= 0) {
			at = (uint64_t)c * 64;
			got = want;
		} else {
			uint64_t low = (uint64_t)sbitmap_first(&s->free), n = free_run(s, low, want);
			if (n > got) {
				at = low;
				got = n;
			}
		}
	}
	for (uint64_t i = 0; i < got; i++)
		set_state(s, at + i, SWAP_SLOT_ALLOCATED);
	s->cursor = at + got == s->nslots ? 0 : at + got;
	s->st.allocs++;
	s->st.clustered += got > 1;
	s->st.short_allocs += got < want;
	*first = at;
	return (int64_t)got;
}

/* Every slot of [first, first + count) must be in a state of `from` (a mask
 * of 1 << state); else print why, with the caller, and refuse. */
static int check_run(struct swap_slots *s, const char *fn, uint64_t first, uint64_t count,
		     unsigned from, const void *caller)
{
	const char *what = NULL;
	uint64_t slot = first;
	int rc = -EFAULT;
	if (count == 0) {
		what = "a run of 0 slots";
		rc = -EINVAL;
	} else if (first >= s->nslots || count > s->nslots - first) {
		what = "outside the swap area";
	} else {
		static const char *const is[] = { "slot is free", "slot is allocated",
						  "slot is valid", "slot is bad" };
		for (; slot < first + count; slot++)
			if (!((from >> s->state[slot]) & 1u)) {
				what = is[s->state[slot] & 3];
				break;
			}
	}
	if (!what)
		return 0;
	printf("swap: %s: %s: slot %#llx, run %#llx + %llu, area of %llu slots, caller %p\n", fn,
	       what, (unsigned long long)slot, (unsigned long long)first, (unsigned long long)count,
	       (unsigned long long)s->nslots, caller);
	s->st.bad_calls++;
	return rc;
}

/* The common shape of the four run calls: check, then move every slot. */
static int move_run(struct swap_slots *s, const char *fn, uint64_t first, uint64_t count,
		    unsigned from, unsigned to, const void *caller)
{
	int rc = check_run(s, fn, first, count, from, caller);
	if (rc)
		return rc;
	for (uint64_t i = first; i < first + count; i++)
		set_state(s, i, to);
	return 0;
}

#define OWNED (1u << SWAP_SLOT_ALLOCATED | 1u << SWAP_SLOT_VALID)

int swap_slots_free(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller)
{
	int rc = move_run(s, "swap_slots_free", first, count, OWNED, SWAP_SLOT_FREE, caller);
	if (rc == 0)
		s->st.frees += count;
	return rc;
}

int swap_slots_written(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller)
{
	return move_run(s, "swap_slots_written", first, count, 1u << SWAP_SLOT_ALLOCATED,
			SWAP_SLOT_VALID, caller);
}

int swap_slots_invalidate(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller)
{
	return move_run(s, "swap_slots_invalidate", first, count, 1u << SWAP_SLOT_VALID,
			SWAP_SLOT_ALLOCATED, caller);
}

int swap_slots_mark_bad(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller)
{
	return move_run(s, "swap_slots_mark_bad", first, count, OWNED, SWAP_SLOT_BAD, caller);
}

enum swap_slot_state swap_slots_state(const struct swap_slots *s, uint64_t slot)
{
	return slot < s->nslots ? (enum swap_slot_state)s->state[slot] : SWAP_SLOT_BAD;
}

/* ---------------------------------------------------------------- checker */


int swap_slots_check(const struct swap_slots *s, char *why, size_t len)
{
	struct swap_slots_stats c = { 0 };
	for (uint64_t i = 0; i < s->nslots; i++) {
		unsigned st = s->state[i];
		if (st > SWAP_SLOT_BAD)
			return check_fail(why, len, "slot %#llx has state byte %u", (unsigned long long)i, st);
		if (sbitmap_test(&s->free, i) != (st == SWAP_SLOT_FREE))
			return check_fail(why, len, "slot %#llx is %s but its free bit is %d",
				    (unsigned long long)i, state_names[st], sbitmap_test(&s->free, i));
		count(&c, st, 1);
	}
	int rc = sbitmap_check(&s->free, s->nslots, "free", why, len);
	if (rc == 0)
		rc = sbitmap_check(&s->whole, s->free.words[0], "cluster", why, len);
	if (rc)
		return rc;
	for (uint64_t w = 0; w < s->free.words[0]; w++)
		if (sbitmap_test(&s->whole, w) != (s->free.level[0][w] == WORD_ALL))
			return check_fail(why, len, "cluster %llu (slots %#llx..) has whole bit %d but free "
				    "word %#llx", (unsigned long long)w, (unsigned long long)w * 64,
				    sbitmap_test(&s->whole, w), (unsigned long long)s->free.level[0][w]);
	if (c.free != s->st.free || c.used != s->st.used || c.valid != s->st.valid ||
	    c.bad != s->st.bad || s->st.total != s->nslots)
		return check_fail(why, len, "counters free %llu used %llu valid %llu bad %llu total %llu; "
			    "slots say %llu %llu %llu %llu %llu", (unsigned long long)s->st.free,
			    (unsigned long long)s->st.used, (unsigned long long)s->st.valid,
			    (unsigned long long)s->st.bad, (unsigned long long)s->st.total,
			    (unsigned long long)c.free, (unsigned long long)c.used,
			    (unsigned long long)c.valid, (unsigned long long)c.bad,
			    (unsigned long long)s->nslots);
	if (s->cursor >= s->nslots)
		return check_fail(why, len, "cursor %#llx is past the end (%llu slots)",
			    (unsigned long long)s->cursor, (unsigned long long)s->nslots);
	return 0;
}
