/*
 * balloon_sim: a small machine for the balloon core, on the host.
 *
 * It owns what the kernel would: an allocator over simulated frames (which
 * are never touched), the balloon's queues with a simulated device behind
 * each (virtio_sim), a direct map (one byte a frame: mapped or not), a clock,
 * timers, the work flag and the device configuration; and it plays the
 * device, honestly or not. The direct map has page tables like the
 * kernel's: changing part of a 2 MiB block needs a table frame from the
 * same allocator, so a map can fail for want of memory, as in the kernel. Both tests/unit/test_balloon.c and
 * tests/fuzz/host/fuzz_balloon.c drive the same core through it.
 *
 * The device side keeps its own model — which frames the host holds
 * (acknowledged inflates less acknowledged deflates) — and checks every
 * buffer it takes: an inflate may only carry frames that are ballooned and
 * unmapped and not already the host's, a deflate only frames the host holds,
 * a report only isolated blocks, a hint only allocated ones. Every `actual`
 * the driver writes must equal what it has seen acknowledged. A violation is
 * recorded in `failure` (the first one wins); bsim_check adds the
 * allocator's, the balloon's and the queues' own invariants.
 *
 * Check modes: by default bsim_check walks everything every time. With
 * `incremental` set (the fuzz harness), it keeps a copy of what it last
 * found sound — the allocator's metadata, the direct map, host_has, the page
 * tables — and walks again only what differs: pfa_check only when the
 * allocator changed at all, the per-frame and per-block checks only for the
 * 2 MiB blocks that changed, balloon_check only when the allocator or what
 * it reads of the balloon (the struct, its run list, busy batches and hint
 * blocks, the queues' in_flight) changed. What is skipped is byte for byte
 * what passed before, so the verdict is the full check's. The queues, the
 * timers and the configuration are checked in full every time.
 */
#ifndef BLIMP_BALLOON_SIM_H
#define BLIMP_BALLOON_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include "drivers/virtio/balloon_core.h"
#include "tests/unit/virtio_sim.h"

#define BSIM_MAX_POPPED 128
#define BSIM_MAX_PUSHES (1u << 20) /* completions remembered per queue */
#define BSIM_TABLE_RESERVE 4 /* as arch/x86_64/paging.c's TABLE_RESERVE */

struct bsim_popped {
	struct vsim_buf buf;
	uint32_t *pfns;       /* inflate/deflate: the frame numbers the device read */
	uint32_t n;
};

struct bsim_config {
	uint64_t frames;       /* frames [0, frames) described; RAM from 256 up */
	uint64_t reserve_floor;
	struct balloon_params p;
	uint64_t offered;      /* device features; negotiation keeps wanted & offered */
	uint64_t extra;        /* bits the "transport" claims beyond that (hostile) */
	uint16_t queue_size;   /* power of two, 1..128 */
	bool event_idx, indirect;
	bool packed;           /* packed rings (virtio 1.2, 2.8) instead of split */
	unsigned auto_answer;  /* bit per role: the device answers inside notify */
	bool oom_answers;      /* the device answers deflates while the OOM path polls */
};

