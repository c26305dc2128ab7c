/*
 * kframe: single frames for the kernel itself (page tables, heap pages),
 * grouped into a few 2 MiB blocks so they do not pin memory apart.
 *
 * The problem (issue 12): a 4 KiB page table or heap page allocated wherever
 * a frame is free — in the middle of memory the balloon has just given back,
 * say — keeps that whole 2 MiB block from ever being free as one. Free page
 * reporting hands back only 2 MiB blocks, so each such frame cost the host up
 * to 2 MiB for good (150 MiB after one squeeze-and-need on a 1 GiB guest).
 * Linux avoids it by grouping unmovable allocations by pageblock; blimp does
 * the same in the small:
 *
 *   2 MiB blocks:  [kkkkkk....] [uuuuuuuuuuu] [...........] [bbbbbbbbbbb]
 *                   a chunk:     user memory   free, whole    ballooned
 *                   kernel frames               (reportable)
 *                   and its slack
 *
 * A chunk is one 2 MiB block taken whole from the allocator (a USED order-9
 * block to it); kframe hands its frames out one by one and keeps a bitmap.
 * It takes a new chunk before the free frames in its chunks fall below
 * KFRAME_LOW, so that under memory pressure (the OOM path, when no whole
 * block is free) the kernel still has grouped frames to use. Only when the
 * chunks are full and no 2 MiB block is free does a frame come from
 * anywhere (counted as `strays`). A chunk whose frames are all free again
 * goes back whole, unless it is the slack the kernel keeps.
 *
 * Host-compilable like the allocator it sits on (tests/unit/test_kframe.c).
 */
#ifndef BLIMP_KFRAME_H
#define BLIMP_KFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pfa.h"

#define KFRAME_CHUNKS 64  /* 128 MiB of kernel frames at most in chunks */
#define KFRAME_LOW 64     /* free frames kept ready in chunks (256 KiB) */
#define KFRAME_WORDS ((1u << PFA_HUGE_ORDER) / 64)

struct kframe_chunk {
	uint64_t pfn;                    /* first frame of the 2 MiB block */
	uint64_t used[KFRAME_WORDS];     /* a bit per frame handed out */
	unsigned n_used;
};

struct kframes {
	struct pfa *pfa;
	struct kframe_chunk chunk[KFRAME_CHUNKS];
	unsigned n_chunks;
	bool ungrouped;                  /* hand frames out from anywhere (mm.no_group) */
	uint64_t free_in_chunks;         /* frames in chunks not handed out */
	uint64_t strays;                 /* frames handed out from outside any chunk, now */
	uint64_t chunks_taken, chunks_returned, stray_allocs;
};

void kframe_init(struct kframes *k, struct pfa *pfa);

/* One frame: its pfn, or -ENOMEM (also before kframe_init: a zeroed
 * struct kframes has no allocator). `pfa_flags` (PFA_NO_OOM) applies when
 * it must come from outside the chunks. */
int64_t kframe_alloc(struct kframes *k, unsigned pfa_flags);

/* Give back a frame from kframe_alloc. 0, or -EFAULT (not handed out). */
int kframe_free(struct kframes *k, uint64_t pfn);

/* Does a chunk hold `pfn` (handed out or not)? */
bool kframe_in_chunk(const struct kframes *k, uint64_t pfn);

/* Counters agree with the bitmaps, every chunk is a used 2 MiB block.
 * 0, or -EFAULT with `why`. */
int kframe_check(const struct kframes *k, char *why, size_t why_len);

#endif
