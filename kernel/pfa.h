/*
 * pfa: the page-frame allocator — a buddy allocator over 4 KiB frames.
 *
 * Blocks are 2^order frames, naturally aligned, from order 0 (4 KiB) to
 * PFA_MAX_ORDER (64 MiB). Every frame has a state; the balloon's frames
 * (BALLOONED), the free frames already given back to the host (free with the
 * reported flag), and a pool of 2 MiB huge pages kept apart from everything
 * the balloon may take are all states of the same allocator, so one
 * invariant checker (pfa_check) sees the whole of memory.
 *
 * The allocator never touches the frames it manages: a free frame may have
 * been returned to the host, and touching it would make the host back it
 * again. All metadata lives in one caller-supplied buffer, which need not be
 * zeroed and is written lazily: a whole 64 MiB section (one PFA_MAX_ORDER
 * block) that nothing has split yet is one bit, so setting up a 1 TiB guest
 * writes a few hundred KiB, not 400 MiB (see "Lazy sections" in pfa.c).
 *
 * Not locked: blimp is single-CPU and calls the allocator only from its main
 * loop, never from an interrupt handler.
 *
 * Errors are negative errno values: -ENOMEM (nothing to give), -EINVAL (a bad
 * argument), -EFAULT (a call that contradicts the frame's state: double free,
 * wrong order, a frame the allocator does not manage). A bad call is also
 * printed with the frame number, order and caller, and changes nothing.
 */
#ifndef BLIMP_PFA_H
#define BLIMP_PFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sbitmap.h"

#define PFA_MAX_ORDER 14        /* 64 MiB: big enough that RAM is a few hundred blocks */
#define PFA_HUGE_ORDER 9        /* 2 MiB: a host huge page, the balloon's unit */
#define PFA_POOL_MAX 1024       /* huge-pool pages (2 GiB) */
#define PFA_SECTION_FRAMES (1ULL << PFA_MAX_ORDER) /* a lazy section: one max-order block */

enum pfa_state {
	PFA_RESERVED = 0, /* not RAM, or the kernel's own: never handed out */
	PFA_FREE = 1,     /* in a free block (maybe reported) */
	PFA_USED = 2,     /* allocated by pfa_alloc_block */
	PFA_BALLOONED = 3,/* given to the host by the balloon */
	PFA_ISOLATED = 4, /* taken off the free lists while being reported */
	PFA_POOL_FREE = 5,/* a huge-pool page nobody uses */
	PFA_POOL_USED = 6,/* a huge-pool page in use */
};

/* A run of frames handed out or back as one buddy block. */
struct pfa_run {
	uint64_t pfn;
	unsigned order;
};


struct pfa_stats {
	uint64_t managed;            /* frames given by pfa_add_free_range, less reserved ones */
	uint64_t free;               /* frames in free blocks (reported included) */
	uint64_t free_blocks[PFA_MAX_ORDER + 1];
	uint64_t used, ballooned, reported, isolated, reserved;
	uint64_t pool_total, pool_free; /* huge-pool pages (2 MiB each) */
	uint64_t allocs, frees, alloc_failures;
	/* Huge-page pool requests (pfa_pool_alloc), as Linux counts hugetlbfs
	 * (HTLB_PGALLOC/HTLB_PGFAIL): pages given, and requests that found the
	 * pool empty. 2 MiB blocks from the free lists are not huge pages. */
	uint64_t huge_allocs, huge_failures;
	uint64_t oom_calls, oom_freed;
	uint64_t reclaim_calls, reclaim_freed;
	/* Sections (64 MiB) whose metadata is not written yet: each wholly
	 * free (one unreported max-order block) or wholly reserved. */
	uint64_t lazy_sections;
	/* Of those, sections said to hold no memory (pfa_set_absent). */
	uint64_t absent_sections;
};

typedef uint64_t (*pfa_oom_fn)(void *ctx, uint64_t frames_wanted);

