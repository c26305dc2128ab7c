/*
 * balloon_core: inflate, deflate, deflate-on-OOM and the target (see
 * balloon_core.h; statistics, reporting and hints are in balloon_stats.c,
 * balloon_reporting.c and balloon_hint.c, sharing balloon_internal.h).
 *
 * The path of an inflate, in this file:
 *   balloon_config_changed (num_pages, checked) -> ops->queue_work ->
 *   balloon_step, one batch at a time: start_inflate (pfa_balloon_take,
 *   whole 2 MiB blocks first; room in the run list reserved; ops->unmap) ->
 *   post (PFNs on the inflate queue, ops->notify) -> reap -> inflate_done
 *   (runs recorded, held grows) -> `actual` written -> next batch until
 *   held == target.
 * Deflate is the reverse: start_deflate moves runs off the list (splitting
 * one when only part must go), and frames are mapped and freed only in
 * deflate_done, after the host acknowledged them (MUST_TELL_HOST always holds).
 *
 * Accounting: held = frames in the run list + frames in deflate batches in
 * flight; in_flight_in = frames in inflate batches in flight; remapping =
 * frames the host let go that wait for a page table to be mapped again
 * (rare: see finish_deflate). Everything the allocator counts as BALLOONED
 * is one of those (balloon_check).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon_internal.h"
#include "kernel/addr.h"
#include "kernel/le.h"

#ifdef BLIMP_KERNEL
#include "kernel/panic.h"
#define balloon_bug(...) panic(__VA_ARGS__)
#else
#define balloon_bug(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), abort())
#endif

/* Runs a deflate can add by splitting: one per order, at most. */
#define SPLIT_ROOM (PFA_MAX_ORDER + 1)

static const char *const queue_names[BALLOON_NQ] = { "inflate", "deflate", "stats", "hint", "report" };

/* ---------------------------------------------------------------- messages */

void balloon_say(struct balloon *b, const char *fmt, ...)
{
	static char line[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (b->ops->log)
		b->ops->log(b->ctx, line);
}

void balloon_event(struct balloon *b, const char *name, const char *fmt, ...)
{
	static char fields[640];
	if (!b->ops->event)
		return;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fields, sizeof(fields), fmt, ap);
		va_end(ap);
	}
	b->ops->event(b->ctx, name, fmt ? fields : NULL);
}

void balloon_refuse(struct balloon *b, const char *what, const char *fmt, ...)
{
	static char detail[240];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	for (char *c = detail; *c; c++)
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
			*c = '\'';  /* the detail goes into a JSON string as it is */
	b->refusals++;
	balloon_say(b, "balloon: refused %s: %s", what, detail);
	balloon_event(b, "balloon_refused", "\"what\":\"%s\",\"detail\":\"%s\"", what, detail);
}

/* Said once per queue: a broken queue stays broken (virtqueue.h). */
void balloon_queue_broken(struct balloon *b, enum balloon_queue q)
{
	if (b->broken_said[q])
		return;
	b->broken_said[q] = true;
	balloon_refuse(b, "queue", "the %s queue (device queue %u) broke: %s; its buffers stay with the "
		       "device and their frames stay accounted for", queue_names[q], b->qidx[q],
		       vq_broken_reason(b->vq[q]));
}

void balloon_arm(struct balloon *b, enum balloon_timer t, uint64_t delay_ns)
{
	b->timer_armed[t] = true;
	b->ops->timer_arm(b->ctx, t, delay_ns);
}

static void disarm(struct balloon *b, enum balloon_timer t)
{
	b->timer_armed[t] = false;
	b->ops->timer_cancel(b->ctx, t);
}

static bool device_failed(struct balloon *b)
{
	return b->ops->device_failed && b->ops->device_failed(b->ctx);
}

static uint64_t now_ms(struct balloon *b)
{
	return b->ops->now_ns(b->ctx) / 1000000;
}

static void write_actual(struct balloon *b)
{
	if (b->ops->config_write32(b->ctx, BALLOON_CFG_ACTUAL, b->held) < 0)
		balloon_say(b, "balloon: cannot write actual = %u", b->held);
}

/* ---------------------------------------------------------------- the run list */

