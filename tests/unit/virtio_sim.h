/*
 * virtio_sim: the device side of a split virtqueue, simulated on the host.
 *
 * It reads the rings the driver (drivers/virtio/virtqueue.c) writes, walks
 * descriptor chains and indirect tables with its own bounds checks, and
 * writes used entries — correct ones, or whatever a test asks for, to play
 * a device that lies. Addresses in descriptors are host pointers (the same
 * identity rule as the kernel's direct map, kernel/addr.h).
 */
#ifndef BLIMP_VIRTIO_SIM_H
#define BLIMP_VIRTIO_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include "drivers/virtio/virtqueue.h"

#define VSIM_MAX_SEGS 64

struct vsim {
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
	uint16_t size;
	uint16_t last_avail; /* next available entry to take */
	uint16_t used_idx;   /* what the device last published */
	bool event_idx;
};

/* A buffer the device took: its head and segments (readable first). */
struct vsim_buf {
	uint16_t head;
	unsigned n_out, n_in;
	struct vq_seg seg[VSIM_MAX_SEGS];
	uint32_t in_len;
};

/* Attach to the rings of `vq`, starting at its current indices. */
void vsim_attach(struct vsim *s, const struct vq *vq);

/* Take the next available buffer: 1, 0 if none, -EINVAL if the chain is
 * malformed (loop, index out of range, bad indirect table). */
int vsim_pop(struct vsim *s, struct vsim_buf *b);

/* Publish a used entry {id, len} and move used.idx by one. */
void vsim_push(struct vsim *s, uint32_t id, uint32_t len);

/* Misbehave: set used.idx to anything. */
void vsim_set_used_idx(struct vsim *s, uint16_t idx);

/* Event index / flags the device shows the driver. */
void vsim_set_avail_event(struct vsim *s, uint16_t idx);
void vsim_set_no_notify(struct vsim *s, bool on);

/* Would the device interrupt after moving used.idx from old to new? */
bool vsim_wants_interrupt(const struct vsim *s, uint16_t old, uint16_t new);

#endif
