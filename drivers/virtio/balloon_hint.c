/*
 * balloon_hint: free page hinting (virtio 1.2, 5.5.6.7). Off by default
 * (`balloon.hint`: under TCG QEMU aborts on hints over INTx — 7.2, whose
 * balloon has no MSI-X, always; 10.0 works over MSI-X — docs/findings.md),
 * so it sits apart from the default path. Part of the balloon core
 * (balloon_internal.h): no kernel calls, compiled into the kernel, the unit
 * tests and the fuzz harnesses.
 *
 * While the host migrates: on a new command id, free 2 MiB blocks are
 * allocated (held, so nobody writes them), sent with the id before them
 * and STOP after them, and freed on DONE — but only once the device has
 * returned every hint buffer.
 */
#include <errno.h>
#include "balloon_internal.h"
#include "kernel/addr.h"

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
		if (n > balloon_max_blocks(vq))
			n = balloon_max_blocks(vq);
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