/* Room for `extra` more runs; 0 or -ENOMEM. */
static int reserve_runs(struct balloon *b, size_t extra)
{
	if (b->n_runs + extra <= b->cap_runs)
		return 0;
	size_t cap = b->cap_runs ? b->cap_runs : 256;
	while (cap < b->n_runs + extra)
		cap *= 2;
	struct pfa_run *n = realloc(b->runs, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	b->runs = n;
	b->cap_runs = cap;
	return 0;
}

/* Room was reserved before the frames left the list or went to the host. */
static void push_run(struct balloon *b, struct pfa_run r)
{
	if (b->n_runs == b->cap_runs)
		balloon_bug("balloon push_run: no room for run %#lx order %u (%zu runs)", (unsigned long)r.pfn,
			    r.order, b->n_runs);
	b->runs[b->n_runs++] = r;
}

/* Runs in inflate batches in flight: each will need a place in the list. */
static size_t runs_coming_in(const struct balloon *b)
{
	size_t n = 0;
	for (uint32_t i = 0; i < b->p.inflight; i++)
		if (b->batch[i].busy && b->batch[i].inflate)
			n += b->batch[i].n_runs;
	return n;
}

/* Back to the allocator, mapped first unless it still is. `host_saw`: the
 * host had the run ballooned and let it go (so it holds nothing for it).
 * 0, or the map's error: then nothing changed and the run is still ours,
 * ballooned and unmapped — a frame is never freed unmapped. */
static int give_back(struct balloon *b, const struct pfa_run *r, bool mapped, bool host_saw)
{
	if (!mapped) {
		int rc = b->ops->map(b->ctx, r->pfn, r->order);
		if (rc < 0)
			return rc;
	}
	int rc = host_saw ? pfa_balloon_return(b->pfa, r->pfn, r->order, __func__)
			  : pfa_balloon_cancel(b->pfa, r->pfn, r->order, __func__);
	if (rc < 0)
		balloon_bug("balloon give_back: run %#lx order %u not ballooned (%d)", (unsigned long)r->pfn,
			    r->order, rc);
	return 0;
}

/* Undo an unmap made in this same step. The page tables it needed are still
 * there (a split block is only made whole again when all of it is mapped),
 * so this cannot fail; if it does, paging broke its contract. */
static void cancel_run(struct balloon *b, const struct pfa_run *r)
{
	int rc = give_back(b, r, false, false);
	if (rc < 0)
		balloon_bug("balloon cancel_run: run %#lx order %u unmapped in this step cannot be mapped "
			    "again (%d)", (unsigned long)r->pfn, r->order, rc);
}

/* ---------------------------------------------------------------- batches */

/*
 * The batch buffers (a DMA array of frame numbers and its runs, 640 KiB a
 * batch at the default size) are had by the first step, not at boot:
 * zeroing them and mapping the heap behind them was a millisecond of the
 * boot under TCG. The first step runs as soon as the kernel is ready (the
 * configuration read at start queues it), while memory is as free as it
 * gets; an inflate without them stalls and tries again. A deflate or the
 * OOM path needs frames held, so an inflate came first and the buffers are
 * there. 0, or -ENOMEM with what was had kept for next time.
 */
static int batch_buffers(struct balloon *b)
{
	for (uint32_t i = 0; i < b->p.inflight; i++) {
		struct balloon_batch *bt = &b->batch[i];
		if (!bt->pfns)
			bt->pfns = b->ops->dma_alloc(b->ctx, b->p.batch_pages * 4);
		if (!bt->runs)
			bt->runs = malloc(b->p.batch_pages * sizeof(struct pfa_run));
		if (!bt->pfns || !bt->runs)
			return -ENOMEM;
	}
	return 0;
}

static struct balloon_batch *free_batch(struct balloon *b)
{
	for (uint32_t i = 0; i < b->p.inflight; i++)
		if (!b->batch[i].busy)
			return &b->batch[i];
	return NULL;
}

static void fill_pfns(struct balloon_batch *bt)
{
	bt->n = 0;
	for (size_t i = 0; i < bt->n_runs; i++)
		for (uint64_t p = 0; p < (1ULL << bt->runs[i].order); p++)
			bt->pfns[bt->n++] = (uint32_t)(bt->runs[i].pfn + p);
}

/* Take up to `want` pages for an inflate batch: 0, or -ENOMEM when none
 * could be had (or no room to remember them: they go straight back). */
static int start_inflate(struct balloon *b, struct balloon_batch *bt, uint32_t want)
{
	bt->n = 0;
	uint64_t got = pfa_balloon_take(b->pfa, want, bt->runs, b->p.batch_pages, &bt->n_runs);
	if (got == 0)
		return -ENOMEM;
	/* The queues carry 32-bit frame numbers (virtio 1.2, 5.5.6): a frame at
	 * or above 16 TiB cannot be named, so it is not taken. */
	size_t nameable = 0;
	for (size_t i = 0; i < bt->n_runs; i++) {
		const struct pfa_run *r = &bt->runs[i];
		if (r->pfn + (1ULL << r->order) <= b->pfn_limit) {
			bt->runs[nameable++] = *r;
			continue;
		}
		if (!b->unnameable_said) {
			b->unnameable_said = true;
			balloon_refuse(b, "frame", "frame %#lx is beyond the %#lx frames a 32-bit frame number can "
				       "name: memory there is not ballooned", (unsigned long)r->pfn,
				       (unsigned long)b->pfn_limit);
		}
		give_back(b, r, true, false);
	}
	bt->n_runs = nameable;
	if (nameable == 0)
		return -ENOMEM;
	/* Room for these runs when they come back, and for the splits of a later
	 * deflate: the OOM path, which cannot allocate, then rarely has to. */
	if (reserve_runs(b, runs_coming_in(b) + bt->n_runs + SPLIT_ROOM) < 0) {
		for (size_t i = 0; i < bt->n_runs; i++)
			give_back(b, &bt->runs[i], true, false);
		bt->n_runs = 0;
		return -ENOMEM;
	}
	size_t unmapped = 0;
	while (unmapped < bt->n_runs && b->ops->unmap(b->ctx, bt->runs[unmapped].pfn, bt->runs[unmapped].order) == 0)
		unmapped++;
	if (unmapped < bt->n_runs) {
		/* No page table for the split: that run and the rest stay mapped
		 * and go straight back (an unmap that fails changes nothing). */
		balloon_say(b, "balloon: no page table to unmap run %#lx order %u; %zu of %zu runs go back",
			    (unsigned long)bt->runs[unmapped].pfn, bt->runs[unmapped].order, bt->n_runs - unmapped,
			    bt->n_runs);
		for (size_t i = unmapped; i < bt->n_runs; i++)
			give_back(b, &bt->runs[i], true, false);
		bt->n_runs = unmapped;
	}
	/* Unmapping part of a 2 MiB mapping took page tables from free memory,
	 * maybe below the reserve floor: give back runs until the floor holds. */
	while (bt->n_runs > 0 && b->pfa->st.free < b->pfa->reserve_floor)
		cancel_run(b, &bt->runs[--bt->n_runs]);
	if (bt->n_runs == 0)
		return -ENOMEM;
	bt->inflate = true;
	fill_pfns(bt);
	return 0;
}

/* Move up to `want` held pages into a deflate batch. With `exact`, a run is
 * split when only part of it must go (room for SPLIT_ROOM more runs must be
 * reserved); without, only whole runs go, the last one maybe more than asked,
 * none bigger than what is left of the buffer. */
static void start_deflate(struct balloon *b, struct balloon_batch *bt, uint32_t want, bool exact)
{
	uint32_t taken = 0;
	bt->n_runs = 0;
	while (taken < want && b->n_runs > 0 && bt->n_runs < b->p.batch_pages) {
		struct pfa_run *r = &b->runs[b->n_runs - 1];
		if (!exact && taken + (1u << r->order) > b->p.batch_pages)
			break;
		while (exact && (1u << r->order) > want - taken) {
			if (pfa_balloon_split(b->pfa, r->pfn, r->order) < 0)
				balloon_bug("balloon start_deflate: cannot split run %#lx order %u",
					    (unsigned long)r->pfn, r->order);
			/* keep the lower half held, consider the upper half */
			r->order--;
			push_run(b, (struct pfa_run){ r->pfn + (1ULL << r->order), r->order });
			r = &b->runs[b->n_runs - 1];
		}
		bt->runs[bt->n_runs++] = *r;
		taken += 1u << r->order;
		b->n_runs--;
	}
	bt->inflate = false;
	fill_pfns(bt);
}

static int post(struct balloon *b, struct balloon_batch *bt)
{
	enum balloon_queue q = bt->inflate ? BALLOON_Q_INFLATE : BALLOON_Q_DEFLATE;
	struct vq_seg seg = { virt_to_phys(bt->pfns), bt->n * 4 };
	int rc = vq_add(b->vq[q], &seg, 1, NULL, 0, bt);
	if (rc < 0)
		return rc;
	bt->busy = true;
	if (bt->inflate)
		b->in_flight_in += bt->n;
	else
		b->in_flight_out += bt->n;
	b->ops->notify(b->ctx, b->qidx[q]);
	return 0;
}

/* The queue would not take a batch: undo it. The host never saw it, so
 * inflated frames go straight back and deflated runs are held again. */
static void cancel_batch(struct balloon *b, struct balloon_batch *bt, int rc)
{
	enum balloon_queue q = bt->inflate ? BALLOON_Q_INFLATE : BALLOON_Q_DEFLATE;
	for (size_t i = 0; i < bt->n_runs; i++)
		if (bt->inflate)
			cancel_run(b, &bt->runs[i]);
		else
			push_run(b, bt->runs[i]);
	bt->n = 0;
	bt->n_runs = 0;
	if (rc == -EIO)
		balloon_queue_broken(b, q);
	else
		balloon_say(b, "balloon: the %s queue has no room for a batch (%d); later", queue_names[q], rc);
}

static void inflate_done(struct balloon *b, struct balloon_batch *bt)
{
	for (size_t i = 0; i < bt->n_runs; i++)
		push_run(b, bt->runs[i]); /* room reserved in start_inflate */
	b->in_flight_in -= bt->n;
	b->held += bt->n;
	b->pages_in += bt->n;
	b->inflations++;
	bt->busy = false;
}

/* Map and free what the host let go. A run whose mapping needs a page table
 * that cannot be had now stays in the batch (ballooned, unmapped, no longer
 * held) and is tried again on the next step; the batch is free only when
 * all of it is back. Returns true when it is. */
static bool finish_deflate(struct balloon *b, struct balloon_batch *bt)
{
	size_t keep = 0;
	for (size_t i = 0; i < bt->n_runs; i++)
		if (give_back(b, &bt->runs[i], false, true) < 0)
			bt->runs[keep++] = bt->runs[i];
	bt->n_runs = keep;
	fill_pfns(bt);
	bool was = bt->remap;
	bt->remap = keep > 0;
	bt->busy = bt->remap;
	b->remapping = 0;
	for (uint32_t i = 0; i < b->p.inflight; i++)
		if (b->batch[i].remap)
			b->remapping += b->batch[i].n;
	if (!bt->remap)
		return true;
	if (!was) {
		b->map_failures++;
		balloon_say(b, "balloon: no page table to map %u deflated pages again; they wait, unmapped, "
			    "for the next step", bt->n);
	}
	balloon_arm(b, BALLOON_T_RETRY, 10 * 1000000ULL);
	return false;
}

static void deflate_done(struct balloon *b, struct balloon_batch *bt)
{
	b->in_flight_out -= bt->n;
	b->held -= bt->n;
	b->pages_out += bt->n;
	b->deflations++;
	finish_deflate(b, bt);
}

/* Deflated runs still waiting for a mapping: try again. */
static void retry_remaps(struct balloon *b)
{
	for (uint32_t i = 0; i < b->p.inflight; i++)
		if (b->batch[i].busy && b->batch[i].remap)
			finish_deflate(b, &b->batch[i]);
}

/* Is `tok`, returned on queue q, one of our batches in flight there? */
static struct balloon_batch *batch_of(struct balloon *b, void *tok, enum balloon_queue q)
{
	for (uint32_t i = 0; i < b->p.inflight; i++)
		if (tok == &b->batch[i] && b->batch[i].busy && !b->batch[i].remap &&
		    b->batch[i].inflate == (q == BALLOON_Q_INFLATE))
			return &b->batch[i];
	return NULL;
}

/* Collect what the device acknowledged on both queues; returns how many.
 * (The queue itself checks ids, index jumps and lengths: these buffers are
 * device-readable only, so any length but 0 breaks it.) */
static int reap(struct balloon *b)
{
	int got = 0;
	for (enum balloon_queue q = BALLOON_Q_INFLATE; q <= BALLOON_Q_DEFLATE; q++) {
		void *tok;
		uint32_t len;
		int rc;
		while ((rc = vq_get_used(b->vq[q], &tok, &len)) == 1) {
			struct balloon_batch *bt = batch_of(b, tok, q);
			if (!bt) {
				balloon_refuse(b, "completion", "the %s queue returned token %p, not a batch in "
					       "flight there; ignored", queue_names[q], tok);
				continue;
			}
			if (bt->inflate)
				inflate_done(b, bt);
			else
				deflate_done(b, bt);
			got++;
		}
		if (rc < 0)
			balloon_queue_broken(b, q);
	}
	if (got)
		write_actual(b);
	return got;
}

/* ---------------------------------------------------------------- the step */

static void stall(struct balloon *b, uint32_t level, uint32_t target)
{
	const struct pfa *a = b->pfa;
	bool floor = a->st.free <= a->reserve_floor;
	b->alloc_failures++;
	b->stalled = true;
	balloon_say(b, "balloon: holding %u of %u pages: %s; retrying in %lu ms", level, target,
		    floor ? "the reserve floor is reached" : "no free memory", (unsigned long)b->backoff_ms);
	balloon_event(b, "balloon_stalled", "\"held\":%u,\"target\":%u,\"reason\":\"%s\",\"free\":%lu,"
		      "\"reserve_floor\":%lu,\"retry_ms\":%lu", level, target, floor ? "reserve floor" : "no memory",
		      (unsigned long)a->st.free, (unsigned long)a->reserve_floor, (unsigned long)b->backoff_ms);
	balloon_arm(b, BALLOON_T_RETRY, b->backoff_ms * 1000000);
	if (b->backoff_ms < 8000)
		b->backoff_ms *= 2;
}

static uint32_t min_u32(uint32_t x, uint32_t y)
{
	return x < y ? x : y;
}

/*
 * The working-set guard (p.ws_guard): pages the balloon may still take
 * before the guest's free memory, clean cache and pages outside its working
 * sets are used up (ops->working_set: its avail leaves the margin and the
 * reserve floor). Past
 * that, an inflate would take pages the workloads are using: they would
 * fault them back from swap as fast as the balloon took them (thrashing).
 * UINT64_MAX when there is nothing to guard.
 */
static uint64_t ws_room(struct balloon *b, struct balloon_ws *w)
{
	*w = (struct balloon_ws){ 0 };
	if (!b->p.ws_guard || !b->ops->working_set || !b->ops->working_set(b->ctx, w) || !w->ws)
		return UINT64_MAX;
	return w->avail;
}

/* Stopped by the guard: a stall like the reserve floor's, with the figures. */
static void stall_ws(struct balloon *b, uint32_t level, uint32_t target, const struct balloon_ws *w)
{
	const struct pfa *a = b->pfa;
	b->ws_stalls++;
	b->stalled = true;
	balloon_say(b, "balloon: holding %u of %u pages: the rest would take the working set's (%lu pages, "
		    "%lu kept on top); retrying in %lu ms", level, target, (unsigned long)w->ws,
		    (unsigned long)w->margin, (unsigned long)b->backoff_ms);
	balloon_event(b, "balloon_stalled", "\"held\":%u,\"target\":%u,\"reason\":\"working set\",\"free\":%lu,"
		      "\"reserve_floor\":%lu,\"ws\":%lu,\"margin\":%lu,\"avail\":%lu,\"retry_ms\":%lu", level, target,
		      (unsigned long)a->st.free, (unsigned long)a->reserve_floor, (unsigned long)w->ws,
		      (unsigned long)w->margin, (unsigned long)w->avail, (unsigned long)b->backoff_ms);
	balloon_arm(b, BALLOON_T_RETRY, b->backoff_ms * 1000000);
	if (b->backoff_ms < 8000)
		b->backoff_ms *= 2;
}

/* An inflate found no frame above the reserve floor: ask the guest's
 * reclaim to make room for `want` frames (the host wants the memory; the
 * guest chooses what to give up). True if it freed anything. */
static bool reclaim_for_inflate(struct balloon *b, uint32_t want)
{
	if (!b->p.reclaim || !b->ops->reclaim)
		return false;
	const struct pfa *a = b->pfa;
	uint64_t need = want;
	if (a->st.free < a->reserve_floor)
		need += a->reserve_floor - a->st.free;
	uint64_t freed = b->ops->reclaim(b->ctx, need);
	b->reclaim_calls++;
	b->reclaimed += freed;
	return freed > 0;
}

/* One round: reap, then post batches toward the target. Does a bounded
 * amount and asks to run again, so other work (the shell) gets its turn. */
void balloon_step(struct balloon *b)
{
	if (!b->started || b->in_step || device_failed(b))
		return; /* the OOM path is mid-deflate; it queues us again when done */
	uint64_t t0 = b->ops->now_ns(b->ctx);
	b->in_step = true;
	reap(b);
	retry_remaps(b);
	int buffers = batch_buffers(b);
	bool posted = false, cut = false;
	struct balloon_batch *bt;
	while ((bt = free_batch(b)) != NULL) {
		uint32_t level = b->held + b->in_flight_in - b->in_flight_out;
		uint32_t target = b->oom_hold && b->target > level ? level : b->target;
		if (level < target && !b->stalled && !b->vq[BALLOON_Q_INFLATE]->broken) {
			uint32_t want = min_u32(target - level, b->p.batch_pages);
			struct balloon_ws w;
			uint64_t room = ws_room(b, &w);
			if (room == 0) {
				stall_ws(b, level, target, &w);
				break;
			}
			if (room < want)
				want = (uint32_t)room;
			if (buffers < 0) {
				balloon_say(b, "balloon: no memory for its batch buffers; later");
				stall(b, level, target);
				break;
			}
			if (start_inflate(b, bt, want) < 0 &&
			    (!reclaim_for_inflate(b, want) || start_inflate(b, bt, want) < 0)) {
				/* Blocks isolated for a report in flight come back
				 * free with the device's answer, at once where QEMU
				 * answers in the kick (7.2), later where its main
				 * loop does (10.0, ioeventfd): wait for that answer
				 * rather than stop at a floor that is not there. */
				if (b->report_busy) {
					b->step_after_report = true;
					/* and a retry anyway, should the answer never come */
					balloon_arm(b, BALLOON_T_RETRY, b->backoff_ms * 1000000);
					break;
				}
				stall(b, level, target);
				break;
			}
		} else if (level > target && !b->vq[BALLOON_Q_DEFLATE]->broken) {
			if (reserve_runs(b, runs_coming_in(b) + SPLIT_ROOM) < 0) {
				balloon_say(b, "balloon: no memory to track a deflate; later");
				break;
			}
			start_deflate(b, bt, min_u32(level - target, b->p.batch_pages), true);
			if (bt->n == 0)
				break; /* the rest is still on its way in */
		} else {
			break;
		}
		int rc = post(b, bt);
		if (rc < 0) {
			cancel_batch(b, bt, rc);
			break;
		}
		posted = true;
		/* Memory came: the next stall is a new one, retried soon. The
		 * wait doubles only while retries find nothing; without this,
		 * an inflate that workloads slow (they fault back what reclaim
		 * freed, so it stalls now and then but moves) came to wait 8 s
		 * between chunks of 4 MiB. */
		if (bt->inflate)
			b->backoff_ms = 250;
		reap(b); /* QEMU under TCG answers during the notify */
		/* Answered at once, a batch is always free again, and this
		 * loop would run a 200 GiB inflate (15 s) to its end while a
		 * new target, the shell and the timers waited. A step takes
		 * its time slice, then queues itself behind what came since. */
		if (b->ops->now_ns(b->ctx) - t0 >= BALLOON_STEP_SLICE_NS) {
			cut = true;
			break;
		}
	}
	b->in_step = false;
	b->step_ns += b->ops->now_ns(b->ctx) - t0;
	if (posted) {
		/* One line a second while a long step goes on, one at its end. */
		if (!cut || now_ms(b) - b->progress_ms >= 1000) {
			b->progress_ms = now_ms(b);
			balloon_event(b, "balloon_progress", "\"held\":%u,\"target\":%u,\"free\":%lu", b->held,
				      b->target, (unsigned long)b->pfa->st.free);
		}
		b->ops->queue_work(b->ctx); /* more next round, after other work had a turn */
	} else if (b->held == b->target && !b->done_reported && !b->in_flight_in && !b->in_flight_out) {
		b->done_reported = true;
		b->backoff_ms = 250;
		balloon_event(b, "balloon_done", "\"held\":%u,\"target\":%u,\"ms\":%lu", b->held, b->target,
			      (unsigned long)(now_ms(b) - b->target_since_ms));
	}
}

/* ---------------------------------------------------------------- the host */

void balloon_config_changed(struct balloon *b, const void *cfg, size_t len)
{
	const uint8_t *c = cfg;
	if (len < 8) {
		balloon_refuse(b, "config", "%zu bytes of configuration; num_pages and actual take 8", len);
		return;
	}
	uint32_t num_pages = le32(c + BALLOON_CFG_NUM_PAGES);
	uint32_t target = num_pages;
	/* No honest host asks for more than the guest has: QEMU's num_pages is
	 * at most its RAM, which the memory map covers. */
	if (num_pages > b->pfa->pfn_limit) {
		target = (uint32_t)b->pfa->pfn_limit;
		if (num_pages != b->num_pages)
			balloon_refuse(b, "num_pages", "the device asks for %u pages, but the guest's memory ends "
				       "at frame %u: aiming for that", num_pages, target);
	}
	b->num_pages = num_pages;
	if (target != b->target) {
		b->oom_hold = false; /* a new target from the host: follow it again */
		b->stalled = false;
		b->backoff_ms = 250;
		if (b->timer_armed[BALLOON_T_RETRY])
			disarm(b, BALLOON_T_RETRY);
	}
	b->target = target;
	b->target_since_ms = now_ms(b);
	if (b->has_hint) {
		if (len >= 12)
			balloon_hint_command(b, le32(c + BALLOON_CFG_HINT_CMD_ID));
		else
			balloon_refuse(b, "config", "%zu bytes of configuration: no hint command id", len);
	}
	b->done_reported = false;
	b->ops->queue_work(b->ctx);
}

void balloon_queue_ready(struct balloon *b)
{
	if (!b->started)
		return;
	b->ops->queue_work(b->ctx); /* inflate/deflate completions */
	if (b->has_stats)
		balloon_stats_ready(b);
	if (b->has_report)
		balloon_report_ready(b);
}

void balloon_timer_fired(struct balloon *b, enum balloon_timer t)
{
	b->timer_armed[t] = false;
	if (t == BALLOON_T_RETRY) {
		b->stalled = false;
		b->ops->queue_work(b->ctx);
	} else if (t == BALLOON_T_REPORT) {
		balloon_report_fired(b);
	} else if (t == BALLOON_T_HINT) {
		balloon_hint_pump(b);
	}
}

/* ---------------------------------------------------------------- OOM */

uint64_t balloon_oom(void *ctx, uint64_t wanted)
{
	struct balloon *b = ctx;
	if (!b->has_oom || !b->started || b->in_step || b->held == 0 || device_failed(b))
		return 0;
	b->in_step = true;
	reap(b);
	retry_remaps(b);
	uint64_t pages = wanted < 256 ? 256 : wanted;
	uint64_t out0 = b->pages_out;
	struct balloon_batch *bt;
	while (b->pages_out - out0 < pages && b->held > b->in_flight_out && (bt = free_batch(b)) != NULL &&
	       !b->vq[BALLOON_Q_DEFLATE]->broken) {
		uint64_t left = pages - (b->pages_out - out0);
		/* Exact when there is room to track the split halves; when the
		 * heap cannot grow (it may be what is failing), whole runs. */
		bool exact = reserve_runs(b, runs_coming_in(b) + SPLIT_ROOM) == 0;
		start_deflate(b, bt, left < b->p.batch_pages ? (uint32_t)left : b->p.batch_pages, exact);
		if (bt->n == 0)
			break;
		int rc = post(b, bt);
		if (rc < 0) {
			cancel_batch(b, bt, rc);
			break;
		}
		/* Poll, bounded: running other work here could re-enter whatever
		 * is allocating (the shell, the heap). */
		uint64_t start = now_ms(b);
		while (b->in_flight_out && now_ms(b) - start < 1000) {
			reap(b);
			if (b->in_flight_out)
				b->ops->relax(b->ctx);
		}
		if (b->in_flight_out)
			break;
	}
	uint64_t freed = b->pages_out - out0; /* acknowledged and back in the allocator */
	b->in_step = false;
	b->ops->queue_work(b->ctx);
	b->oom_hold = true; /* no re-inflating until the host sets a new target */
	b->oom_deflates++;
	b->oom_pages += freed;
	balloon_event(b, "balloon_oom", "\"wanted\":%lu,\"deflated\":%lu,\"held\":%u", (unsigned long)wanted,
		      (unsigned long)freed, b->held);
	return freed;
}

/* ---------------------------------------------------------------- setup */

uint64_t balloon_wanted_features(const struct balloon_params *p)
{
	uint64_t f = 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST;
	if (p->stats)
		f |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (p->reporting)
		f |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	if (p->oom)
		f |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (p->hint)
		f |= 1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT;
	/* Only when freed frames really hold a poison value: the host then
	 * knows not to discard reported pages (their content matters). */
	if (p->poison >= 0)
		f |= 1ULL << VIRTIO_BALLOON_F_PAGE_POISON;
	return f;
}

int balloon_core_init(struct balloon *b, struct pfa *pfa, const struct balloon_ops *ops, void *ctx,
		      const struct balloon_params *p, uint64_t features)
{
	memset(b, 0, sizeof(*b));
	b->pfa = pfa;
	b->ops = ops;
	b->ctx = ctx;
	b->p = *p;
	if (b->p.batch_pages < 1 || b->p.batch_pages > BALLOON_MAX_BATCH)
		b->p.batch_pages = BALLOON_DEFAULT_BATCH;
	if (b->p.inflight < 1 || b->p.inflight > BALLOON_MAX_INFLIGHT)
		b->p.inflight = 2;
	b->backoff_ms = 250;
	b->pfn_limit = BALLOON_PFN_LIMIT;
	uint64_t wanted = balloon_wanted_features(&b->p);
	uint64_t device_bits = features & ((1ULL << 24) - 1); /* 0-23: device-specific (6) */
	if (device_bits & ~wanted)
		balloon_refuse(b, "features", "negotiated %#lx, beyond the %#lx asked for: the extra ones are "
			       "not used", (unsigned long)device_bits, (unsigned long)wanted);
	b->features = features & (wanted | ~((1ULL << 24) - 1));
	b->has_stats = b->features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ);
	b->has_report = b->features & (1ULL << VIRTIO_BALLOON_F_REPORTING);
	b->has_oom = b->features & (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM);
	b->has_hint = b->features & (1ULL << VIRTIO_BALLOON_F_FREE_PAGE_HINT);
	if (b->features & (1ULL << VIRTIO_BALLOON_F_PAGE_POISON)) {
		/* The value of the byte in all four bytes of the le32. */
		uint32_t v = (uint32_t)(b->p.poison & 0xff) * 0x01010101u;
		if (ops->config_write32(ctx, BALLOON_CFG_POISON_VAL, v) < 0)
			balloon_say(b, "balloon: cannot write poison_val");
	}
	/* Queues are numbered compactly (5.5.2): absent ones take no number. */
	b->qidx[BALLOON_Q_INFLATE] = b->nq++;
	b->qidx[BALLOON_Q_DEFLATE] = b->nq++;
	if (b->has_stats)
		b->qidx[BALLOON_Q_STATS] = b->nq++;
	if (b->has_hint)
		b->qidx[BALLOON_Q_HINT] = b->nq++;
	if (b->has_report)
		b->qidx[BALLOON_Q_REPORT] = b->nq++;

	/* The batch buffers come with the first step (batch_buffers). */
	if (b->has_stats && !(b->stats = ops->dma_alloc(ctx, BALLOON_STATS_TAGS * sizeof(struct balloon_stat))))
		return -ENOMEM;
	if (b->has_hint) {
		b->hint_id_buf = ops->dma_alloc(ctx, 2 * sizeof(uint32_t));
		b->hint_blocks = malloc(BALLOON_MAX_HINT_BLOCKS * sizeof(struct pfa_run));
		if (!b->hint_id_buf || !b->hint_blocks)
			return -ENOMEM;
	}
	return b->nq;
}

