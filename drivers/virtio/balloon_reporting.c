/*
 * balloon_reporting: free page reporting (virtio 1.2, 5.5.6.6), on by
 * default. Part of the balloon core (balloon_internal.h): no kernel calls,
 * compiled into the kernel, the unit tests and the fuzz harnesses.
 *
 * Free, unreported 2 MiB blocks are taken off the free lists (ISOLATED) a
 * short delay after one forms, sent as one buffer of device-writable
 * ranges, and put back marked reported when it returns: the host may drop
 * their memory, and the allocator hands them out first to the balloon.
 */
#include <errno.h>
#include "balloon_internal.h"
#include "kernel/addr.h"

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
	b->report_n = pfa_report_take(b->pfa, PFA_HUGE_ORDER, b->report_runs, balloon_max_blocks(vq));
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
		if (b->step_after_report) {
			/* An inflate waited for these blocks (balloon_step). */
			b->step_after_report = false;
			b->ops->queue_work(b->ctx);
		}
	}
	if (rc < 0 && !b->broken_said[BALLOON_Q_REPORT]) {
		balloon_queue_broken(b, BALLOON_Q_REPORT);
		if (b->report_busy)
			balloon_say(b, "balloon: %zu reported blocks stay isolated with the broken queue",
				    b->report_n);
	}
}

