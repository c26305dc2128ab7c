/*
 * virtio_sim: a simulated device for the split virtqueue (see virtio_sim.h).
 */
#include <errno.h>
#include "virtio_sim.h"
#include "kernel/addr.h"

void vsim_attach(struct vsim *s, const struct vq *vq)
{
	s->desc = vq->desc;
	s->avail = vq->avail;
	s->used = vq->used;
	s->size = vq->size;
	s->event_idx = vq->event_idx;
	s->last_avail = vq->avail->idx;
	s->used_idx = vq->used->idx;
}

static int add_seg(struct vsim_buf *b, const struct vq_desc *d)
{
	if (b->n_out + b->n_in == VSIM_MAX_SEGS)
		return -EINVAL;
	if (d->flags & VQ_DESC_F_WRITE) {
		b->in_len += d->len;
		b->n_in++;
	} else {
		if (b->n_in)
			return -EINVAL; /* readable after writable: the spec forbids it */
		b->n_out++;
	}
	b->seg[b->n_out + b->n_in - 1] = (struct vq_seg){ d->addr, d->len };
	return 0;
}

int vsim_pop(struct vsim *s, struct vsim_buf *b)
{
	uint16_t avail_idx = __atomic_load_n(&s->avail->idx, __ATOMIC_ACQUIRE);
	if (avail_idx == s->last_avail)
		return 0;
	uint16_t head = s->avail->ring[s->last_avail & (s->size - 1)];
	s->last_avail++;
	if (head >= s->size)
		return -EINVAL;
	b->head = head;
	b->n_out = b->n_in = 0;
	b->in_len = 0;
	const struct vq_desc *d = &s->desc[head];
	if (d->flags & VQ_DESC_F_INDIRECT) {
		if (d->len % sizeof(struct vq_desc) || d->len == 0 || (d->flags & VQ_DESC_F_NEXT))
			return -EINVAL;
		const struct vq_desc *t = phys_to_virt(d->addr);
		unsigned n = d->len / sizeof(struct vq_desc);
		for (unsigned i = 0, steps = 0;; steps++) {
			if (i >= n || steps >= n || add_seg(b, &t[i]) < 0)
				return -EINVAL;
			if (!(t[i].flags & VQ_DESC_F_NEXT))
				break;
			i = t[i].next;
		}
		return 1;
	}
	for (unsigned i = head, steps = 0;; steps++) {
		if (i >= s->size || steps >= s->size || add_seg(b, &s->desc[i]) < 0)
			return -EINVAL;
		if (!(s->desc[i].flags & VQ_DESC_F_NEXT))
			break;
		i = s->desc[i].next;
	}
	return 1;
}

void vsim_push(struct vsim *s, uint32_t id, uint32_t len)
{
	s->used->ring[s->used_idx & (s->size - 1)] = (struct vq_used_elem){ id, len };
	s->used_idx++;
	__atomic_store_n(&s->used->idx, s->used_idx, __ATOMIC_RELEASE);
}

void vsim_set_used_idx(struct vsim *s, uint16_t idx)
{
	s->used_idx = idx;
	__atomic_store_n(&s->used->idx, idx, __ATOMIC_RELEASE);
}

void vsim_set_avail_event(struct vsim *s, uint16_t idx)
{
	*(volatile uint16_t *)&s->used->ring[s->size] = idx;
}

void vsim_set_no_notify(struct vsim *s, bool on)
{
	s->used->flags = on ? VQ_USED_F_NO_NOTIFY : 0;
}

bool vsim_wants_interrupt(const struct vsim *s, uint16_t old, uint16_t new)
{
	if (s->event_idx) {
		uint16_t event = *(volatile uint16_t *)&s->avail->ring[s->size];
		return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
	}
	return !(s->avail->flags & VQ_AVAIL_F_NO_INTERRUPT);
}
