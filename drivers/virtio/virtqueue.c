/*
 * virtqueue: the split ring, driver side (see virtqueue.h), and what both
 * layouts share: arguments, the choice of layout, broken-queue reporting.
 * The packed ring is in vq_packed.c.
 *
 * Ordering: the device may read the ring at any moment, so a buffer's
 * descriptors are written before its head enters the available ring, and the
 * head before avail.idx moves (a release store). Before deciding whether to
 * notify, a full fence orders our avail.idx store before the load of the
 * device's avail_event / flags; reading used.idx is an acquire load so the
 * used entry it covers is read after it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "virtqueue.h"
#include "vq_internal.h"
#include "kernel/addr.h"

#define USED_ALIGN 64 /* unless the transport fixes it (legacy PCI: 4096) */

static size_t avail_bytes(uint16_t size)
{
	return 6 + 2 * (size_t)size; /* flags, idx, ring, used_event */
}

static size_t used_offset(uint16_t size, size_t align)
{
	return (16 * (size_t)size + avail_bytes(size) + align - 1) & ~(align - 1);
}

size_t vq_ring_bytes_aligned(uint16_t size, size_t used_align)
{
	return used_offset(size, used_align) + 6 + 8 * (size_t)size;
}

size_t vq_ring_bytes(uint16_t size)
{
	return vq_ring_bytes_aligned(size, USED_ALIGN);
}

size_t vq_indirect_bytes(uint16_t size, uint16_t max_indirect)
{
	return (size_t)size * max_indirect * sizeof(struct vq_desc);
}

static volatile uint16_t *used_event(struct vq *vq)
{
	return &vq->avail->ring[vq->size];
}

static volatile uint16_t *avail_event(struct vq *vq)
{
	return (volatile uint16_t *)&vq->used->ring[vq->size];
}

int vq_init_common(struct vq *vq, uint16_t index, uint16_t size, bool pow2, bool event_idx,
		   void *ring, void *indirect_mem, uint16_t max_indirect)
{
	if (size == 0 || (pow2 && (size & (size - 1))) || size > VQ_MAX_SIZE || ((uintptr_t)ring & 15) ||
	    ((uintptr_t)indirect_mem & 15) || (indirect_mem && max_indirect < 2))
		return -EINVAL;
	memset(vq, 0, sizeof(*vq));
	vq->shadow = calloc(size, sizeof(*vq->shadow));
	vq->next = calloc(size, sizeof(*vq->next));
	if (!vq->shadow || !vq->next) {
		vq_destroy(vq);
		return -ENOMEM;
	}
	vq->index = index;
	vq->size = size;
	vq->event_idx = event_idx;
	vq->indirect = indirect_mem != NULL;
	vq->indirect_tables = indirect_mem;
	vq->max_indirect = indirect_mem ? max_indirect : 0;
	for (uint16_t i = 0; i < size; i++)
		vq->next[i] = (uint16_t)(i + 1);
	vq->num_free = size;
	vq->callbacks = true;
	return 0;
}

int vq_init(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
	    void *indirect_mem, uint16_t max_indirect)
{
	return vq_init_aligned(vq, index, size, ring, event_idx, indirect_mem, max_indirect, USED_ALIGN);
}

int vq_init_aligned(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
		    void *indirect_mem, uint16_t max_indirect, size_t used_align)
{
	if (used_align < 4 || (used_align & (used_align - 1)) || used_align > 4096)
		return -EINVAL;
	int rc = vq_init_common(vq, index, size, true, event_idx, ring, indirect_mem, max_indirect);
	if (rc < 0)
		return rc;
	memset(ring, 0, vq_ring_bytes_aligned(size, used_align));
	vq->layout = VQ_SPLIT;
	vq->desc = ring;
	vq->avail = (struct vq_avail *)((uint8_t *)ring + 16 * (size_t)size);
	vq->used = (struct vq_used *)((uint8_t *)ring + used_offset(size, used_align));
	return 0;
}

uint64_t vq_driver_features(bool allow_packed)
{
	return 1ULL << VQ_F_INDIRECT_DESC | 1ULL << VQ_F_EVENT_IDX |
	       (allow_packed ? 1ULL << VQ_F_RING_PACKED : 0);
}

struct vq_config vq_config_for(uint64_t negotiated, uint16_t max_indirect)
{
	return (struct vq_config){
		.layout = (negotiated & (1ULL << VQ_F_RING_PACKED)) ? VQ_PACKED : VQ_SPLIT,
		.event_idx = (negotiated & (1ULL << VQ_F_EVENT_IDX)) != 0,
		.max_indirect = (negotiated & (1ULL << VQ_F_INDIRECT_DESC)) ? max_indirect : 0,
	};
}