struct pfa {
	uint64_t pfn_limit;          /* frames [0, pfn_limit) are described */
	uint8_t *frame;              /* one byte per frame: state | reported << 3 | order << 4 */
	uint64_t *chunks;            /* per section, its own bitmap words (pfa.c, layout) */
	size_t chunk_words;
	uint64_t *lazy;              /* a bit per whole section: metadata not written yet */
	uint64_t *absent;            /* a bit per section: never memory, never written */
	uint64_t lazy_limit;         /* sections: [0, pfn_limit) rounded up to whole ones */
	size_t eager_bytes;          /* the part of the buffer pfa_init writes */
	/* free blocks per order: a bit per aligned block (kernel/sbitmap.h) */
	struct sbitmap unreported[PFA_MAX_ORDER + 1];
	struct sbitmap reported[PFA_MAX_ORDER + 1];
	uint64_t reserve_floor;      /* free frames the balloon must leave */
	uint64_t pool[PFA_POOL_MAX];  /* huge-pool pages, by first pfn */
	struct pfa_stats st;
	pfa_oom_fn oom;
	void *oom_ctx;
	pfa_oom_fn reclaim;
	void *reclaim_ctx;
	void (*free_hook)(void *ctx);
	void *free_hook_ctx;
	void (*release_hook)(void *ctx, uint64_t pfn, unsigned order);
	void *release_hook_ctx;
	void (*section_hook)(void *ctx, uint64_t pfn, uint64_t frames);
	void *section_hook_ctx;
};

/* Bytes of metadata pfa_init needs for frames [0, pfn_limit). */
size_t pfa_metadata_size(uint64_t pfn_limit);

/* Metadata bytes, less what absent sections gave back (pfa_set_absent). */
uint64_t pfa_metadata_bytes(const struct pfa *a);

/* Metadata bytes per managed frame, in thousandths (for reports). */
uint64_t pfa_metadata_millibytes_per_frame(const struct pfa *a);

/* Start with every frame reserved. `meta` must hold pfa_metadata_size bytes;
 * its contents do not matter (what is read is written first). Returns 0 or
 * -EINVAL. */
int pfa_init(struct pfa *a, void *meta, size_t meta_size, uint64_t pfn_limit);

/*
 * Whole sections in [pfn, pfn + count) that are reserved and lazy hold no
 * memory and never will (a hole in the physical address space: on an AMD
 * CPU QEMU puts a 1 TiB guest's RAM above 1 TiB). The allocator never
 * reads or writes their metadata from here on, and pfa_add_free_range
 * refuses them (-EINVAL), so the caller may use that part of the buffer
 * (pfa_frame_ptr of the section's first frame, 16 KiB; and its chunk of
 * chunk_words words) for something else. Returns how many were marked.
 */
uint64_t pfa_set_absent(struct pfa *a, uint64_t pfn, uint64_t count);

/* Usable RAM: frames become free. Reserved-again later by pfa_reserve_range.
 * Returns 0, -EINVAL (outside pfn_limit) or -EFAULT (some frame not reserved). */
int pfa_add_free_range(struct pfa *a, uint64_t pfn, uint64_t count);

/* Take free frames out for good (kernel image, boot data). Frames already
 * reserved are skipped; used or ballooned ones are an error (-EFAULT). */
int pfa_reserve_range(struct pfa *a, uint64_t pfn, uint64_t count);

/* One block of 2^order frames: its first pfn, or -ENOMEM/-EINVAL. Calls the
 * OOM handler (if any) before failing, and retries if it freed something. */
int64_t pfa_alloc_block(struct pfa *a, unsigned order);

/* The same; with PFA_NO_OOM it fails at once instead of calling the OOM
 * handler (for callers that can make do with smaller blocks first). */
#define PFA_NO_OOM 1u
int64_t pfa_alloc_block_flags(struct pfa *a, unsigned order, unsigned flags);

/* Give back a block from pfa_alloc_block. `caller` is printed on a bad call.
 * Returns 0, -EFAULT or -EINVAL. */
int pfa_free_block(struct pfa *a, uint64_t pfn, unsigned order, const void *caller);

/*
 * The balloon's path. pfa_balloon_take hands out up to `frames` frames as
 * runs, whole 2 MiB blocks first (already-reported ones before others, since
 * the host holds no memory for them), splitting bigger blocks into 2 MiB
 * ones, and smaller blocks only when no 2 MiB block is left. It never takes
 * the free count below the reserve floor and never touches the huge pool.
 * The frames become BALLOONED. Returns the number of frames taken (0 when
 * none can be), and the runs in out[0..*n_out).
 */
uint64_t pfa_balloon_take(struct pfa *a, uint64_t frames, struct pfa_run *out, size_t max_out,
			  size_t *n_out);

