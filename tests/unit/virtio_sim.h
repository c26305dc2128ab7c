/*
 * virtio_sim: the device side of a virtqueue, split or packed (whichever
 * layout the attached queue has), simulated on the host.
 *
 * It reads the rings the driver (drivers/virtio/virtqueue.c, vq_packed.c)
 * writes, walks descriptor chains and indirect tables with its own bounds
 * checks, and writes used entries — correct ones, or whatever a test asks
 * for, to play a device that lies. The packed side keeps its own wrap
 * counters (2.8.1) and never looks at the driver's. Addresses in descriptors are host pointers (the same
 * identity rule as the kernel's direct map, kernel/addr.h).
 */
#ifndef BLIMP_VIRTIO_SIM_H
#define BLIMP_VIRTIO_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include "drivers/virtio/virtqueue.h"

#define VSIM_MAX_SEGS 64
#define VSIM_MAX_PACKED 1024 /* largest packed queue simulated */

struct vsim {
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
	uint16_t size;
	uint16_t last_avail; /* next available entry to take */
	uint16_t used_idx;   /* what the device last published */
	bool event_idx;
	/* packed */
	bool packed;
	struct vq_pdesc *pdesc;
	struct vq_event *driver_event, *device_event;
	uint16_t avail_pos, used_pos; /* next slot to read / to write */
	bool avail_wrap, used_wrap;   /* the device's wrap counters */
	uint16_t ndesc_of[VSIM_MAX_PACKED]; /* by buffer id: slots to skip */
	bool interrupt;               /* the last push would interrupt the driver */
};

/* A buffer the device took: its head (split) or buffer id (packed) and
 * segments (readable first). */
struct vsim_buf {
	uint16_t head;
	uint16_t ndesc; /* ring descriptors it took */
	unsigned n_out, n_in;
	struct vq_seg seg[VSIM_MAX_SEGS];
	uint32_t in_len;
};

/* Attach to the rings of `vq`, starting at its current indices. */
void vsim_attach(struct vsim *s, const struct vq *vq);

/* Take the next available buffer: 1, 0 if none, -EINVAL if the chain is
 * malformed (loop, index out of range, bad indirect table). */
int vsim_pop(struct vsim *s, struct vsim_buf *b);

/* Publish a used entry {id, len} and move used.idx by one. Packed: a used
 * descriptor at the next slot, then skip the buffer's other descriptors
 * (as many as it took when popped; one for an id never popped), and set
 * s->interrupt to whether the driver's event suppression asks for one. */
void vsim_push(struct vsim *s, uint32_t id, uint32_t len);

/* Misbehave: set used.idx to anything (split). */
void vsim_set_used_idx(struct vsim *s, uint16_t idx);

/* Misbehave (packed): write a used descriptor with any id, len and flags
 * at the next slot and move on by `advance` slots. */
void vsim_push_raw(struct vsim *s, uint16_t id, uint32_t len, uint16_t flags, uint16_t advance);

/* The flags an honest packed device writes at its current used slot. */
uint16_t vsim_used_flags(const struct vsim *s);

/* Event index / flags the device shows the driver. Packed: idx is the
 * event suppression off_wrap (offset | wrap << 15) and flags become DESC;
 * no_notify sets DISABLE or ENABLE. */
void vsim_set_avail_event(struct vsim *s, uint16_t idx);
void vsim_set_no_notify(struct vsim *s, bool on);
/* Packed: write the device event suppression structure as it is. */
void vsim_set_device_event(struct vsim *s, uint16_t off_wrap, uint16_t flags);

/* Would the device interrupt after moving used.idx from old to new? (split) */
bool vsim_wants_interrupt(const struct vsim *s, uint16_t old, uint16_t new);

#endif