static size_t used_align_of(const struct vq_config *c)
{
	return c->used_align ? c->used_align : USED_ALIGN;
}

static size_t ring_part(const struct vq_config *c, uint16_t size)
{
	size_t ring = c->layout == VQ_PACKED ? vq_packed_ring_bytes(size)
					     : vq_ring_bytes_aligned(size, used_align_of(c));
	return (ring + 63) & ~(size_t)63;
}

size_t vq_mem_bytes(const struct vq_config *c, uint16_t size)
{
	return ring_part(c, size) + (c->max_indirect ? vq_indirect_bytes(size, c->max_indirect) : 0);
}

int vq_setup(struct vq *vq, const struct vq_config *c, uint16_t index, uint16_t size, void *mem)
{
	void *tables = c->max_indirect ? (uint8_t *)mem + ring_part(c, size) : NULL;
	if (c->layout == VQ_PACKED)
		return vq_init_packed(vq, index, size, mem, c->event_idx, tables, c->max_indirect);
	return vq_init_aligned(vq, index, size, mem, c->event_idx, tables, c->max_indirect, used_align_of(c));
}

const char *vq_layout_name(const struct vq *vq)
{
	return vq->layout == VQ_PACKED ? "packed" : "split";
}

void vq_destroy(struct vq *vq)
{
	free(vq->shadow);
	free(vq->next);
	vq->shadow = NULL;
	vq->next = NULL;
}

uint64_t vq_desc_addr(const struct vq *vq)
{
	return virt_to_phys(vq->layout == VQ_PACKED ? (const void *)vq->pdesc : (const void *)vq->desc);
}

uint64_t vq_avail_addr(const struct vq *vq)
{
	return virt_to_phys(vq->layout == VQ_PACKED ? (const void *)vq->driver_event : (const void *)vq->avail);
}

uint64_t vq_used_addr(const struct vq *vq)
{
	return virt_to_phys(vq->layout == VQ_PACKED ? (const void *)vq->device_event : (const void *)vq->used);
}

const char *vq_broken_reason(const struct vq *vq)
{
	return vq->broken_reason;
}

int vq_mark_broken(struct vq *vq, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vq->broken_reason, sizeof(vq->broken_reason), fmt, ap);
	va_end(ap);
	vq->broken = true;
	printf("virtqueue %u: device broke the ring: %s; queue disabled\n", vq->index, vq->broken_reason);
	return -EIO;
}

static void fill(struct vq_desc *d, const struct vq_seg *s, uint16_t flags)
{
	d->addr = s->addr;
	d->len = s->len;
	d->flags = flags;
}

int vq_add(struct vq *vq, const struct vq_seg *out, unsigned n_out, const struct vq_seg *in,
	   unsigned n_in, void *token)
{
	unsigned n = n_out + n_in;
	if (vq->broken)
		return -EIO;
	if (n == 0 || !token || (n > vq->size && !(vq->indirect && n <= vq->max_indirect)))
		return -EINVAL;
	/* No chain longer than 2^32 bytes (2.7.13.1): the used length, and our
	 * record of what is writable, are 32-bit. */
	uint64_t total = 0, in_len = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct vq_seg *s = i < n_out ? &out[i] : &in[i - n_out];
		if (s->len == 0)
			return -EINVAL;
		total += s->len;
		if (i >= n_out)
			in_len += s->len;
	}
	if (total > UINT32_MAX)
		return -EINVAL;
	bool use_indirect = vq->indirect && n > 1 && n <= vq->max_indirect;
	unsigned need = use_indirect ? 1 : n;
	if (vq->num_free < need)
		return -ENOSPC;
	if (vq->layout == VQ_PACKED)
		return vqp_add(vq, out, n_out, in, n_in, token, use_indirect, (uint16_t)need, (uint32_t)in_len);

	uint16_t head = vq->free_head, d = head, last = head;
	if (use_indirect) {
		/* One table per head, so a table is free exactly when its head is. */
		struct vq_desc *t = &vq->indirect_tables[(size_t)head * vq->max_indirect];
		for (unsigned i = 0; i < n; i++) {
			bool w = i >= n_out;
			fill(&t[i], w ? &in[i - n_out] : &out[i],
			     (uint16_t)((w ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)));
			t[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
		}
		vq->desc[head].addr = virt_to_phys(t);
		vq->desc[head].len = n * sizeof(struct vq_desc);
		vq->desc[head].flags = VQ_DESC_F_INDIRECT;
		vq->desc[head].next = 0;
		vq->free_head = vq->next[head];
	} else {
		for (unsigned i = 0; i < n; i++) {
			bool w = i >= n_out;
			fill(&vq->desc[d], w ? &in[i - n_out] : &out[i],
			     (uint16_t)((w ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)));
			vq->desc[d].next = vq->next[d];
			last = d;
			d = vq->next[d];
		}
		vq->free_head = vq->next[last];
	}
	vq->num_free -= need;
	vq->shadow[head] = (struct vq_shadow){ token, (uint16_t)need, (uint32_t)in_len };

	vq->avail->ring[vq->avail_idx & (vq->size - 1)] = head;
	vq->avail_idx++;
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	vq->in_flight++;
	vq->added++;
	return 0;
}