struct bsim {
	struct bsim_config c;
	struct pfa pfa;
	void *meta;
	uint8_t *mapped;       /* per frame: in the direct map */
	uint8_t *host_has;     /* per frame: the device holds it */
	uint64_t *table;       /* per 2 MiB block: its page table's frame + 1, or 0 */
	uint64_t page_tables, reserve_uses;
	uint64_t reserve[BSIM_TABLE_RESERVE];
	unsigned n_reserve;
	unsigned fail_maps;    /* the next this many map/unmap calls fail (-ENOMEM) */
	uint64_t host_pages;
	/* The guest's working sets, for the guard (ops->working_set): pages the
	 * workloads use, all of them allocated (none outside the sets); 0: none. */
	uint64_t ws_pages;
	struct balloon b;
	int nq;                /* balloon_core_init's answer */
	struct vq vq[BALLOON_NQ];
	void *ring[BALLOON_NQ], *tables[BALLOON_NQ];
	struct vsim dev[BALLOON_NQ];
	struct vq *queues[BALLOON_NQ]; /* by device index, for balloon_core_start */
	bool live[BALLOON_NQ];
	struct bsim_popped popped[BALLOON_NQ][BSIM_MAX_POPPED];
	unsigned n_popped[BALLOON_NQ];
	bool lied[BALLOON_NQ];
	bool lie_astray[BALLOON_NQ]; /* packed: a lie the driver may never see moved the device on */
	/* inflate/deflate completions pushed, in used-ring order, and pages */
	int64_t *push_pages[2];
	unsigned n_pushes[2], cap_pushes[2], n_consumed[2];
	int64_t consumed[2];   /* pages in the first n_consumed pushes */
	uint8_t cfg[16];
	bool work_pending, in_relax;
	uint64_t timer_due[BALLOON_NT];
	bool timer_armed[BALLOON_NT];
	uint64_t now_ns;
	unsigned notifies[BALLOON_NQ];
	uint64_t actual_writes, poison_writes, events, refusals;
	uint32_t actual, poison_val;
	uint32_t hint_ids[8];  /* command ids the device read, in order (a ring) */
	unsigned n_hint_ids;
	void *dma[16];
	unsigned n_dma;
	bool verbose;
	bool incremental;      /* bsim_check walks only what changed (see above) */
	bool snap_valid;       /* the copies below are of a state that passed */
	size_t meta_size;
	struct pfa snap_pfa;
	uint8_t *snap_meta, *snap_mapped, *snap_host;
	uint64_t *snap_table;
	uint64_t *blk_host;    /* per 2 MiB block: frames the host holds, as counted */
	bool same_pfa, same_frames; /* this check: allocator / per-frame arrays as last passed */
	uint8_t *fp[2];        /* what balloon_check reads beyond the allocator: [0] as */
	size_t fp_len[2], fp_cap[2]; /* last passed, [1] now */
	char failure[400];
};

/* Build the machine and start the balloon. 0, or -1 with s->failure set
 * (the balloon refused to start: not a failure of the test by itself). */
int bsim_init(struct bsim *s, const struct bsim_config *c);
void bsim_destroy(struct bsim *s);

/* The host writes the configuration and raises the interrupt. */
void bsim_set_num_pages(struct bsim *s, uint32_t num_pages);
void bsim_set_hint_cmd(struct bsim *s, uint32_t id);

/* The kernel loop: run queued work until none is left (bounded); fire one
 * timer if it is armed (the clock jumps to it); a queue interrupt. */
void bsim_run_work(struct bsim *s);
bool bsim_fire_timer(struct bsim *s, enum balloon_timer t);
void bsim_interrupt(struct bsim *s);

/* The device. Take the next available buffer on a role's queue (checked);
 * complete the k-th buffer taken with `len` (0 for honest inflate/deflate/
 * stats/report). Both return false when there is nothing to do. */
bool bsim_take(struct bsim *s, enum balloon_queue q);
bool bsim_complete(struct bsim *s, enum balloon_queue q, unsigned k, uint32_t len);
/* Take and complete everything on a queue; returns how many. */
unsigned bsim_answer_all(struct bsim *s, enum balloon_queue q);
/* Lie so that the queue must break: kind 0 an id not in flight, 1 a length
 * beyond the buffer, 2 used.idx jumping past the buffers in flight. */
void bsim_lie(struct bsim *s, enum balloon_queue q, unsigned kind, uint32_t arg);

/* The guest allocates (through the OOM handler if it must) or frees. */
int64_t bsim_alloc(struct bsim *s, unsigned order);
int bsim_free(struct bsim *s, uint64_t pfn, unsigned order);

/* Every invariant, now. 0, or -1 with s->failure saying what. */
int bsim_check(struct bsim *s);

#endif