/* Return a ballooned run to the free lists (deflate): the host let it go,
 * so it is free and reported (the host holds nothing for it). 0, -EFAULT or
 * -EINVAL. pfa_balloon_cancel is the same for a run the host never saw (an
 * inflate undone before it was sent): free and not reported. */
int pfa_balloon_return(struct pfa *a, uint64_t pfn, unsigned order, const void *caller);
int pfa_balloon_cancel(struct pfa *a, uint64_t pfn, unsigned order, const void *caller);

/* Split a ballooned block into two ballooned halves (pfn and pfn + 2^(order-1)),
 * so a deflate can give back exactly what it must. 0 or -EFAULT. */
int pfa_balloon_split(struct pfa *a, uint64_t pfn, unsigned order);

/* Called with every block handed back (freed or deflated) before it joins
 * the free lists: the kernel poisons freed memory there (poison=). */
void pfa_set_release_hook(struct pfa *a, void (*fn)(void *ctx, uint64_t pfn, unsigned order), void *ctx);

/* Called when a lazy section is first written (see pfa.c), before any of
 * its frames can be handed out or reported: the kernel maps that memory
 * there (paging_ram_used). It must not fail and must not call the
 * allocator. Set it before pfa_add_free_range. */
void pfa_set_section_hook(struct pfa *a, void (*fn)(void *ctx, uint64_t pfn, uint64_t frames), void *ctx);

/* Called (from the freeing call) when a free, unreported block of at least
 * PFA_HUGE_ORDER forms: free page reporting arms its timer there. */
void pfa_set_free_hook(struct pfa *a, void (*fn)(void *ctx), void *ctx);

/*
 * Free page reporting. pfa_report_take isolates up to max_out free blocks of
 * order >= min_order that are not reported yet (so nothing can allocate them
 * meanwhile) and returns how many it put in out[]. pfa_report_done puts one
 * back, marked reported if `reported` (the host took it), else as it was.
 */
size_t pfa_report_take(struct pfa *a, unsigned min_order, struct pfa_run *out, size_t max_out);
int pfa_report_done(struct pfa *a, uint64_t pfn, unsigned order, bool reported);

/* Huge-page pool: set `pages` 2 MiB blocks apart (returns how many it could),
 * then allocate and free them. The balloon and reporting never see them.
 * pfa_pool_alloc returns a pool page's first pfn or -ENOMEM (pool empty);
 * it alone moves huge_allocs and huge_failures. */
uint64_t pfa_pool_init(struct pfa *a, uint64_t pages);
int64_t pfa_pool_alloc(struct pfa *a);
int pfa_pool_free(struct pfa *a, uint64_t pfn, const void *caller);

void pfa_set_reserve_floor(struct pfa *a, uint64_t frames);
void pfa_set_oom_handler(struct pfa *a, pfa_oom_fn fn, void *ctx);
/* Ask the OOM handler (the balloon's deflate-on-OOM) for `frames` frames
 * although no allocation failed: a workload whose fault rate says it needs
 * more memory than the guest has (kernel/workload.c). Frames it freed. */
uint64_t pfa_ask_oom(struct pfa *a, uint64_t frames);
/* Called before the OOM handler when an allocation (without PFA_NO_OOM)
 * finds nothing: the guest's reclaim (kernel/vm.c), which frees frames by
 * giving up cache and cold pages; the OOM handler runs only when it freed
 * nothing. Same signature: frames wanted in, frames freed out. */
void pfa_set_reclaim_handler(struct pfa *a, pfa_oom_fn fn, void *ctx);

/* State of one frame, PFA_RESERVED for frames beyond pfn_limit. */
enum pfa_state pfa_frame_state(const struct pfa *a, uint64_t pfn);
bool pfa_frame_reported(const struct pfa *a, uint64_t pfn);

/* Share of free memory, in thousandths, that is not in blocks of at least
 * 2 MiB: 0 when every free frame sits in a huge-page-sized block. */
uint64_t pfa_fragmentation_permille(const struct pfa *a);

/*
 * Check every invariant: states agree with the free bitmaps, free buddies
 * are merged, block heads carry their order, counters add up. Returns 0, or
 * -EFAULT with `why` saying exactly what is wrong and where.
 */
int pfa_check(const struct pfa *a, char *why, size_t why_len);

#endif
