/*
 * vq_packed: the packed virtqueue, driver side (virtio 1.2, section 2.8),
 * behind the interface of virtqueue.h (vq->layout == VQ_PACKED).
 *
 * One ring of descriptors serves both directions. The driver fills slots
 * in order from next_avail, flipping avail_wrap at the end of the ring; the
 * device overwrites slots in order from next_used with one used descriptor
 * per buffer (its id and the bytes written) and skips the buffer's other
 * descriptors. Buffer ids are the driver's own (a free list in vq->next);
 * what a buffer is (token, descriptor count, writable bytes) is kept by id
 * in vq->shadow and never read back from the ring.
 *
 * Ordering: a buffer's descriptors are written first and its first
 * descriptor's flags last, by a release store, so the device never sees
 * half a chain (2.8.21.1). A used descriptor's flags are read by an acquire
 * load before its id and length. Before deciding whether to notify, a full
 * fence orders the flags store before the load of the device's event
 * suppression structure (2.8.21.3.1).
 *
 * What the device writes, and what is checked each time it is read:
 *   used descriptor flags  USED == the driver's used wrap counter means
 *                          used, and then AVAIL must equal it too; a
 *                          descriptor marked used with nothing in flight
 *                          (peek_used says which stale slots are not lies)
 *   used descriptor id     < size, and a buffer in flight
 *   used descriptor len    <= the bytes the buffer made writable
 *   device event flags     ENABLE, DISABLE, or DESC when EVENT_IDX was
 *                          negotiated; the offset within the ring
 */
#include <errno.h>
#include <string.h>
#include "virtqueue.h"
#include "vq_internal.h"
#include "kernel/addr.h"

size_t vq_packed_ring_bytes(uint16_t size)
{
	return 16 * (size_t)size + 2 * sizeof(struct vq_event);
}

/* AVAIL and USED as the driver writes them for a slot filled with wrap
 * counter `wrap`: AVAIL = wrap, USED = !wrap (2.8.1). */
static uint16_t avail_bits(bool wrap)
{
	return wrap ? VQ_PDESC_F_AVAIL : VQ_PDESC_F_USED;
}

/* The driver event suppression word (off_wrap, then flags), stored at once
 * so the device never reads an offset from one setting with flags of another. */
static void set_driver_event(struct vq *vq, uint16_t flags)
{
	uint16_t off_wrap = (uint16_t)(vq->next_used | (vq->used_wrap ? VQ_EVENT_WRAP : 0));
	uint32_t word = (uint32_t)off_wrap | (uint32_t)flags << 16;
	__atomic_store_n((vq_event_word *)vq->driver_event, word, __ATOMIC_RELEASE);
}

int vq_init_packed(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
		   void *indirect_mem, uint16_t max_indirect)
{
	int rc = vq_init_common(vq, index, size, false, event_idx, ring, indirect_mem, max_indirect);
	if (rc < 0)
		return rc;
	memset(ring, 0, vq_packed_ring_bytes(size));
	vq->layout = VQ_PACKED;
	vq->pdesc = ring;
	vq->driver_event = (struct vq_event *)((uint8_t *)ring + 16 * (size_t)size);
	vq->device_event = vq->driver_event + 1;
	vq->avail_wrap = vq->used_wrap = true; /* both counters start at 1 (2.8.1) */
	if (event_idx)
		set_driver_event(vq, VQ_EVENT_F_DESC); /* interrupt at the first used descriptor */
	return 0;
}

/* The slot after `slot`, flipping `*wrap` at the end of the ring. */
static uint16_t step(const struct vq *vq, uint16_t slot, bool *wrap)
{
	if (++slot == vq->size) {
		slot = 0;
		*wrap = !*wrap;
	}
	return slot;
}

