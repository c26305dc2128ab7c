/*
 * balloon_report: what the balloon tells the host besides inflate and
 * deflate — memory statistics (5.5.6.3), free page reporting (5.5.6.6) and
 * free page hints (5.5.6.7). Part of the core (balloon_core.h): no kernel
 * calls, compiled into the kernel, the unit tests and the fuzz harnesses.
 *
 * Each has its own queue and a little state:
 *   stats   one buffer, on the device's side until it wants fresh figures;
 *           its return is the request, and the answer is the buffer posted
 *           again, refilled (once per batch of returns, however many came).
 *   report  free, unreported 2 MiB blocks are taken off the free lists
 *           (ISOLATED) a short delay after one forms, sent as one buffer,
 *           and put back marked reported when it returns.
 *   hint    while the host migrates: on a new command id, free 2 MiB blocks
 *           are allocated (held, so nobody writes them), sent with the id
 *           before them and STOP after them, and freed on DONE — but only
 *           once the device has returned every hint buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "balloon_core.h"
#include "kernel/addr.h"

/* Blocks one buffer may carry on `vq`: a chain longer than the ring (no
 * indirect tables) would never be taken, and the report or hint would be
 * retried for ever. */
static size_t max_blocks(const struct vq *vq)
{
	size_t n = vq->indirect ? vq->max_indirect : vq->size;
	return n < BALLOON_MAX_REPORT_RUNS ? n : BALLOON_MAX_REPORT_RUNS;
}

/* ---------------------------------------------------------------- statistics */

static void fill_stats(struct balloon *b)
{
	const struct pfa_stats *s = &b->pfa->st;
	uint64_t free_b = s->free << PAGE_SHIFT;
	uint64_t vals[BALLOON_STATS_TAGS] = {
		0, 0, 0, 0,                                    /* swap in/out, major/minor faults: no paging */
		free_b,                                        /* MEMFREE */
		(s->managed - s->ballooned) << PAGE_SHIFT,     /* MEMTOT: what the guest has, balloon excluded */
		free_b,                                        /* AVAIL: nothing reclaimable beyond free */
		0,                                             /* CACHES: blimp has no page cache */
		s->huge_allocs, s->huge_failures,              /* HTLB_PGALLOC, HTLB_PGFAIL */
	};
	for (uint16_t t = 0; t < BALLOON_STATS_TAGS; t++) {
		b->stats[t].tag = t;
		b->stats[t].val = vals[t];
	}
}

/* Refill the one stats buffer and give it to the device (not while it has it). */
void balloon_post_stats(struct balloon *b)
{
	if (b->stats_posted)
		return;
	fill_stats(b);
	struct vq_seg seg = { virt_to_phys(b->stats), BALLOON_STATS_TAGS * sizeof(struct balloon_stat) };
	int rc = vq_add(b->vq[BALLOON_Q_STATS], &seg, 1, NULL, 0, b->stats);
	if (rc == -EIO) {
		balloon_queue_broken(b, BALLOON_Q_STATS);
		return;
	}
	if (rc < 0) {
		balloon_say(b, "balloon: the stats queue has no room (%d)", rc);
		return;
	}
	b->stats_posted = true;
	b->ops->notify(b->ctx, b->qidx[BALLOON_Q_STATS]);
}

void balloon_stats_ready(struct balloon *b)
{
	void *tok;
	uint32_t len;
	int rc;
	unsigned asked = 0;
	while ((rc = vq_get_used(b->vq[BALLOON_Q_STATS], &tok, &len)) == 1) {
		if (tok != b->stats || !b->stats_posted) {
			balloon_refuse(b, "completion", "the stats queue returned token %p, not the stats buffer "
				       "it holds; ignored", tok);
			continue;
		}
		b->stats_posted = false;
		asked++;
	}
	if (rc < 0)
		balloon_queue_broken(b, BALLOON_Q_STATS);
	if (asked) {
		/* The host wants fresh figures: answer once, now. A device that
		 * returns the buffer at once gets it back at its next interrupt. */
		b->stats_requests += asked;
		balloon_post_stats(b);
	}
}

/* ---------------------------------------------------------------- free page reporting */

void balloon_free_block_formed(void *ctx)
{
	struct balloon *b = ctx;
	if (b->has_report && b->started && !b->report_busy && !b->timer_armed[BALLOON_T_REPORT])
		balloon_arm(b, BALLOON_T_REPORT, b->p.report_delay_ms * 1000000);
}

