/*
 * balloon: virtio-balloon driver (see balloon.h for what it does).
 *
 * The path of an inflate, in this file:
 *   config-change interrupt -> balloon_config_changed (reads num_pages)
 *   -> balloon_step (work, one batch at a time) -> pfa_balloon_take (whole
 *   2 MiB blocks first) -> unmap from the direct map -> PFNs into a buffer
 *   -> inflate queue -> notify -> used -> inflate_done: runs recorded,
 *   `actual` written, event line -> next batch until actual == target.
 * Deflate is the reverse, and frames are mapped and freed only after the
 * host has acknowledged them (so MUST_TELL_HOST always holds).
 *
 * Configuration (5.5.4): num_pages le32 at 0, actual le32 at 4.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon.h"
#include "virtio_pci.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/paging.h"
#include "kernel/addr.h"
#include "kernel/clock.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/shell.h"

#define CFG_NUM_PAGES 0
#define CFG_ACTUAL 4
#define CFG_HINT_CMD_ID 8
#define CFG_POISON_VAL 12
#define HINT_CMD_ID_STOP 0
#define HINT_CMD_ID_DONE 1
#define MAX_HINT_BLOCKS 4096 /* 2 MiB blocks held while the host migrates: 8 GiB */
#define MAX_INFLIGHT 4
#define MAX_REPORT_RUNS 32
#define STATS_TAGS 10

CMDLINE_OPTION(balloon_batch, "balloon.batch", "pages per inflate/deflate buffer (default 4096; 256 for strict devices)");
CMDLINE_OPTION(balloon_inflight, "balloon.inflight", "inflate/deflate buffers in flight, 1-4 (default 2)");
CMDLINE_OPTION(balloon_report_delay, "balloon.report_delay_ms", "delay before free 2 MiB blocks are reported (default 100)");
CMDLINE_OPTION(balloon_no_stats, "balloon.no_stats", "do not negotiate STATS_VQ");
CMDLINE_OPTION(balloon_no_reporting, "balloon.no_reporting", "do not negotiate REPORTING");
CMDLINE_OPTION(balloon_no_oom, "balloon.no_oom", "do not negotiate DEFLATE_ON_OOM");
CMDLINE_OPTION(balloon_hint, "balloon.hint",
	       "negotiate FREE_PAGE_HINT (off by default: QEMU 7.2 under TCG aborts when hints arrive, docs/findings.md)");

struct batch {
	bool busy, inflate;
	uint32_t *pfns;          /* DMA: what the device reads */
	uint32_t n;              /* pages in it */
	struct pfa_run *runs;    /* the same pages as allocator runs */
	size_t n_runs;
};