int vqp_add(struct vq *vq, const struct vq_seg *out, unsigned n_out, const struct vq_seg *in,
	    unsigned n_in, void *token, bool use_indirect, uint16_t need, uint32_t in_len)
{
	unsigned n = n_out + n_in;
	uint16_t id = vq->free_head; /* ids never run out first: each buffer takes a slot */
	vq->free_head = vq->next[id];
	uint16_t head = vq->next_avail, slot = head;
	bool wrap = vq->avail_wrap;
	uint16_t head_flags = 0;
	if (use_indirect) {
		/* One table per buffer id, free exactly when the id is. In a
		 * table only WRITE counts; its length gives the count (2.8.19). */
		struct vq_pdesc *t = (struct vq_pdesc *)&vq->indirect_tables[(size_t)id * vq->max_indirect];
		for (unsigned i = 0; i < n; i++) {
			bool w = i >= n_out;
			const struct vq_seg *s = w ? &in[i - n_out] : &out[i];
			t[i] = (struct vq_pdesc){ s->addr, s->len, 0, w ? VQ_DESC_F_WRITE : 0 };
		}
		vq->pdesc[head].addr = virt_to_phys(t);
		vq->pdesc[head].len = (uint32_t)(n * sizeof(struct vq_pdesc));
		vq->pdesc[head].id = id;
		head_flags = (uint16_t)(VQ_DESC_F_INDIRECT | avail_bits(wrap));
		slot = step(vq, slot, &wrap);
	} else {
		for (unsigned i = 0; i < n; i++) {
			bool w = i >= n_out;
			const struct vq_seg *s = w ? &in[i - n_out] : &out[i];
			struct vq_pdesc *d = &vq->pdesc[slot];
			uint16_t flags = (uint16_t)((w ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0) |
						    avail_bits(wrap));
			d->addr = s->addr;
			d->len = s->len;
			d->id = id; /* the device reads it from the last; every one carries it */
			if (i == 0)
				head_flags = flags; /* published last */
			else
				d->flags = flags;
			slot = step(vq, slot, &wrap);
		}
	}
	vq->shadow[id] = (struct vq_shadow){ token, need, in_len };
	vq->next_avail = slot;
	vq->avail_wrap = wrap;
	vq->num_free -= need;
	vq->added_since_kick = (uint16_t)(vq->added_since_kick + need > vq->size ? vq->size
						: vq->added_since_kick + need);
	__atomic_store_n(&vq->pdesc[head].flags, head_flags, __ATOMIC_RELEASE);
	vq->in_flight++;
	vq->added++;
	return 0;
}

bool vqp_kick_prepare(struct vq *vq)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t added = vq->added_since_kick;
	vq->added_since_kick = 0;
	if (vq->broken)
		return false;
	uint32_t word = __atomic_load_n((vq_event_word *)vq->device_event, __ATOMIC_RELAXED);
	uint16_t off_wrap = (uint16_t)word, flags = (uint16_t)(word >> 16);
	switch (flags) {
	case VQ_EVENT_F_ENABLE:
		return true;
	case VQ_EVENT_F_DISABLE:
		return false;
	case VQ_EVENT_F_DESC:
		break;
	default:
		vq_mark_broken(vq, "device event suppression flags = %u (reserved)", flags);
		return false;
	}
	uint16_t off = off_wrap & (uint16_t)~VQ_EVENT_WRAP;
	if (!vq->event_idx) {
		vq_mark_broken(vq, "device event suppression flags = DESC without VIRTIO_F_EVENT_IDX");
		return false;
	}
	if (off >= vq->size) {
		vq_mark_broken(vq, "device event offset %u beyond the queue size %u", off, vq->size);
		return false;
	}
	if (added >= vq->size)
		return true; /* a whole ring's worth went by: whatever it asked for is among them */
	/* Place the event on the driver's line of slots: this pass is 0..size-1,
	 * the previous one (the other wrap counter) size below. Notify if it is
	 * one of the `added` slots just before next_avail. */
	int event = off;
	if (((off_wrap & VQ_EVENT_WRAP) != 0) != vq->avail_wrap)
		event -= vq->size;
	int behind = (int)vq->next_avail - event - 1; /* slots from the event to the newest */
	return behind >= 0 && behind < added;
}