void balloon_report_fired(struct balloon *b)
{
	struct vq *vq = b->vq[BALLOON_Q_REPORT];
	if (!b->has_report || b->report_busy || vq->broken ||
	    (b->ops->device_failed && b->ops->device_failed(b->ctx)))
		return;
	b->report_n = pfa_report_take(b->pfa, PFA_HUGE_ORDER, b->report_runs, max_blocks(vq));
	if (b->report_n == 0)
		return;
	struct vq_seg segs[BALLOON_MAX_REPORT_RUNS];
	for (size_t i = 0; i < b->report_n; i++)
		segs[i] = (struct vq_seg){ b->report_runs[i].pfn << PAGE_SHIFT,
					   (uint32_t)(PAGE_SIZE << b->report_runs[i].order) };
	int rc = vq_add(vq, NULL, 0, segs, (unsigned)b->report_n, b->report_runs);
	if (rc < 0) {
		for (size_t i = 0; i < b->report_n; i++)
			pfa_report_done(b->pfa, b->report_runs[i].pfn, b->report_runs[i].order, false);
		b->report_n = 0;
		if (rc == -EIO)
			balloon_queue_broken(b, BALLOON_Q_REPORT);
		return;
	}
	b->report_busy = true;
	b->ops->notify(b->ctx, b->qidx[BALLOON_Q_REPORT]);
}

void balloon_report_ready(struct balloon *b)
{
	void *tok;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(b->vq[BALLOON_Q_REPORT], &tok, &len)) == 1) {
		if (tok != b->report_runs || !b->report_busy) {
			balloon_refuse(b, "completion", "the report queue returned token %p, not the report in "
				       "flight; ignored", tok);
			continue;
		}
		uint64_t pages = 0;
		for (size_t i = 0; i < b->report_n; i++) {
			pfa_report_done(b->pfa, b->report_runs[i].pfn, b->report_runs[i].order, true);
			pages += 1ULL << b->report_runs[i].order;
		}
		b->reports++;
		b->reported_pages += pages;
		b->report_busy = false;
		balloon_event(b, "balloon_report", "\"blocks\":%zu,\"pages\":%lu,\"reported_total\":%lu",
			      b->report_n, (unsigned long)pages, (unsigned long)b->reported_pages);
		b->report_n = 0;
		balloon_arm(b, BALLOON_T_REPORT, 0); /* more may be waiting: next pass now */
	}
	if (rc < 0 && !b->broken_said[BALLOON_Q_REPORT]) {
		balloon_queue_broken(b, BALLOON_Q_REPORT);
		if (b->report_busy)
			balloon_say(b, "balloon: %zu reported blocks stay isolated with the broken queue",
				    b->report_n);
	}
}

/* ---------------------------------------------------------------- free page hints */

/* Blocks back to the allocator, once the device holds none of them. */
static void hint_release(struct balloon *b)
{
	if (b->hint_out) {
		b->hint_release_pending = true;
		return;
	}
	for (size_t i = 0; i < b->hint_n; i++)
		pfa_free_block(b->pfa, b->hint_blocks[i].pfn, b->hint_blocks[i].order, __func__);
	b->hint_n = b->hint_posted = 0;
	b->hint_release_pending = false;
	if (b->hint_cmd_id == BALLOON_HINT_CMD_ID_DONE)
		balloon_event(b, "balloon_hint_done", NULL);
}

/* The id goes in its own buffer slot: [0] the round's id, [1] STOP, so
 * sending STOP never rewrites an id the device may not have read yet. */
static int hint_send_id(struct balloon *b, unsigned slot, uint32_t id)
{
	b->hint_id_buf[slot] = id;
	struct vq_seg seg = { virt_to_phys(&b->hint_id_buf[slot]), 4 };
	int rc = vq_add(b->vq[BALLOON_Q_HINT], &seg, 1, NULL, 0, &b->hint_id_buf[slot]);
	if (rc == -EIO)
		balloon_queue_broken(b, BALLOON_Q_HINT);
	if (rc == 0) {
		b->hint_out++;
		b->ops->notify(b->ctx, b->qidx[BALLOON_Q_HINT]);
	}
	return rc;
}

static bool hint_token(const struct balloon *b, void *tok)
{
	if (tok == &b->hint_id_buf[0] || tok == &b->hint_id_buf[1])
		return true;
	for (size_t i = 0; i < b->hint_posted; i++)
		if (tok == &b->hint_blocks[i])
			return true;
	return false;
}

