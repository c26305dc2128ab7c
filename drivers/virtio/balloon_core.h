/*
 * balloon_core: the virtio-balloon state machine, without the kernel.
 *
 * Everything the balloon decides lives here: the target from the device
 * configuration, batches of frames taken from the allocator and sent on the
 * inflate queue, the run list of frames the host has acknowledged, deflate
 * (splitting a run when only part of it must go), deflate-on-OOM
 * (balloon_core.c), statistics (balloon_stats.c), free page reporting
 * (balloon_reporting.c) and free page hints (balloon_hint.c); those files
 * share helpers through balloon_internal.h, nobody else's. It works on a
 * `struct pfa` and on `struct vq`s, and reaches the rest of the world only
 * through `struct balloon_ops`: the kernel (drivers/virtio/balloon.c) plugs
 * in paging, the PCI transport, timers and event lines; host tests and fuzz
 * harnesses plug in a simulated device (tests/unit/virtio_sim.c). One source
 * for all three.
 *
 * The device is not trusted (virtio 1.2, 5.5.6): num_pages beyond the guest's
 * memory is clamped, a completion that is not a batch in flight on that queue
 * is refused, a broken queue stops that queue's work with its frames still
 * accounted for. Every refusal is a console line and a `balloon_refused`
 * event saying what and where; no frame is leaked or freed twice, and
 * balloon_check says so at any time.
 */
#ifndef BLIMP_BALLOON_CORE_H
#define BLIMP_BALLOON_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "drivers/virtio/virtqueue.h"
#include "kernel/pfa.h"

#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ 1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON 4
#define VIRTIO_BALLOON_F_REPORTING 5

/* Device configuration (5.5.4), little-endian 32-bit fields. */
#define BALLOON_CFG_NUM_PAGES 0
#define BALLOON_CFG_ACTUAL 4
#define BALLOON_CFG_HINT_CMD_ID 8
#define BALLOON_CFG_POISON_VAL 12
#define BALLOON_HINT_CMD_ID_STOP 0
#define BALLOON_HINT_CMD_ID_DONE 1

#define BALLOON_MAX_INFLIGHT 4
#define BALLOON_MAX_BATCH 65536
/* 32768 pages (128 MiB, a 128 KiB buffer) per batch: under TCG the guest's
 * work between two batches is mostly per batch, not per page: measured
 * with bench.py's balloon step (2026-12-01, 6 alternated runs), 4096 ->
 * 16384 -> 32768 cut the guest's share of a 1.5 GiB inflate from 48 to 25
 * to 16 ms (inflate +12 %, deflate +18 %).
 * The cost is 640 KiB per batch in flight (the PFNs and their runs). */
#define BALLOON_DEFAULT_BATCH 32768
#define BALLOON_MAX_REPORT_RUNS 32
#define BALLOON_MAX_HINT_BLOCKS 4096 /* 2 MiB blocks held while the host migrates: 8 GiB */
#define BALLOON_STATS_TAGS 10
/* How long one balloon step may run before it lets other work in. */
#define BALLOON_STEP_SLICE_NS 10000000ULL
#define BALLOON_PFN_LIMIT (1ULL << 32) /* frames a le32 on the inflate queue can name */

/* Queues by role; balloon_core_init numbers them for the device (5.5.2).
 * Inflate and deflate are always device queues 0 and 1, so those two roles
 * are also their indices (the device fuzzer, fuzz/fz_exec.c, uses them so). */
enum balloon_queue { BALLOON_Q_INFLATE, BALLOON_Q_DEFLATE, BALLOON_Q_STATS, BALLOON_Q_HINT,
		     BALLOON_Q_REPORT, BALLOON_NQ };
enum balloon_timer { BALLOON_T_RETRY, BALLOON_T_REPORT, BALLOON_T_HINT, BALLOON_NT };

/* What the guest's paging has done, for the statistics (5.5.6.3). */
struct balloon_vm_counters {
	uint64_t swap_in_bytes, swap_out_bytes;
	uint64_t major_faults, minor_faults;
	uint64_t cache_bytes;       /* CACHES */
	uint64_t avail_bytes;       /* AVAIL: what can go without hurting a working set ... */
	bool has_avail;             /* ... if set; else AVAIL is MEMFREE */
};

