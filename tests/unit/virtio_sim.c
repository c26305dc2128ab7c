/*
 * virtio_sim: a simulated device for split and packed virtqueues (see
 * virtio_sim.h).
 */
#include <errno.h>
#include "virtio_sim.h"
#include "kernel/addr.h"

void vsim_attach(struct vsim *s, const struct vq *vq)
{
	s->packed = vq->layout == VQ_PACKED;
	s->size = vq->size;
	s->event_idx = vq->event_idx;
	if (s->packed) {
		s->pdesc = vq->pdesc;
		s->driver_event = vq->driver_event;
		s->device_event = vq->device_event;
		s->avail_pos = vq->next_avail;
		s->avail_wrap = vq->avail_wrap;
		s->used_pos = vq->next_used;
		s->used_wrap = vq->used_wrap;
		s->interrupt = false;
		return;
	}
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

static void advance(const struct vsim *s, uint16_t *pos, bool *wrap, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (++*pos == s->size) {
			*pos = 0;
			*wrap = !*wrap;
		}
}

/* Packed: the chain at avail_pos, consecutive descriptors linked by NEXT,
 * each marked available for the device's wrap counter where it lies. */
static int pop_packed(struct vsim *s, struct vsim_buf *b)
{
	uint16_t pos = s->avail_pos;
	bool wrap = s->avail_wrap;
	b->n_out = b->n_in = 0;
	b->in_len = 0;
	for (unsigned n = 0;; n++) {
		if (n >= s->size)
			return -EINVAL; /* NEXT all the way round */
		const struct vq_pdesc *d = &s->pdesc[pos];
		uint16_t flags = __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
		bool avail = flags & VQ_PDESC_F_AVAIL, used = flags & VQ_PDESC_F_USED;
		if (avail != wrap || used == wrap) {
			if (n == 0)
				return 0; /* nothing new */
			return -EINVAL; /* NEXT into a descriptor not made available */
		}
		if (flags & VQ_DESC_F_INDIRECT) {
			if (n != 0 || (flags & VQ_DESC_F_NEXT) || d->len % sizeof(struct vq_pdesc) || d->len == 0)
				return -EINVAL;
			const struct vq_pdesc *t = phys_to_virt(d->addr);
			for (unsigned i = 0; i < d->len / sizeof(struct vq_pdesc); i++) {
				struct vq_desc one = { t[i].addr, t[i].len, t[i].flags, 0 };
				if ((t[i].flags & ~VQ_DESC_F_WRITE) || add_seg(b, &one) < 0)
					return -EINVAL;
			}
		} else {
			struct vq_desc one = { d->addr, d->len, flags, 0 };
			if (add_seg(b, &one) < 0)
				return -EINVAL;
		}
		advance(s, &pos, &wrap, 1);
		if (!(flags & VQ_DESC_F_NEXT)) {
			b->head = d->id; /* the buffer id is the last descriptor's (2.8.6) */
			b->ndesc = (uint16_t)(n + 1);
			break;
		}
	}
	if (b->head < VSIM_MAX_PACKED)
		s->ndesc_of[b->head] = b->ndesc;
	s->avail_pos = pos;
	s->avail_wrap = wrap;
	return 1;
}

int vsim_pop(struct vsim *s, struct vsim_buf *b)
{
	if (s->packed)
		return pop_packed(s, b);
	uint16_t avail_idx = __atomic_load_n(&s->avail->idx, __ATOMIC_ACQUIRE);
	if (avail_idx == s->last_avail)
		return 0;
	uint16_t head = s->avail->ring[s->last_avail & (s->size - 1)];
	s->last_avail++;
	if (head >= s->size)
		return -EINVAL;
	b->head = head;
	b->ndesc = 1;
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

uint16_t vsim_used_flags(const struct vsim *s)
{
	return s->used_wrap ? VQ_PDESC_F_AVAIL | VQ_PDESC_F_USED : 0;
}

/* Slot `pos` with wrap `wrap` on the line of slots whose current pass has
 * wrap counter `now`: the previous pass lies size below. */
static int on_line(const struct vsim *s, uint16_t pos, bool wrap, bool now)
{
	return wrap == now ? pos : pos - s->size;
}

void vsim_push_raw(struct vsim *s, uint16_t id, uint32_t len, uint16_t flags, uint16_t n)
{
	uint16_t old = s->used_pos;
	bool old_wrap = s->used_wrap;
	struct vq_pdesc *d = &s->pdesc[s->used_pos];
	d->id = id;
	d->len = len;
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
	advance(s, &s->used_pos, &s->used_wrap, n);
	/* Interrupt? The driver's event suppression, read as QEMU does. */
	uint32_t word = __atomic_load_n((vq_event_word *)s->driver_event, __ATOMIC_ACQUIRE);
	uint16_t off_wrap = (uint16_t)word, ev_flags = (uint16_t)(word >> 16);
	if (ev_flags == VQ_EVENT_F_DESC && s->event_idx) {
		int now = s->used_pos, before = on_line(s, old, old_wrap, s->used_wrap);
		int event = on_line(s, off_wrap & 0x7fff, off_wrap >> 15, s->used_wrap);
		s->interrupt = now - event - 1 >= 0 && now - event - 1 < now - before;
	} else {
		s->interrupt = ev_flags != VQ_EVENT_F_DISABLE;
	}
}

void vsim_push(struct vsim *s, uint32_t id, uint32_t len)
{
	if (s->packed) {
		uint16_t n = id < VSIM_MAX_PACKED && s->ndesc_of[id] ? s->ndesc_of[id] : 1;
		vsim_push_raw(s, (uint16_t)id, len, vsim_used_flags(s), n);
		return;
	}
	s->used->ring[s->used_idx & (s->size - 1)] = (struct vq_used_elem){ id, len };
	s->used_idx++;
	__atomic_store_n(&s->used->idx, s->used_idx, __ATOMIC_RELEASE);
}

void vsim_set_used_idx(struct vsim *s, uint16_t idx)
{
	s->used_idx = idx;
	__atomic_store_n(&s->used->idx, idx, __ATOMIC_RELEASE);
}

void vsim_set_device_event(struct vsim *s, uint16_t off_wrap, uint16_t flags)
{
	uint32_t word = (uint32_t)off_wrap | (uint32_t)flags << 16;
	__atomic_store_n((vq_event_word *)s->device_event, word, __ATOMIC_RELEASE);
}

void vsim_set_avail_event(struct vsim *s, uint16_t idx)
{
	if (s->packed) {
		vsim_set_device_event(s, idx, VQ_EVENT_F_DESC);
		return;
	}
	*(volatile uint16_t *)&s->used->ring[s->size] = idx;
}

void vsim_set_no_notify(struct vsim *s, bool on)
{
	if (s->packed) {
		vsim_set_device_event(s, 0, on ? VQ_EVENT_F_DISABLE : VQ_EVENT_F_ENABLE);
		return;
	}
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
