/*
 * vq_internal: what the split ring (virtqueue.c) and the packed ring
 * (vq_packed.c) share behind the one interface of virtqueue.h. Not for
 * callers of virtqueues.
 */
#ifndef BLIMP_VQ_INTERNAL_H
#define BLIMP_VQ_INTERNAL_H

#include "virtqueue.h"

/* Mark the queue broken with the reason (printed once); returns -EIO. */
int vq_mark_broken(struct vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Check arguments and allocate the bookkeeping common to both layouts;
 * 0, -EINVAL or -ENOMEM as vq_init. `pow2`: the layout needs a power of two. */
int vq_init_common(struct vq *vq, uint16_t index, uint16_t size, bool pow2, bool event_idx,
		   void *ring, void *indirect_mem, uint16_t max_indirect);

/* Packed halves of the public calls, reached through vq->layout. vqp_add
 * gets arguments vq_add already checked: `need` descriptors are free. */
int vqp_add(struct vq *vq, const struct vq_seg *out, unsigned n_out, const struct vq_seg *in,
	    unsigned n_in, void *token, bool use_indirect, uint16_t need, uint32_t in_len);
bool vqp_kick_prepare(struct vq *vq);
int vqp_get_used(struct vq *vq, void **token, uint32_t *len);
void vqp_disable_cb(struct vq *vq);
bool vqp_enable_cb(struct vq *vq);

#endif