/* The guest's working sets, for the inflate's guard (pages). */
struct balloon_ws {
	uint64_t ws, margin;        /* the estimate, and what is kept on top of it */
	uint64_t avail;             /* free, cache and resident pages outside the working sets, less the
				     * margin and the reserve floor: what the balloon may still take */
};

/* Side effects, supplied by whoever runs the core. `ctx` is theirs. */
struct balloon_ops {
	/* Out of the direct map / back in before reuse: 0, or a negative errno
	 * (no page table could be had) with the mapping of the run unchanged. */
	int (*unmap)(void *ctx, uint64_t pfn, unsigned order);
	int (*map)(void *ctx, uint64_t pfn, unsigned order);
	void (*notify)(void *ctx, uint16_t queue);              /* device queue index */
	int (*config_write32)(void *ctx, uint32_t off, uint32_t val); /* 0 or negative */
	void (*queue_work)(void *ctx);                          /* run balloon_step soon */
	void (*timer_arm)(void *ctx, enum balloon_timer t, uint64_t delay_ns);
	void (*timer_cancel)(void *ctx, enum balloon_timer t);
	uint64_t (*now_ns)(void *ctx);
	void (*relax)(void *ctx);              /* a short pause while polling (OOM path) */
	bool (*device_failed)(void *ctx);      /* the transport gave up on the device */
	void *(*dma_alloc)(void *ctx, size_t bytes); /* zeroed memory the device may access */
	void (*log)(void *ctx, const char *line);    /* a console line (no newline) */
	void (*event)(void *ctx, const char *name, const char *fields); /* fields may be NULL */
	/* Optional (NULL: the guest has no paging). Free up to `frames` frames
	 * by reclaim (clean cache, then cold pages to swap); how many were
	 * freed. Called when an inflate would stall at the reserve floor. */
	uint64_t (*reclaim)(void *ctx, uint64_t frames);
	/* Optional: the paging counters for the statistics (zeros if NULL). */
	void (*vm_counters)(void *ctx, struct balloon_vm_counters *c);
	/* Optional: the working sets to guard; false when there are none
	 * (nothing running, or no estimate). */
	bool (*working_set)(void *ctx, struct balloon_ws *w);
};

/* What the kernel decides before the device is asked (cmdline, poison). */
struct balloon_params {
	uint32_t batch_pages;   /* pages per inflate/deflate buffer, 1..BALLOON_MAX_BATCH */
	uint32_t inflight;      /* buffers in flight, 1..BALLOON_MAX_INFLIGHT */
	uint64_t report_delay_ms;
	bool stats, reporting, oom, hint;
	bool reclaim;           /* an inflate at the floor asks ops->reclaim for room */
	bool ws_guard;          /* an inflate stops where ops->working_set would be hurt */
	int poison;             /* byte freed frames are filled with, or -1 */
};

struct balloon_batch {
	bool busy, inflate;
	bool remap;              /* deflated, acknowledged, runs still to be mapped */
	uint32_t *pfns;          /* DMA: what the device reads */
	uint32_t n;              /* pages in it */
	struct pfa_run *runs;    /* the same pages as allocator runs */
	size_t n_runs;
};

struct balloon_stat {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

struct balloon {
	struct pfa *pfa;
	const struct balloon_ops *ops;
	void *ctx;
	struct balloon_params p;
	uint64_t features;
	bool has_stats, has_report, has_oom, has_hint;
	uint16_t nq, qidx[BALLOON_NQ];
	struct vq *vq[BALLOON_NQ];
	bool timer_armed[BALLOON_NT], broken_said[BALLOON_NQ], started;