/*
 * Is the descriptor at next_used the device's answer? Returns its flags in
 * *flags and: 0 not yet; 1 a used descriptor (both bits equal the wrap
 * counter); -1 flags no honest device writes there.
 *
 * With nothing in flight the slot is stale: written in the previous pass,
 * by the device as used (both bits = the old counter) or by the driver and
 * skipped by the device as the inside of a chain (AVAIL = old counter,
 * USED = the current one). Only a used descriptor for this pass is a lie
 * there. With buffers in flight the slot is one the driver made available
 * in this pass (AVAIL = counter, USED not), so USED without AVAIL is a lie.
 */
static int peek_used(struct vq *vq, uint16_t *flags)
{
	*flags = __atomic_load_n(&vq->pdesc[vq->next_used].flags, __ATOMIC_ACQUIRE);
	bool used = (*flags & VQ_PDESC_F_USED) != 0, avail = (*flags & VQ_PDESC_F_AVAIL) != 0;
	if (used != vq->used_wrap)
		return 0;
	if (avail != used)
		return vq->in_flight ? -1 : 0;
	return vq->in_flight ? 1 : -1;
}

int vqp_get_used(struct vq *vq, void **token, uint32_t *len)
{
	uint16_t slot = vq->next_used, flags;
	struct vq_pdesc *d = &vq->pdesc[slot];
	int state = peek_used(vq, &flags);
	if (state == 0)
		return 0; /* still the device's */
	if (state < 0 && vq->in_flight)
		return vq_mark_broken(vq, "descriptor %u: flags %#x mark it used (USED=%d) but AVAIL=%d; "
				      "a used descriptor has both equal to the wrap counter %d",
				      slot, flags, vq->used_wrap, !vq->used_wrap, vq->used_wrap);
	if (state < 0)
		return vq_mark_broken(vq, "descriptor %u marked used (wrap counter %d) with no buffers in flight",
				      slot, vq->used_wrap);
	uint16_t id = d->id; /* one read each: the device may change them */
	uint32_t n = d->len;
	if (id >= vq->size)
		return vq_mark_broken(vq, "used descriptor %u: id %u beyond the queue size %u", slot, id, vq->size);
	struct vq_shadow *s = &vq->shadow[id];
	if (!s->token)
		return vq_mark_broken(vq, "used descriptor %u: id %u is not a buffer in flight "
				      "(already returned, or never posted)", slot, id);
	if (n > s->in_len)
		return vq_mark_broken(vq, "used descriptor %u: buffer %u reports %u bytes written, "
				      "but only %u were writable", slot, id, n, s->in_len);

	/* The device skips the buffer's other descriptors (2.8.7). */
	bool wrap = vq->used_wrap;
	for (uint16_t i = 0; i < s->ndesc; i++)
		slot = step(vq, slot, &wrap);
	vq->next_used = slot;
	vq->used_wrap = wrap;
	vq->num_free += s->ndesc;
	vq->next[id] = vq->free_head;
	vq->free_head = id;

	*token = s->token;
	*len = n;
	s->token = NULL;
	vq->in_flight--;
	vq->completed++;
	if (vq->event_idx && vq->callbacks)
		set_driver_event(vq, VQ_EVENT_F_DESC);
	return 1;
}

void vqp_disable_cb(struct vq *vq)
{
	vq->callbacks = false;
	set_driver_event(vq, VQ_EVENT_F_DISABLE);
}

bool vqp_enable_cb(struct vq *vq)
{
	vq->callbacks = true;
	set_driver_event(vq, vq->event_idx ? VQ_EVENT_F_DESC : VQ_EVENT_F_ENABLE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t flags;
	return peek_used(vq, &flags) != 0; /* a lie counts: vq_get_used will report it */
}