bool vq_kick_prepare(struct vq *vq)
{
	if (vq->layout == VQ_PACKED)
		return vqp_kick_prepare(vq);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t old = vq->kicked_idx, new = vq->avail_idx;
	vq->kicked_idx = new;
	if (vq->broken)
		return false;
	if (vq->event_idx) {
		uint16_t event = __atomic_load_n(avail_event(vq), __ATOMIC_RELAXED);
		/* Notify if the device asked for an index among those just added. */
		return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
	}
	return !(__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED) & VQ_USED_F_NO_NOTIFY);
}

int vq_get_used(struct vq *vq, void **token, uint32_t *len)
{
	if (vq->broken)
		return -EIO;
	if (vq->layout == VQ_PACKED)
		return vqp_get_used(vq, token, len);
	uint16_t used_idx = __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(used_idx - vq->last_used);
	if (pending == 0)
		return 0;
	if (pending > vq->in_flight)
		return vq_mark_broken(vq, "used.idx moved from %u to %u with only %u buffers in flight",
				   vq->last_used, used_idx, vq->in_flight);
	uint16_t slot = vq->last_used & (vq->size - 1);
	struct vq_used_elem e = vq->used->ring[slot]; /* one read: the device may change it */
	if (e.id >= vq->size)
		return vq_mark_broken(vq, "used.ring[%u].id = %u, beyond the queue size %u", slot, e.id,
				   vq->size);
	struct vq_shadow *s = &vq->shadow[e.id];
	if (!s->token)
		return vq_mark_broken(vq, "used.ring[%u].id = %u is not a buffer in flight "
				   "(already returned, or not a chain's head)", slot, e.id);
	if (e.len > s->in_len)
		return vq_mark_broken(vq, "used.ring[%u]: buffer %u reports %u bytes written, "
				   "but only %u were writable", slot, e.id, e.len, s->in_len);

	/* Give the chain's descriptors back, following our own links. */
	uint16_t last = (uint16_t)e.id;
	for (uint16_t i = 1; i < s->ndesc; i++)
		last = vq->next[last];
	vq->next[last] = vq->free_head;
	vq->free_head = (uint16_t)e.id;
	vq->num_free += s->ndesc;

	*token = s->token;
	*len = e.len;
	s->token = NULL;
	vq->last_used++;
	vq->in_flight--;
	vq->completed++;
	if (vq->event_idx && vq->callbacks)
		__atomic_store_n(used_event(vq), vq->last_used, __ATOMIC_RELAXED);
	return 1;
}

void vq_disable_cb(struct vq *vq)
{
	if (vq->layout == VQ_PACKED) {
		vqp_disable_cb(vq);
		return;
	}
	vq->callbacks = false;
	if (!vq->event_idx)
		vq->avail->flags |= VQ_AVAIL_F_NO_INTERRUPT;
	else /* ask for an interrupt only after 65535 more completions: never */
		__atomic_store_n(used_event(vq), (uint16_t)(vq->last_used - 1), __ATOMIC_RELAXED);
}

bool vq_enable_cb(struct vq *vq)
{
	if (vq->layout == VQ_PACKED)
		return vqp_enable_cb(vq);
	vq->callbacks = true;
	if (vq->event_idx)
		__atomic_store_n(used_event(vq), vq->last_used, __ATOMIC_RELAXED);
	else
		vq->avail->flags &= (uint16_t)~VQ_AVAIL_F_NO_INTERRUPT;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE) != vq->last_used;
}
