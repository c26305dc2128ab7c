/*
 * balloon_stats: memory statistics for the host (virtio 1.2, 5.5.6.3).
 * Part of the balloon core (balloon_internal.h): no kernel calls, compiled
 * into the kernel, the unit tests and the fuzz harnesses.
 *
 * One buffer, on the device's side until it wants fresh figures; its return
 * is the request, and the answer is the buffer posted again, refilled (once
 * per batch of returns, however many came).
 */
#include <errno.h>
#include "balloon_internal.h"
#include "kernel/addr.h"

static void fill_stats(struct balloon *b)
{
	const struct pfa_stats *s = &b->pfa->st;
	uint64_t free_b = s->free << PAGE_SHIFT;
	struct balloon_vm_counters c = { 0 };
	if (b->ops->vm_counters)
		b->ops->vm_counters(b->ctx, &c);
	uint64_t vals[BALLOON_STATS_TAGS] = {
		c.swap_in_bytes, c.swap_out_bytes,             /* SWAP_IN, SWAP_OUT */
		c.major_faults, c.minor_faults,                /* MAJFLT, MINFLT */
		free_b,                                        /* MEMFREE */
		(s->managed - s->ballooned) << PAGE_SHIFT,     /* MEMTOT: what the guest has, balloon excluded */
		c.has_avail ? c.avail_bytes : free_b,          /* AVAIL: what goes without hurting a working set */
		c.cache_bytes,                                 /* CACHES: the page cache */
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

