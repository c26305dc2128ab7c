/*
 * pagecache: a page cache over a read-only virtio-blk disk, the "file".
 *
 * A read of 4 KiB page P of the file is served from memory when the page is
 * cached (a hit), and otherwise read from the disk into a frame of its own
 * that stays cached (a miss). The disk must be read-only, so every cached
 * page is clean: dropping one costs no I/O, only the frame comes back. Which
 * page goes is chosen by the clock (kernel/replace.h, REPLACE_CLOCK) over a
 * software referenced bit that each hit sets. docs/pagecache.md has the
 * whole story.
 *
 * Frames come from the page-frame allocator without its OOM handler: when
 * none is free, a miss reuses the frame of one of the cache's own pages, so
 * the cache never takes memory by force and shrinks to one page under
 * pressure; pagecache_shrink gives memory back to whoever needs it (reclaim).
 *
 * Errors are negative errno values. Not locked (single CPU, main loop only).
 */
#ifndef BLIMP_PAGECACHE_H
#define BLIMP_PAGECACHE_H

#include <stdint.h>

struct pagecache_stats {
	int dev;                /* the blk device attached, -1 when none */
	uint64_t file_pages;    /* 4 KiB pages in the file (the last may be short, read zero-padded) */
	uint64_t slots;         /* pages the cache can hold at most (sized at attach) */
	uint64_t pages;         /* pages cached now */
	uint64_t hits, misses;  /* pagecache_read calls served from memory / from the disk */
	uint64_t dropped;       /* pages given up by pagecache_shrink (their frames freed) */
	uint64_t reused;        /* pages given up at a miss so their frame could be reused */
	uint64_t read_ops;      /* blk_read calls (one per miss) */
	uint64_t read_bytes;    /* bytes read from the disk */
	uint64_t read_errors;   /* misses whose blk_read failed (nothing cached) */
	uint64_t nomem;         /* misses with no free frame and nothing cached to reuse */
};

/*
 * Use blk device `dev` as the file. 0, or -ENODEV (no such device, or an
 * empty one), -EBUSY (a file is attached already), -EINVAL (the device can
 * be written: a cache of it could go stale), -ENOMEM (no heap for the index).
 */
int pagecache_attach(unsigned dev);

/*
 * Copy 4 KiB page `page` of the file into dst (any memory). 0, or -ENODEV
 * (nothing attached), -ERANGE (past the end of the file), -ENOMEM (no free
 * frame and nothing cached to take one from), or blk_read's error (-EIO,
 * -ETIMEDOUT, ...; nothing is cached then).
 */
int pagecache_read(uint64_t page, void *dst);

/* Drop up to `want` cached pages, chosen by the clock, and free their
 * frames. No I/O. Returns how many were dropped (0 when nothing is cached
 * or nothing attached). Allocates nothing, so an OOM handler may call it. */
uint64_t pagecache_shrink(uint64_t want);

/* Pages cached now. */
uint64_t pagecache_pages(void);

/* A copy of the counters. */
void pagecache_get_stats(struct pagecache_stats *out);

/* Boot hook (after blk_init): attach the device vm.cache=N names, if any. */
void pagecache_init(void);

#endif
