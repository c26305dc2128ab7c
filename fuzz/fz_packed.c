/*
 * fz_packed: the device fuzzer's packed rings (virtio 1.2, 2.8), for
 * fz_exec.c: `padd` writes descriptors with whatever flags, slots and ids
 * the op says, `wait` reads used descriptors back, `pevent` writes the
 * driver event suppression structure. The ring memory is fz_exec.c's.
 * What is in flight (the next slot, the ids and their descriptor counts)
 * follows what the ops did, not what the device made of them: after a
 * malformed op the two may disagree, which is why only valid programs'
 * used descriptors are judged (a bogus id there is a finding).
 */
#include <errno.h>
#include <stdio.h>
#include "fz_internal.h"
#include "arch/x86_64/cpu.h"
#include "drivers/virtio/virtqueue.h"
#include "kernel/addr.h"
#include "kernel/clock.h"

static uint16_t pstep(const struct fz_ring *r, uint16_t slot, bool *wrap)
{
	if (++slot >= r->size) {
		slot = 0;
		*wrap = !*wrap;
	}
	return slot;
}

int fz_packed_add(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
	if (r->size == 0 || !r->packed) {
		snprintf(why, why_len, "queue %u is %s", op->q, r->size ? "split: add writes its descriptors"
								: "not set up");
		return -EINVAL;
	}
	if (op->slot >= r->size) {
		snprintf(why, why_len, "slot %u is beyond the queue's %u", op->slot, r->size);
		return -EINVAL;
	}
	unsigned n = op->ind ? 1 : op->n_segs;
	if (n > r->size) {
		snprintf(why, why_len, "%u descriptors do not fit a queue of %u", n, r->size);
		return -EINVAL;
	}
	uint64_t addr[FZ_MAX_SEGS];
	uint32_t len[FZ_MAX_SEGS];
	int rc = fz_build_segs(op, addr, len, why, why_len);
	if (rc < 0)
		return rc;
	struct vq_pdesc d[FZ_MAX_SEGS];
	if (op->ind) {
		size_t table_bytes = (size_t)op->n_segs * sizeof(struct vq_pdesc);
		if (op->indlen != FZ_NONE && (size_t)op->indlen > table_bytes)
			table_bytes = (size_t)op->indlen; /* a device reading that far finds zeros */
		struct vq_pdesc *t = fz_scratch_alloc(table_bytes);
		if (!t) {
			snprintf(why, why_len, "indirect table does not fit the scratch area");
			return -EINVAL;
		}
		for (unsigned i = 0; i < op->n_segs; i++)
			t[i] = (struct vq_pdesc){ addr[i], len[i], op->bid,
				(uint16_t)((op->seg[i].writable ? VQ_DESC_F_WRITE : 0) | (op->nest ? VQ_DESC_F_INDIRECT : 0)) };
		uint32_t ilen = op->indlen != FZ_NONE ? (uint32_t)op->indlen : (uint32_t)(op->n_segs * sizeof(*t));
		d[0] = (struct vq_pdesc){ virt_to_phys(t), ilen, op->bid, VQ_DESC_F_INDIRECT };
	} else {
		for (unsigned i = 0; i < n; i++)
			d[i] = (struct vq_pdesc){ addr[i], len[i], op->bid,
				(uint16_t)((op->seg[i].writable ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)) };
	}
	/* AVAIL = the wrap counter of the slot's pass, USED = its opposite
	 * (2.8.1); the first descriptor's bits as the op says. */
	uint16_t slots[FZ_MAX_SEGS], slot = op->slot;
	bool wrap = op->wrap;
	for (unsigned i = 0; i < n; i++) {
		slots[i] = slot;
		bool av = wrap, us = !wrap;
		if (i == 0 && op->av != FZ_NONE)
			av = op->av;
		if (i == 0 && op->us != FZ_NONE)
			us = op->us;
		d[i].flags |= (uint16_t)((av ? VQ_PDESC_F_AVAIL : 0) | (us ? VQ_PDESC_F_USED : 0));
		slot = pstep(r, slot, &wrap);
	}
	struct vq_pdesc *ring = (struct vq_pdesc *)r->mem;
	/* In order, the first descriptor's flags go last, by a release store,
	 * so the device sees the whole chain at once; `rev` publishes the
	 * first descriptor before the others are written. */
	if (op->rev)
		__atomic_store_n(&ring[slots[0]].flags, 0, __ATOMIC_RELAXED);
	for (unsigned k = 0; k < n; k++) {
		unsigned i = op->rev ? k : n - 1 - k;
		struct vq_pdesc *p = &ring[slots[i]];
		p->addr = d[i].addr;
		p->len = d[i].len;
		p->id = d[i].id;
		__atomic_store_n(&p->flags, d[i].flags, __ATOMIC_RELEASE);
	}
	if (op->bid < FZ_RING_MAX) {
		if (r->id_n[op->bid])
			r->in_flight = (uint16_t)(r->in_flight - r->id_n[op->bid]); /* reused: the new chain counts */
		r->id_n[op->bid] = (uint8_t)n;
	}
	r->in_flight = (uint16_t)(r->in_flight + n);
	fz_state.pnext[op->q % FZ_QUEUES] = slot;
	fz_state.pwrap[op->q % FZ_QUEUES] = wrap;
	if (op->seg[0].kind == FZ_SEG_STATS)
		fz_state.stats_in_flight = true;
	return 0;
}

/* Used descriptors from next_used on: USED and AVAIL both equal to the used
 * wrap counter (2.8.1). Each names a buffer id, whose descriptors the
 * device skipped (2.8.7). */
void fz_packed_wait(const struct fz_op *op, struct fz_ring *r)
{
	volatile struct vq_pdesc *ring = (volatile struct vq_pdesc *)r->mem;
	uint64_t deadline = clock_ms() + op->off;
	for (unsigned seen = 0; seen < r->size;) {
		uint16_t flags = ring[r->next_used].flags;
		bool used = (flags & VQ_PDESC_F_USED) != 0, avail = (flags & VQ_PDESC_F_AVAIL) != 0;
		if (used != r->used_wrap || avail != r->used_wrap) {
			if (seen || clock_ms() >= deadline)
				return;
			cpu_relax();
			continue;
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint16_t id = ring[r->next_used].id;
		uint32_t len = ring[r->next_used].len;
		seen++;
		fz_prog.used++;
		fz_counters.used++;
		bool known = id < FZ_RING_MAX && r->id_n[id];
		printf("fz> used %u slot=%u id=%u len=%u%s\n", op->q, r->next_used, id, len,
		       known ? "" : " (not a buffer in flight)");
		unsigned skip = known ? r->id_n[id] : 1;
		if (!known) {
			fz_prog.bad_used++;
			fz_counters.bad_used++;
			if (fz_prog.valid && !fz_state.needs_reset)
				fz_finding("bad_used", "used descriptor names buffer id %lu on queue %lu, not one in flight", id,
					op->q);
		} else {
			r->in_flight = (uint16_t)(r->in_flight - r->id_n[id]);
			r->id_n[id] = 0;
		}
		for (unsigned i = 0; i < skip; i++)
			r->next_used = pstep(r, r->next_used, &r->used_wrap);
	}
}

int fz_packed_event(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
	if (r->size == 0 || !r->packed) {
		snprintf(why, why_len, "queue %u is not a packed ring", op->q);
		return -EINVAL;
	}
	uint32_t word = (uint32_t)op->off | (uint32_t)op->value << 16;
	__atomic_store_n((vq_event_word *)(r->mem + RING_AVAIL_OFF), word, __ATOMIC_RELEASE);
	return 0;
}