struct stat_entry {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

struct balloon {
	struct virtio_dev *vd;
	uint16_t q_inflate, q_deflate, q_stats, q_report;
	bool has_stats, has_report, has_oom, has_hint;
	uint16_t q_hint;
	/* free page hinting: blocks held from the allocator while the host migrates */
	uint32_t hint_cmd_id, hint_sent_id;
	struct pfa_run *hint_blocks;
	size_t hint_n, hint_posted;
	uint32_t *hint_id_buf;   /* DMA: the 4-byte command id the device reads */
	bool hint_running;
	struct timer hint_timer;
	uint64_t hints, hinted_pages;
	uint32_t target, held, in_flight_in, in_flight_out;
	struct pfa_run *runs;    /* what the balloon holds, acknowledged */
	size_t n_runs, cap_runs;
	struct batch batch[MAX_INFLIGHT];
	uint32_t batch_pages, inflight;
	struct work work;
	struct timer retry, report_timer;
	uint64_t backoff_ms, target_since_ms;
	bool stalled, in_step, oom_hold, done_reported;
	struct stat_entry *stats;
	struct pfa_run report_runs[MAX_REPORT_RUNS];
	size_t report_n;
	bool report_busy;
	uint64_t report_delay_ms;
	/* counters */
	uint64_t inflations, deflations, pages_in, pages_out, alloc_failures;
	uint64_t reports, reported_pages, oom_deflates, oom_pages, stats_requests, step_ns;
};

static struct balloon B;

/* ---------------------------------------------------------------- helpers */

static void write_actual(struct balloon *b)
{
	virtio_pci_config_write32(b->vd, CFG_ACTUAL, b->held);
}

static int keep_run(struct balloon *b, struct pfa_run r)
{
	if (b->n_runs == b->cap_runs) {
		size_t cap = b->cap_runs ? b->cap_runs * 2 : 256;
		struct pfa_run *n = realloc(b->runs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->runs = n;
		b->cap_runs = cap;
	}
	b->runs[b->n_runs++] = r;
	return 0;
}

static struct batch *free_batch(struct balloon *b)
{
	for (uint32_t i = 0; i < b->inflight; i++)
		if (!b->batch[i].busy)
			return &b->batch[i];
	return NULL;
}

static void fill_pfns(struct batch *bt)
{
	bt->n = 0;
	for (size_t i = 0; i < bt->n_runs; i++)
		for (uint64_t p = 0; p < (1ULL << bt->runs[i].order); p++)
			bt->pfns[bt->n++] = (uint32_t)(bt->runs[i].pfn + p);
}

static int post(struct balloon *b, struct batch *bt)
{
	uint16_t q = bt->inflate ? b->q_inflate : b->q_deflate;
	struct vq_seg seg = { virt_to_phys(bt->pfns), bt->n * 4 };
	int rc = vq_add(b->vd->queues[q], &seg, 1, NULL, 0, bt);
	if (rc < 0)
		return rc;
	bt->busy = true;
	if (bt->inflate)
		b->in_flight_in += bt->n;
	else
		b->in_flight_out += bt->n;
	virtio_pci_notify(b->vd, q);
	return 0;
}

/* ---------------------------------------------------------------- batches */

static void inflate_done(struct balloon *b, struct batch *bt)
{
	uint32_t kept = bt->n;
	b->in_flight_in -= bt->n;
	for (size_t i = 0; i < bt->n_runs; i++)
		if (keep_run(b, bt->runs[i]) < 0) {
			/* No room to remember it: give it straight back. */
			paging_map_range(bt->runs[i].pfn << PAGE_SHIFT, PAGE_SIZE << bt->runs[i].order);
			pfa_balloon_return(&kernel_pfa, bt->runs[i].pfn, bt->runs[i].order, NULL);
			kept -= 1u << bt->runs[i].order;
		}
	b->held += kept;
	b->pages_in += kept;
	b->inflations++;
	bt->busy = false;
}

static void deflate_done(struct balloon *b, struct batch *bt)
{
	for (size_t i = 0; i < bt->n_runs; i++) {
		paging_map_range(bt->runs[i].pfn << PAGE_SHIFT, PAGE_SIZE << bt->runs[i].order);
		pfa_balloon_return(&kernel_pfa, bt->runs[i].pfn, bt->runs[i].order, NULL);
	}
	b->in_flight_out -= bt->n;
	b->held -= bt->n;
	b->pages_out += bt->n;
	b->deflations++;
	bt->busy = false;
}

/* Collect what the device acknowledged on both queues; returns how many. */
static int reap(struct balloon *b)
{
	int got = 0;
	for (int dir = 0; dir < 2; dir++) {
		struct vq *vq = b->vd->queues[dir ? b->q_deflate : b->q_inflate];
		void *tok;
		uint32_t len;
		while (vq_get_used(vq, &tok, &len) == 1) {
			struct batch *bt = tok;
			if (bt->inflate)
				inflate_done(b, bt);
			else
				deflate_done(b, bt);
			got++;
		}
	}
	if (got)
		write_actual(b);
	return got;
}

/* Take up to `want` pages for an inflate batch; false when none could be had. */
static bool start_inflate(struct balloon *b, struct batch *bt, uint32_t want)
{
	uint64_t got = pfa_balloon_take(&kernel_pfa, want, bt->runs, b->batch_pages, &bt->n_runs);
	if (got == 0)
		return false;
	for (size_t i = 0; i < bt->n_runs; i++)
		paging_unmap_range(bt->runs[i].pfn << PAGE_SHIFT, PAGE_SIZE << bt->runs[i].order);
	bt->inflate = true;
	fill_pfns(bt);
	return true;
}

/* Move up to `want` held pages into a deflate batch, splitting a run when
 * only part of it must go. */
static void start_deflate(struct balloon *b, struct batch *bt, uint32_t want)
{
	uint32_t taken = 0;
	bt->n_runs = 0;
	while (taken < want && b->n_runs > 0 && bt->n_runs < b->batch_pages) {
		struct pfa_run *r = &b->runs[b->n_runs - 1];
		while ((1u << r->order) > want - taken) {
			pfa_balloon_split(&kernel_pfa, r->pfn, r->order);
			/* keep the lower half held, consider the upper half */
			r->order--;
			struct pfa_run upper = { r->pfn + (1ULL << r->order), r->order };
			if (keep_run(b, upper) < 0) {
				/* cannot track the split: deflate the whole lower half instead */
				r->order++;
				break;
			}
			r = &b->runs[b->n_runs - 1];
		}
		bt->runs[bt->n_runs++] = *r;
		taken += 1u << r->order;
		b->n_runs--;
	}
	bt->inflate = false;
	fill_pfns(bt);
}

static void retry_fired(struct timer *t)
{
	(void)t;
	B.stalled = false;
	work_queue(&B.work);
}

/* One round: reap, then post batches toward the target. Runs as work; does a
 * bounded amount and re-queues itself, so the shell stays responsive. */
static void balloon_step(struct work *w)
{
	struct balloon *b = &B;
	(void)w;
	if (b->vd->failed || b->in_step)
		return; /* the OOM path is mid-deflate; it queues us again when done */
	uint64_t t0 = clock_ns();
	b->in_step = true;
	reap(b);
	bool posted = false;
	struct batch *bt;
	while ((bt = free_batch(b)) != NULL) {
		uint32_t level = b->held + b->in_flight_in - b->in_flight_out;
		uint32_t target = b->oom_hold && b->target > level ? level : b->target;
		if (level < target && !b->stalled) {
			uint32_t want = target - level < b->batch_pages ? target - level : b->batch_pages;
			if (!start_inflate(b, bt, want)) {
				b->alloc_failures++;
				b->stalled = true;
				bool floor = kernel_pfa.st.free <= kernel_pfa.reserve_floor;
				printf("balloon: holding %u of %u pages: %s; retrying in %lu ms\n", level, target,
				       floor ? "the reserve floor is reached" : "no free memory", (unsigned long)b->backoff_ms);
				event_emit("balloon_stalled", "\"held\":%u,\"target\":%u,\"reason\":\"%s\",\"free\":%lu,"
					   "\"reserve_floor\":%lu,\"retry_ms\":%lu", level, target,
					   floor ? "reserve floor" : "no memory", (unsigned long)kernel_pfa.st.free,
					   (unsigned long)kernel_pfa.reserve_floor, (unsigned long)b->backoff_ms);
				timer_arm(&b->retry, b->backoff_ms * 1000000);
				if (b->backoff_ms < 8000)
					b->backoff_ms *= 2;
				break;
			}
		} else if (level > target) {
			start_deflate(b, bt, level - target < b->batch_pages ? level - target : b->batch_pages);
		} else {
			break;
		}
		if (post(b, bt) < 0) {
			printf("balloon: queue refused a buffer (%s)\n", vq_broken_reason(b->vd->queues[0]));
			break;
		}
		posted = true;
		/* QEMU under TCG answers during the notify: reap at once. */
		reap(b);
	}
	b->in_step = false;
	b->step_ns += clock_ns() - t0;
	if (posted) {
		event_emit("balloon_progress", "\"held\":%u,\"target\":%u,\"free\":%lu", b->held, b->target,
			   (unsigned long)kernel_pfa.st.free);
		work_queue(&b->work); /* more next round, after other work had a turn */
	} else if (b->held == b->target && !b->done_reported && !b->in_flight_in && !b->in_flight_out) {
		b->done_reported = true;
		b->backoff_ms = 250;
		event_emit("balloon_done", "\"held\":%u,\"target\":%u,\"ms\":%lu", b->held, b->target,
			   (unsigned long)(clock_ms() - b->target_since_ms));
	}
}

/* ---------------------------------------------------------------- hinting */

/*
 * Free page hinting (5.5.6.7): while the host migrates, the guest tells it
 * which pages are free so they need not be copied. The guest echoes the
 * host's command id, sends its free 2 MiB blocks as device-writable buffers,
 * then the stop id; the blocks stay allocated (nobody may write them while
 * the host skips them) until the host says DONE.
 */
static void hint_release(struct balloon *b)
{
	for (size_t i = 0; i < b->hint_n; i++)
		pfa_free_block(&kernel_pfa, b->hint_blocks[i].pfn, b->hint_blocks[i].order, NULL);
	b->hint_n = b->hint_posted = 0;
}

static int hint_send_id(struct balloon *b, uint32_t id)
{
	*b->hint_id_buf = id;
	struct vq_seg seg = { virt_to_phys(b->hint_id_buf), 4 };
	int rc = vq_add(b->vd->queues[b->q_hint], &seg, 1, NULL, 0, b->hint_id_buf);
	if (rc == 0)
		virtio_pci_notify(b->vd, b->q_hint);
	return rc;
}

/* Post as many held blocks as the queue takes, then the stop id. */
static void hint_pump(struct balloon *b)
{
	struct vq *vq = b->vd->queues[b->q_hint];
	void *tok;
	uint32_t len;
	while (vq_get_used(vq, &tok, &len) == 1)
		;
	if (!b->hint_running)
		return;
	while (b->hint_posted < b->hint_n) {
		size_t n = b->hint_n - b->hint_posted;
		if (n > MAX_REPORT_RUNS)
			n = MAX_REPORT_RUNS;
		struct vq_seg segs[MAX_REPORT_RUNS];
		for (size_t i = 0; i < n; i++) {
			struct pfa_run *r = &b->hint_blocks[b->hint_posted + i];
			segs[i] = (struct vq_seg){ r->pfn << PAGE_SHIFT, (uint32_t)(PAGE_SIZE << r->order) };
		}
		if (vq_add(vq, NULL, 0, segs, (unsigned)n, &b->hint_blocks[b->hint_posted]) < 0)
			break; /* full: the queue-ready path pumps again */
		b->hint_posted += n;
		virtio_pci_notify(b->vd, b->q_hint);
	}
	if (b->hint_posted < b->hint_n)
		timer_arm(&b->hint_timer, 10 * 1000 * 1000); /* polled: see hint_timer_fired */
	if (b->hint_posted == b->hint_n && hint_send_id(b, HINT_CMD_ID_STOP) == 0) {
		b->hint_running = false;
		uint64_t pages = 0;
		for (size_t i = 0; i < b->hint_n; i++)
			pages += 1ULL << b->hint_blocks[i].order;
		b->hints++;
		b->hinted_pages += pages;
		event_emit("balloon_hint", "\"cmd_id\":%u,\"blocks\":%zu,\"pages\":%lu", b->hint_sent_id,
			   b->hint_n, (unsigned long)pages);
	}
}

/*
 * The hint queue runs with its interrupts off and is polled on this timer:
 * the device works on it in an iothread, and fewer interrupts from there is
 * better under TCG (where QEMU 7.2 aborts on hints anyway: docs/findings.md).
 */
static void hint_timer_fired(struct timer *t)
{
	(void)t;
	hint_pump(&B);
}

static void hint_command(struct balloon *b, uint32_t id)
{
	if (id == b->hint_cmd_id)
		return;
	b->hint_cmd_id = id;
	if (id == HINT_CMD_ID_DONE) {
		/* Migration is over: the held blocks are ordinary free memory again. */
		b->hint_running = false;
		hint_release(b);
		event_emit("balloon_hint_done", NULL);
		return;
	}
	if (id == HINT_CMD_ID_STOP) {
		b->hint_running = false; /* keep what is held until DONE */
		return;
	}
	/* A new round: anything held from an older one goes back first. */
	hint_release(b);
	while (b->hint_n < MAX_HINT_BLOCKS && kernel_pfa.st.free > kernel_pfa.reserve_floor + 512) {
		int64_t pfn = pfa_alloc_block_flags(&kernel_pfa, PFA_HUGE_ORDER, PFA_NO_OOM);
		if (pfn < 0)
			break;
		b->hint_blocks[b->hint_n++] = (struct pfa_run){ (uint64_t)pfn, PFA_HUGE_ORDER };
	}
	if (hint_send_id(b, id) < 0) {
		hint_release(b);
		return;
	}
	b->hint_sent_id = id;
	b->hint_running = true;
	hint_pump(b);
}

/* ---------------------------------------------------------------- host events */

static void balloon_config_changed(struct virtio_dev *vd)
{
	uint32_t cfg[2];
	if (virtio_pci_config_read(vd, 0, cfg, sizeof(cfg)) < 0)
		return;
	struct balloon *b = &B;
	if (cfg[0] != b->target) {
		b->oom_hold = false; /* a new target from the host: follow it again */
		b->stalled = false;
		b->backoff_ms = 250;
		timer_cancel(&b->retry);
	}
	b->target = cfg[0];
	b->target_since_ms = clock_ms();
	uint32_t cmd_id;
	if (b->has_hint && virtio_pci_config_read(vd, CFG_HINT_CMD_ID, &cmd_id, 4) == 0)
		hint_command(b, cmd_id);
	b->done_reported = false;
	static const char *const modes[] = { "none", "intx", "msix", "poll" };
	event_emit("balloon_target", "\"num_pages\":%u,\"held\":%u,\"irq\":\"%s\",\"config_irqs\":%lu",
		   cfg[0], b->held, modes[vd->irq_mode], (unsigned long)vd->config_irqs);
	work_queue(&b->work);
}

static void fill_stats(struct balloon *b)
{
	const struct pfa_stats *s = &kernel_pfa.st;
	uint64_t free_b = s->free << PAGE_SHIFT;
	uint64_t vals[STATS_TAGS] = {
		0, 0, 0, 0,                                    /* swap in/out, major/minor faults: no paging */
		free_b,                                        /* MEMFREE */
		(s->managed - s->ballooned) << PAGE_SHIFT,     /* MEMTOT: what the guest has, balloon excluded */
		free_b,                                        /* AVAIL: nothing reclaimable beyond free */
		0,                                             /* CACHES: blimp has no page cache */
		s->huge_allocs, s->huge_failures,              /* HTLB_PGALLOC, HTLB_PGFAIL */
	};
	for (uint16_t t = 0; t < STATS_TAGS; t++) {
		b->stats[t].tag = t;
		b->stats[t].val = vals[t];
	}
}

static void post_stats(struct balloon *b)
{
	fill_stats(b);
	struct vq_seg seg = { virt_to_phys(b->stats), STATS_TAGS * sizeof(struct stat_entry) };
	if (vq_add(b->vd->queues[b->q_stats], &seg, 1, NULL, 0, b->stats) == 0)
		virtio_pci_notify(b->vd, b->q_stats);
}

static void report_fired(struct timer *t)
{
	(void)t;
	struct balloon *b = &B;
	if (b->report_busy || b->vd->failed)
		return;
	b->report_n = pfa_report_take(&kernel_pfa, PFA_HUGE_ORDER, b->report_runs, MAX_REPORT_RUNS);
	if (b->report_n == 0)
		return;
	struct vq_seg segs[MAX_REPORT_RUNS];
	for (size_t i = 0; i < b->report_n; i++)
		segs[i] = (struct vq_seg){ b->report_runs[i].pfn << PAGE_SHIFT,
					   (uint32_t)(PAGE_SIZE << b->report_runs[i].order) };
	if (vq_add(b->vd->queues[b->q_report], NULL, 0, segs, (unsigned)b->report_n, b->report_runs) < 0) {
		for (size_t i = 0; i < b->report_n; i++)
			pfa_report_done(&kernel_pfa, b->report_runs[i].pfn, b->report_runs[i].order, false);
		return;
	}
	b->report_busy = true;
	virtio_pci_notify(b->vd, b->q_report);
}

static void free_block_formed(void *ctx)
{
	struct balloon *b = ctx;
	if (b->has_report && !b->report_busy && !b->report_timer.armed)
		timer_arm(&b->report_timer, b->report_delay_ms * 1000000);
}

static void balloon_queue_ready(struct virtio_dev *vd)
{
	struct balloon *b = &B;
	void *tok;
	uint32_t len;
	work_queue(&b->work); /* inflate/deflate completions */
	if (b->has_stats)
		while (vq_get_used(vd->queues[b->q_stats], &tok, &len) == 1) {
			b->stats_requests++; /* the host wants fresh figures: answer at once */
			post_stats(b);
		}
	if (b->has_report)
		while (vq_get_used(vd->queues[b->q_report], &tok, &len) == 1) {
			uint64_t pages = 0;
			for (size_t i = 0; i < b->report_n; i++) {
				pfa_report_done(&kernel_pfa, b->report_runs[i].pfn, b->report_runs[i].order, true);
				pages += 1ULL << b->report_runs[i].order;
			}
			b->reports++;
			b->reported_pages += pages;
			b->report_busy = false;
			event_emit("balloon_report", "\"blocks\":%zu,\"pages\":%lu,\"reported_total\":%lu",
				   b->report_n, (unsigned long)pages, (unsigned long)b->reported_pages);
			b->report_n = 0;
			timer_arm(&b->report_timer, 0); /* more may be waiting: next pass now */
		}
}

/* ---------------------------------------------------------------- OOM */

/* The allocator is about to fail: give back what it needs (at least 1 MiB),
 * telling the host first, synchronously. */
static uint64_t balloon_oom(void *ctx, uint64_t wanted)
{
	struct balloon *b = ctx;
	if (!b->has_oom || b->in_step || b->held == 0 || b->vd->failed)
		return 0;
	b->in_step = true;
	reap(b);
	uint32_t pages = wanted < 256 ? 256 : (uint32_t)wanted;
	uint32_t freed = 0;
	struct batch *bt;
	while (freed < pages && b->held - b->in_flight_out > 0 && (bt = free_batch(b)) != NULL) {
		uint32_t want = pages - freed < b->batch_pages ? pages - freed : b->batch_pages;
		start_deflate(b, bt, want);
		if (bt->n == 0 || post(b, bt) < 0)
			break;
		freed += bt->n;
		/* Poll the queue, bounded: running other work here could re-enter
		 * whatever is allocating (the shell, the heap). */
		uint64_t start = clock_ms();
		while (b->in_flight_out && clock_ms() - start < 1000) {
			reap(b);
			cpu_relax();
		}
		if (b->in_flight_out)
			break;
	}
	b->in_step = false;
	work_queue(&b->work);
	b->oom_hold = true; /* no re-inflating until the host sets a new target */
	b->oom_deflates++;
	b->oom_pages += freed;
	event_emit("balloon_oom", "\"wanted\":%lu,\"deflated\":%u,\"held\":%u", (unsigned long)wanted, freed, b->held);
	return freed;
}

/* ---------------------------------------------------------------- init */

void balloon_init(void)
{
	struct balloon *b = &B;
	b->vd = virtio_find(VIRTIO_ID_BALLOON);
	if (!b->vd)
		return;
	uint64_t wanted = 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST;
	if (!cmdline_has("balloon.no_stats"))
		wanted |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (!cmdline_has("balloon.no_reporting"))
		wanted |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	if (!cmdline_has("balloon.no_oom"))
		wanted |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (cmdline_has("balloon.hint"))
		wanted |= 1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT;
	/* Only when freed frames really hold a poison value: the host then
	 * knows not to discard reported pages (their content matters). */
	if (mm_poison_value() >= 0)
		wanted |= 1ULL << VIRTIO_BALLOON_F_PAGE_POISON;
	if (virtio_pci_start(b->vd, wanted) < 0)
		return;
	b->has_stats = virtio_has(b->vd, VIRTIO_BALLOON_F_STATS_VQ);
	b->has_report = virtio_has(b->vd, VIRTIO_BALLOON_F_REPORTING);
	b->has_oom = virtio_has(b->vd, VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	b->has_hint = virtio_has(b->vd, VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	if (virtio_has(b->vd, VIRTIO_BALLOON_F_PAGE_POISON)) {
		/* The value of the byte in all four bytes of the le32. */
		uint32_t v = (uint32_t)mm_poison_value() * 0x01010101u;
		if (virtio_pci_config_write32(b->vd, CFG_POISON_VAL, v) < 0)
			printf("balloon: cannot write poison_val\n");
	}
	uint16_t q = 0;
	b->q_inflate = q++;
	b->q_deflate = q++;
	if (b->has_stats)
		b->q_stats = q++;
	if (b->has_hint)
		b->q_hint = q++;
	if (b->has_report)
		b->q_report = q++;

	b->batch_pages = (uint32_t)cmdline_get_u64("balloon.batch", 4096);
	if (b->batch_pages < 1 || b->batch_pages > 65536)
		b->batch_pages = 4096;
	b->inflight = (uint32_t)cmdline_get_u64("balloon.inflight", 2);
	if (b->inflight < 1 || b->inflight > MAX_INFLIGHT)
		b->inflight = 2;
	b->report_delay_ms = cmdline_get_u64("balloon.report_delay_ms", 100);
	b->backoff_ms = 250;
	b->work.fn = balloon_step;
	b->retry.fn = retry_fired;
	b->report_timer.fn = report_fired;
	b->hint_timer.fn = hint_timer_fired;

	for (uint16_t i = 0; i < q; i++)
		if (virtio_pci_setup_queue(b->vd, i, 128) < 0) {
			printf("balloon: queue %u could not be set up; device not used\n", i);
			return;
		}
	for (uint32_t i = 0; i < b->inflight; i++) {
		b->batch[i].pfns = mm_alloc_dma(b->batch_pages * 4);
		b->batch[i].runs = malloc(b->batch_pages * sizeof(struct pfa_run));
		if (!b->batch[i].pfns || !b->batch[i].runs) {
			printf("balloon: no memory for its buffers; device not used\n");
			return;
		}
	}
	b->stats = mm_alloc_dma(STATS_TAGS * sizeof(struct stat_entry));
	if (b->has_hint) {
		b->hint_id_buf = mm_alloc_dma(4);
		b->hint_blocks = malloc(MAX_HINT_BLOCKS * sizeof(struct pfa_run));
		if (!b->hint_id_buf || !b->hint_blocks)
			b->has_hint = false;
	}
	if (b->has_hint)
		vq_disable_cb(b->vd->queues[b->q_hint]);
	b->vd->driver = b;
	virtio_pci_ready(b->vd, balloon_config_changed, balloon_queue_ready);
	if (b->has_stats && b->stats)
		post_stats(b);
	if (b->has_oom)
		pfa_set_oom_handler(&kernel_pfa, balloon_oom, b);
	if (b->has_report) {
		pfa_set_free_hook(&kernel_pfa, free_block_formed, b);
		free_block_formed(b); /* report what is free from the start */
	}
	balloon_config_changed(b->vd); /* a target set before we were ready */
}

/* ---------------------------------------------------------------- shell */

static int cmd_balloon(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct balloon *b = &B;
	if (!b->vd || b->vd->driver != b) {
		printf("no balloon device\n");
		return -ENODEV;
	}
	printf("target %u pages (%u MiB), holding %u (%u MiB)%s%s\n", b->target, b->target >> 8, b->held,
	       b->held >> 8, b->stalled ? ", stalled" : "", b->oom_hold ? ", held back after an OOM deflate" : "");
	printf("features: stats %s, reporting %s, deflate-on-oom %s, free-page-hint %s, must-tell-host %s\n",
	       b->has_stats ? "on" : "off", b->has_report ? "on" : "off", b->has_oom ? "on" : "off",
	       b->has_hint ? "on" : "off",
	       virtio_has(b->vd, VIRTIO_BALLOON_F_MUST_TELL_HOST) ? "on" : "off (told anyway)");
	printf("batch %u pages, %u in flight; inflations %lu (%lu pages), deflations %lu (%lu pages), "
	       "allocation stalls %lu\n", b->batch_pages, b->inflight, (unsigned long)b->inflations,
	       (unsigned long)b->pages_in, (unsigned long)b->deflations, (unsigned long)b->pages_out,
	       (unsigned long)b->alloc_failures);
	printf("free page hints %lu (%lu pages)%s\n", (unsigned long)b->hints, (unsigned long)b->hinted_pages,
	       b->hint_n ? ", blocks held until the host is done" : "");
	printf("reports %lu (%lu pages), OOM deflates %lu (%lu pages), stats requests %lu, time in steps %lu ms\n",
	       (unsigned long)b->reports, (unsigned long)b->reported_pages, (unsigned long)b->oom_deflates,
	       (unsigned long)b->oom_pages, (unsigned long)b->stats_requests, (unsigned long)(b->step_ns / 1000000));
	event_emit("balloon", "\"target\":%u,\"held\":%u,\"stalled\":%d,\"features\":%lu,\"inflations\":%lu,"
		   "\"deflations\":%lu,\"pages_in\":%lu,\"pages_out\":%lu,\"alloc_failures\":%lu,\"reports\":%lu,"
		   "\"reported_pages\":%lu,\"oom_deflates\":%lu,\"oom_pages\":%lu,\"stats_requests\":%lu,"
		   "\"free\":%lu,\"managed\":%lu,\"huge_allocs\":%lu,\"huge_failures\":%lu",
		   b->target, b->held, b->stalled, (unsigned long)b->vd->features, (unsigned long)b->inflations,
		   (unsigned long)b->deflations, (unsigned long)b->pages_in, (unsigned long)b->pages_out,
		   (unsigned long)b->alloc_failures, (unsigned long)b->reports, (unsigned long)b->reported_pages,
		   (unsigned long)b->oom_deflates, (unsigned long)b->oom_pages, (unsigned long)b->stats_requests,
		   (unsigned long)kernel_pfa.st.free, (unsigned long)kernel_pfa.st.managed,
		   (unsigned long)kernel_pfa.st.huge_allocs, (unsigned long)kernel_pfa.st.huge_failures);
	return 0;
}
SHELL_COMMAND(balloon, "", "balloon state, features and counters", cmd_balloon);