static void hint_reap(struct balloon *b)
{
	void *tok;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(b->vq[BALLOON_Q_HINT], &tok, &len)) == 1) {
		if (!b->hint_out || !hint_token(b, tok)) {
			balloon_refuse(b, "completion", "the hint queue returned token %p, not a hint buffer in "
				       "flight; ignored", tok);
			continue;
		}
		b->hint_out--;
	}
	if (rc < 0 && !b->broken_said[BALLOON_Q_HINT]) {
		balloon_queue_broken(b, BALLOON_Q_HINT);
		balloon_say(b, "balloon: %zu hint blocks stay allocated with the broken queue", b->hint_n);
	}
}

/* A new command id: hold free 2 MiB blocks and start sending them. */
static void hint_start_round(struct balloon *b)
{
	b->hint_round_pending = false;
	hint_release(b); /* anything held from an older round goes back first */
	struct pfa *a = b->pfa;
	while (b->hint_n < BALLOON_MAX_HINT_BLOCKS && a->st.free > a->reserve_floor + 512) {
		int64_t pfn = pfa_alloc_block_flags(a, PFA_HUGE_ORDER, PFA_NO_OOM);
		if (pfn < 0)
			break;
		b->hint_blocks[b->hint_n++] = (struct pfa_run){ (uint64_t)pfn, PFA_HUGE_ORDER };
	}
	if (hint_send_id(b, 0, b->hint_cmd_id) < 0) {
		hint_release(b);
		return;
	}
	b->hint_sent_id = b->hint_cmd_id;
	b->hint_running = true;
}

/*
 * Reap, finish what waited for the device to return everything (a release,
 * a new round), then post as many held blocks as the queue takes, then STOP.
 * The hint queue runs with its interrupts off and is polled on a timer: the
 * device works on it in an iothread, and fewer interrupts from there is
 * better under TCG (where QEMU 7.2 aborts on hints anyway: docs/findings.md).
 */
void balloon_hint_pump(struct balloon *b)
{
	struct vq *vq = b->vq[BALLOON_Q_HINT];
	if (!b->has_hint)
		return;
	hint_reap(b);
	if (b->hint_out == 0 && b->hint_release_pending)
		hint_release(b);
	if (b->hint_out == 0 && b->hint_round_pending)
		hint_start_round(b);
	while (b->hint_running && b->hint_posted < b->hint_n) {
		size_t n = b->hint_n - b->hint_posted;
		if (n > max_blocks(vq))
			n = max_blocks(vq);
		struct vq_seg segs[BALLOON_MAX_REPORT_RUNS];
		for (size_t i = 0; i < n; i++) {
			struct pfa_run *r = &b->hint_blocks[b->hint_posted + i];
			segs[i] = (struct vq_seg){ r->pfn << PAGE_SHIFT, (uint32_t)(PAGE_SIZE << r->order) };
		}
		int rc = vq_add(vq, NULL, 0, segs, (unsigned)n, &b->hint_blocks[b->hint_posted]);
		if (rc == -EIO)
			balloon_queue_broken(b, BALLOON_Q_HINT);
		if (rc < 0)
			break; /* full: the timer pumps again */
		b->hint_posted += n;
		b->hint_out++;
		b->ops->notify(b->ctx, b->qidx[BALLOON_Q_HINT]);
	}
	if (b->hint_running && b->hint_posted == b->hint_n &&
	    hint_send_id(b, 1, BALLOON_HINT_CMD_ID_STOP) == 0) {
		b->hint_running = false;
		uint64_t pages = 0;
		for (size_t i = 0; i < b->hint_n; i++)
			pages += 1ULL << b->hint_blocks[i].order;
		b->hints++;
		b->hinted_pages += pages;
		balloon_event(b, "balloon_hint", "\"cmd_id\":%u,\"blocks\":%zu,\"pages\":%lu", b->hint_sent_id,
			      b->hint_n, (unsigned long)pages);
	}
	bool waiting = b->hint_running || (b->hint_out && (b->hint_release_pending || b->hint_round_pending));
	if (waiting && !vq->broken && !b->timer_armed[BALLOON_T_HINT])
		balloon_arm(b, BALLOON_T_HINT, 10 * 1000 * 1000);
}

/* The host's command id (configuration): STOP, DONE, or a new round. */
void balloon_hint_command(struct balloon *b, uint32_t id)
{
	if (id == b->hint_cmd_id)
		return;
	b->hint_cmd_id = id;
	b->hint_running = false;
	b->hint_round_pending = false;
	if (id == BALLOON_HINT_CMD_ID_STOP)
		return; /* keep what is held until DONE */
	if (id == BALLOON_HINT_CMD_ID_DONE)
		hint_release(b); /* migration is over: ordinary free memory again */
	else
		b->hint_round_pending = true;
	balloon_hint_pump(b);
}
