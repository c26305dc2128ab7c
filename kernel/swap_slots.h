/*
 * swap_slots: which 4 KiB slots of a swap area are free, and what each used
 * one holds. No I/O here: the swap code asks for slots, writes pages into
 * them, and reports back what happened.
 *
 * A slot's life:
 *
 *                alloc                 written
 *       FREE -----------> ALLOCATED -----------> VALID
 *        ^                  |  |  <-----------    |  |
 *        |       free       |  |   invalidate     |  |
 *        +------------------+--|------------------+  |
 *                              |      mark_bad       |
 *                              +-------> BAD <-------+
 *
 *   ALLOCATED  owned by a page; the disk copy is not (yet) good: a write is
 *              in flight, or the page was dirtied after its copy was made.
 *   VALID      owned by a page whose copy on disk is good: if the page is
 *              clean it can be dropped from memory without I/O.
 *   BAD        an I/O error hit it; never handed out again, never freed.
 *
 * Allocation hands out a run of up to SWAP_SLOTS_RUN_MAX adjacent slots so
 * that adjacent pages go out in one write; when the area is fragmented it
 * hands out fewer, and the caller asks again for the rest.
 *
 * Metadata lives in one caller-supplied buffer (swap_slots_metadata_size):
 * a byte per slot and two bitmaps with summary levels, so a free slot or a
 * wholly free cluster is found by walking down a handful of words.
 *
 * Not locked: like the page-frame allocator, called from the main loop only.
 *
 * Errors are negative errno values: -ENOSPC (no free slot), -EINVAL (a bad
 * argument: a run of 0 slots or more than SWAP_SLOTS_RUN_MAX), -EFAULT (a
 * call that contradicts a slot's state: double free, a slot outside the
 * area, writing a slot nobody owns). A bad call is also printed with the
 * slot and the caller, and changes nothing.
 */
#ifndef BLIMP_SWAP_SLOTS_H
#define BLIMP_SWAP_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sbitmap.h"

#define SWAP_SLOTS_RUN_MAX 64      /* a cluster: 256 KiB, one bitmap word */
#define SWAP_SLOTS_LIMIT (1ULL << 32) /* slots in one area: 16 TiB */

enum swap_slot_state {
	SWAP_SLOT_FREE = 0,
	SWAP_SLOT_ALLOCATED = 1, /* owned; the disk copy is not good yet */
	SWAP_SLOT_VALID = 2,     /* owned; the disk copy is good */
	SWAP_SLOT_BAD = 3,       /* an I/O error: out of use for good */
};


struct swap_slots_stats {
	uint64_t total;        /* slots in the area */
	uint64_t free, used, bad; /* free + used + bad == total */
	uint64_t valid;        /* used slots whose copy is good (part of used) */
	uint64_t allocs;       /* successful swap_slots_alloc calls */
	uint64_t clustered;    /* ... that handed out more than one slot */
	uint64_t short_allocs; /* ... that handed out fewer than asked */
	uint64_t full;         /* calls refused with -ENOSPC */
	uint64_t frees;        /* slots freed */
	uint64_t bad_calls;    /* calls refused with -EFAULT */
};

struct swap_slots {
	uint64_t nslots;
	uint8_t *state;               /* enum swap_slot_state, one byte per slot */
	struct sbitmap free;   /* bit per slot: set iff FREE */
	struct sbitmap whole;  /* bit per 64-slot cluster: set iff all FREE */
	uint64_t cursor;              /* next-fit: where the last run ended */
	struct swap_slots_stats st;
};

/* Bytes of metadata swap_slots_init needs for `nslots` slots. */
size_t swap_slots_metadata_size(uint64_t nslots);

/* An area of `nslots` free slots (1 .. SWAP_SLOTS_LIMIT); `meta` must hold
 * swap_slots_metadata_size bytes. Returns 0 or -EINVAL. */
int swap_slots_init(struct swap_slots *s, void *meta, size_t meta_size, uint64_t nslots);

/*
 * Allocate a run of up to `want` (1 .. SWAP_SLOTS_RUN_MAX) adjacent free
 * slots, which become ALLOCATED. Returns how many (>= 1) with the first in
 * *first, -ENOSPC when no slot is free, or -EINVAL.
 *
 * Where: right after the previous run if `want` slots are free there (so a
 * stream of writes stays sequential on disk), else at the start of a wholly
 * free cluster, else the longer of the run after the previous one and the
 * run at the lowest free slot. So a full run is always handed out while any
 * aligned 64-slot cluster is entirely free.
 */
int64_t swap_slots_alloc(struct swap_slots *s, unsigned want, uint64_t *first);

/* Give back [first, first + count): every slot ALLOCATED or VALID.
 * Returns 0, -EINVAL or -EFAULT; `caller` is printed on a bad call. */
int swap_slots_free(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller);

/* The write of [first, first + count) completed: ALLOCATED -> VALID. */
int swap_slots_written(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller);

/* The pages of [first, first + count) were dirtied, their copies are stale:
 * VALID -> ALLOCATED (the slots stay theirs, for the next write). */
int swap_slots_invalidate(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller);

/* An I/O error on [first, first + count): ALLOCATED or VALID -> BAD. The
 * slots leave their owner and are never handed out again. */
int swap_slots_mark_bad(struct swap_slots *s, uint64_t first, uint64_t count, const void *caller);

/* The state of one slot; SWAP_SLOT_BAD for a slot outside the area. */
enum swap_slot_state swap_slots_state(const struct swap_slots *s, uint64_t slot);

/*
 * Check every invariant: each slot's state agrees with the free bitmap, the
 * summary levels and the cluster bitmap agree with the words below, nothing
 * is set past the end, the counters add up. Returns 0, or -EFAULT with `why`
 * saying what is wrong and where.
 */
int swap_slots_check(const struct swap_slots *s, char *why, size_t len);

#endif