void balloon_core_start(struct balloon *b, struct vq *const *queues)
{
	static const bool always = true;
	const bool *has[BALLOON_NQ] = { &always, &always, &b->has_stats, &b->has_hint, &b->has_report };
	for (int q = 0; q < BALLOON_NQ; q++)
		b->vq[q] = *has[q] ? queues[b->qidx[q]] : NULL;
	b->started = true;
	if (b->has_hint)
		vq_disable_cb(b->vq[BALLOON_Q_HINT]); /* polled: see balloon_hint_pump */
	if (b->has_stats)
		balloon_post_stats(b);
	if (b->has_oom)
		pfa_set_oom_handler(b->pfa, balloon_oom, b);
	if (b->has_report) {
		pfa_set_free_hook(b->pfa, balloon_free_block_formed, b);
		balloon_free_block_formed(b); /* report what is free from the start */
	}
}

void balloon_core_destroy(struct balloon *b)
{
	if (b->pfa && b->pfa->oom_ctx == b)
		pfa_set_oom_handler(b->pfa, NULL, NULL);
	if (b->pfa && b->pfa->free_hook_ctx == b)
		pfa_set_free_hook(b->pfa, NULL, NULL);
	for (int i = 0; i < BALLOON_MAX_INFLIGHT; i++)
		free(b->batch[i].runs);
	free(b->runs);
	free(b->hint_blocks);
	memset(b, 0, sizeof(*b));
}
