/*
 * balloon_check: the balloon's invariants against the allocator's (see
 * balloon_core.h), as pfa_check is the allocator's. It recomputes the
 * figures from the run list, the batches and the frames' states and holds
 * the counters against them. Called by the `balloon` shell command, the
 * unit tests and the fuzz harness after every step.
 */
#include <errno.h>
#include <stdio.h>
#include "balloon_core.h"

#define FAIL(...) do { snprintf(why, why_len, __VA_ARGS__); return -EFAULT; } while (0)

static int check_run(const struct balloon *b, const struct pfa_run *r, const char *where, char *why,
		     size_t why_len)
{
	if (r->order > PFA_MAX_ORDER || (r->pfn & ((1ULL << r->order) - 1)))
		FAIL("%s: run %#lx order %u is not a block", where, (unsigned long)r->pfn, r->order);
	for (uint64_t f = r->pfn; f < r->pfn + (1ULL << r->order); f++)
		if (pfa_frame_state(b->pfa, f) != PFA_BALLOONED)
			FAIL("%s: frame %#lx of run %#lx order %u is in state %d, not ballooned", where,
			     (unsigned long)f, (unsigned long)r->pfn, r->order, (int)pfa_frame_state(b->pfa, f));
	return 0;
}

static int check_reports(const struct balloon *b, char *why, size_t why_len)
{
	uint64_t isolated = 0;
	if (b->report_busy != (b->report_n > 0))
		FAIL("report: busy %d with %zu blocks", b->report_busy, b->report_n);
	for (size_t i = 0; i < b->report_n; i++) {
		const struct pfa_run *r = &b->report_runs[i];
		for (uint64_t f = r->pfn; f < r->pfn + (1ULL << r->order); f++)
			if (pfa_frame_state(b->pfa, f) != PFA_ISOLATED)
				FAIL("report: frame %#lx of block %#lx is in state %d, not isolated", (unsigned long)f,
				     (unsigned long)r->pfn, (int)pfa_frame_state(b->pfa, f));
		isolated += 1ULL << r->order;
	}
	if (b->pfa->st.isolated != isolated)
		FAIL("report: the allocator has %lu frames isolated, the report in flight %lu",
		     (unsigned long)b->pfa->st.isolated, (unsigned long)isolated);
	if (b->hint_posted > b->hint_n)
		FAIL("hint: %zu blocks posted of %zu held", b->hint_posted, b->hint_n);
	for (size_t i = 0; i < b->hint_n; i++) {
		const struct pfa_run *r = &b->hint_blocks[i];
		for (uint64_t f = r->pfn; f < r->pfn + (1ULL << r->order); f++)
			if (pfa_frame_state(b->pfa, f) != PFA_USED)
				FAIL("hint: frame %#lx of block %#lx is in state %d, not allocated", (unsigned long)f,
				     (unsigned long)r->pfn, (int)pfa_frame_state(b->pfa, f));
	}
	if (b->has_hint && b->vq[BALLOON_Q_HINT] && b->hint_out > b->vq[BALLOON_Q_HINT]->in_flight)
		FAIL("hint: %u buffers out, the queue has %u in flight", b->hint_out,
		     b->vq[BALLOON_Q_HINT]->in_flight);
	if (b->has_stats && b->vq[BALLOON_Q_STATS] && b->stats_posted && !b->vq[BALLOON_Q_STATS]->in_flight)
		FAIL("stats: the buffer is posted but the queue has nothing in flight");
	return 0;
}

int balloon_check(const struct balloon *b, char *why, size_t why_len)
{
	uint64_t listed = 0, inflating = 0, deflating = 0, remapping = 0;
	size_t runs_in = 0;
	for (size_t i = 0; i < b->n_runs; i++) {
		if (check_run(b, &b->runs[i], "run list", why, why_len) < 0)
			return -EFAULT;
		listed += 1ULL << b->runs[i].order;
	}
	for (uint32_t i = 0; i < b->p.inflight; i++) {
		const struct balloon_batch *bt = &b->batch[i];
		if (!bt->busy)
			continue;
		uint64_t pages = 0;
		for (size_t j = 0; j < bt->n_runs; j++) {
			if (check_run(b, &bt->runs[j], bt->inflate ? "inflate batch" : "deflate batch", why,
				      why_len) < 0)
				return -EFAULT;
			for (uint64_t p = 0; p < (1ULL << bt->runs[j].order); p++, pages++)
				if (pages >= bt->n || bt->pfns[pages] != bt->runs[j].pfn + p)
					FAIL("batch %u: pfns[%lu] does not match its runs", i, (unsigned long)pages);
		}
		if (pages != bt->n)
			FAIL("batch %u: %u pfns for runs of %lu pages", i, bt->n, (unsigned long)pages);
		if (bt->remap && bt->inflate)
			FAIL("batch %u: an inflate batch waiting to be mapped", i);
		*(bt->remap ? &remapping : bt->inflate ? &inflating : &deflating) += bt->n;
		runs_in += bt->inflate ? bt->n_runs : 0;
	}
	if (inflating != b->in_flight_in || deflating != b->in_flight_out)
		FAIL("in flight: counted %u in, %u out; batches hold %lu in, %lu out", b->in_flight_in,
		     b->in_flight_out, (unsigned long)inflating, (unsigned long)deflating);
	if (listed + deflating != b->held)
		FAIL("held %u, but the run list has %lu pages and deflate batches %lu", b->held,
		     (unsigned long)listed, (unsigned long)deflating);
	if (remapping != b->remapping)
		FAIL("remapping: counted %u, batches hold %lu", b->remapping, (unsigned long)remapping);
	if (b->pfa->st.ballooned != (uint64_t)b->held + b->in_flight_in + b->remapping)
		FAIL("the allocator has %lu frames ballooned, the balloon %u held + %u on their way in + %u "
		     "waiting to be mapped", (unsigned long)b->pfa->st.ballooned, b->held, b->in_flight_in,
		     b->remapping);
	if (b->cap_runs < b->n_runs + runs_in)
		FAIL("room for %zu runs: %zu held and %zu on their way in", b->cap_runs, b->n_runs, runs_in);
	if (b->target > b->pfa->pfn_limit)
		FAIL("target %u beyond the guest's %lu frames", b->target, (unsigned long)b->pfa->pfn_limit);
	return check_reports(b, why, why_len);
}