	/* inflate and deflate */
	uint32_t target, num_pages, held, in_flight_in, in_flight_out;
	uint32_t remapping;      /* deflated pages waiting for a mapping (batch.remap) */
	uint64_t pfn_limit;      /* frames at or above it are never taken (BALLOON_PFN_LIMIT) */
	bool unnameable_said;
	struct pfa_run *runs;    /* what the balloon holds, acknowledged */
	size_t n_runs, cap_runs;
	struct balloon_batch batch[BALLOON_MAX_INFLIGHT];
	uint64_t backoff_ms, target_since_ms;
	bool stalled, in_step, oom_hold, done_reported;
	uint64_t progress_ms;    /* when balloon_progress was last said */

	/* statistics (one buffer, on the device's side until it asks) */
	struct balloon_stat *stats;
	bool stats_posted;

	/* free page reporting (one buffer in flight) */
	struct pfa_run report_runs[BALLOON_MAX_REPORT_RUNS];
	size_t report_n;
	bool report_busy;
	/* An inflate found no memory while a report held some: step again when
	 * the report returns (its blocks are free then), not a stall. */
	bool step_after_report;

	/* free page hinting: blocks held from the allocator while the host migrates */
	uint32_t hint_cmd_id, hint_sent_id;
	uint32_t *hint_id_buf;   /* DMA: [0] the round's id, [1] the stop id */
	struct pfa_run *hint_blocks;
	size_t hint_n, hint_posted;
	unsigned hint_out;       /* hint buffers the device has not returned */
	bool hint_running, hint_release_pending, hint_round_pending;

	/* counters */
	uint64_t inflations, deflations, pages_in, pages_out, alloc_failures;
	uint64_t reports, reported_pages, oom_deflates, oom_pages, stats_requests, step_ns;
	uint64_t reclaim_calls, reclaimed;  /* inflates that asked ops->reclaim for room; frames it freed */
	uint64_t ws_stalls;                 /* inflates the working-set guard stopped */
	uint64_t hints, hinted_pages, refusals, map_failures;
};

/* Feature bits to offer to negotiate for these parameters. */
uint64_t balloon_wanted_features(const struct balloon_params *p);

/*
 * Set up after feature negotiation: number the queues, allocate buffers,
 * write poison_val. Features the device accepted beyond `wanted` are refused
 * (ignored, with a line). Returns the number of queues to set up (their
 * device indices are b->qidx[role]), or -ENOMEM / -EIO (poison_val write).
 */
int balloon_core_init(struct balloon *b, struct pfa *pfa, const struct balloon_ops *ops, void *ctx,
		      const struct balloon_params *p, uint64_t features);

/* The queues are live (queues[i] is device queue i) and DRIVER_OK is set:
 * post the stats buffer, hook into the allocator (OOM, free blocks). */
void balloon_core_start(struct balloon *b, struct vq *const *queues);

/* Undo balloon_core_init's heap allocations and the allocator hooks (host
 * tests; DMA memory belongs to the ops). Frames stay as they are. */
void balloon_core_destroy(struct balloon *b);

/* The device configuration changed: `cfg` is `len` bytes of it from offset 0
 * (at least num_pages and actual; the hint command id too with hinting). */
void balloon_config_changed(struct balloon *b, const void *cfg, size_t len);

/* Work: reap completions, post batches toward the target. */
void balloon_step(struct balloon *b);

/* The device returned buffers (any queue). */
void balloon_queue_ready(struct balloon *b);

/* A timer armed through ops->timer_arm is due. */
void balloon_timer_fired(struct balloon *b, enum balloon_timer t);

/* Deflate-on-OOM (a pfa_oom_fn): give back what the allocator wants, at
 * least 1 MiB, telling the host first and polling for its answer (1 s at
 * most). Returns the frames given back. */
uint64_t balloon_oom(void *b, uint64_t wanted);

/*
 * balloon_check.c: check the balloon's own invariants against the allocator: held and in-flight
 * counts match the run list and batches, every frame the balloon holds is
 * BALLOONED, the allocator's ballooned count is exactly the balloon's, report
 * and hint blocks are in the state they should be. 0, or -EFAULT with `why`.
 */
int balloon_check(const struct balloon *b, char *why, size_t why_len);

#endif
