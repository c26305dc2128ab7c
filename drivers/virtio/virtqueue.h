/*
 * virtqueue: split virtqueues (virtio 1.2, section 2.7), hardened against
 * the device.
 *
 *   descriptor table (16 B each)   driver writes; device reads
 *   +------+-----+-------+------+
 *   | addr | len | flags | next |  x size
 *   +------+-----+-------+------+
 *   available ring                 driver writes; device reads
 *   | flags | idx | ring[size] (heads) | used_event |
 *   used ring                      device writes; driver reads
 *   | flags | idx | ring[size] {id, len} | avail_event |
 *
 * A buffer goes down as a chain of descriptors (or one descriptor pointing
 * at an indirect table, 2.7.5.3), its head is put in the available ring and
 * avail.idx moves on; the device later puts {head, bytes written} in the used
 * ring. With VIRTIO_F_EVENT_IDX (2.7.7, 2.7.10) each side says at which index
 * it wants to be notified, instead of a single on/off flag.
 *
 * The device is not trusted. The driver keeps its own record of every buffer
 * it posted (token, descriptor count, writable length, its own free list) and
 * never reads descriptors back from shared memory. Each used entry is
 * checked: the id must be an outstanding head, used.idx may not run ahead of
 * the buffers in flight, the length may not exceed what the buffer could
 * take. A violation marks the queue broken, records exactly what was seen,
 * and every later call fails with -EIO.
 *
 * This file compiles into the kernel and into host tests (tests/unit), where
 * a simulated device (tests/unit/virtio_sim.c) plays the other side. Nothing
 * here waits: callers poll vq_get_used or sleep until an interrupt.
 */
#ifndef BLIMP_VIRTQUEUE_H
#define BLIMP_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4
#define VQ_AVAIL_F_NO_INTERRUPT 1
#define VQ_USED_F_NO_NOTIFY 1

#define VQ_MAX_SIZE 32768

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then used_event */
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vq_used {
	uint16_t flags;
	uint16_t idx;
	struct vq_used_elem ring[]; /* then avail_event */
};

/* One piece of a buffer: physical address and length. */
struct vq_seg {
	uint64_t addr;
	uint32_t len;
};

/* What the driver remembers about a posted buffer, by head index. */
struct vq_shadow {
	void *token;     /* NULL: not an outstanding head */
	uint16_t ndesc;  /* descriptors in the chain (1 when indirect) */
	uint32_t in_len; /* bytes the device may write */
};

struct vq {
	uint16_t index, size;
	bool indirect, event_idx;
	struct vq_desc *desc;
	struct vq_avail *avail;
	struct vq_used *used;
	struct vq_desc *indirect_tables; /* size tables of max_indirect entries, or NULL */
	uint16_t max_indirect;

	struct vq_shadow *shadow; /* size entries */
	uint16_t *next;           /* the driver's own free list and chains */
	uint16_t free_head, num_free, in_flight;
	uint16_t avail_idx;       /* what the driver last published */
	uint16_t kicked_idx;      /* avail_idx at the last notification check */
	uint16_t last_used;       /* next used entry to consume */
	bool callbacks;           /* interrupts wanted */

	bool broken;
	char broken_reason[160];
	uint64_t added, completed;
};

/* Bytes of ring memory (16-byte aligned, physically contiguous) for `size`. */
size_t vq_ring_bytes(uint16_t size);
/* The same with the used ring at a multiple of `used_align` from the start
 * (a power of two, 4..4096): legacy PCI fixes it at 4096 (2.7.2, legacy). */
size_t vq_ring_bytes_aligned(uint16_t size, size_t used_align);
/* Bytes of indirect-table memory for `size` tables of `max_indirect` entries. */
size_t vq_indirect_bytes(uint16_t size, uint16_t max_indirect);

/*
 * Set up a queue in `ring` (vq_ring_bytes, zeroed here). `indirect_mem` may
 * be NULL (no indirect descriptors); otherwise vq_indirect_bytes of it.
 * Returns 0, -EINVAL (size not a power of two in 1..32768, misaligned
 * memory) or -ENOMEM (no memory for the driver's own bookkeeping).
 */
int vq_init(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
	    void *indirect_mem, uint16_t max_indirect);
/* vq_init with the used ring aligned to `used_align` (vq_ring_bytes_aligned);
 * -EINVAL also for an alignment that is not a power of two in 4..4096. */
int vq_init_aligned(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
		    void *indirect_mem, uint16_t max_indirect, size_t used_align);
void vq_destroy(struct vq *vq);

/* Physical addresses of the three parts, for the transport's registers. */
uint64_t vq_desc_addr(const struct vq *vq);
uint64_t vq_avail_addr(const struct vq *vq);
uint64_t vq_used_addr(const struct vq *vq);

/*
 * Post a buffer: n_out device-readable segments, then n_in device-writable
 * ones. `token` (non-NULL) comes back from vq_get_used. Returns 0, -ENOSPC
 * (not enough free descriptors), -EINVAL (no segments, a zero length, more
 * than 4 GiB - 1 in all, a NULL token) or -EIO (broken).
 */
int vq_add(struct vq *vq, const struct vq_seg *out, unsigned n_out, const struct vq_seg *in,
	   unsigned n_in, void *token);

/* After adding: must the device be notified? (event index or NO_NOTIFY) */
bool vq_kick_prepare(struct vq *vq);

/* Take one completed buffer: 1 (with *token, *len), 0 if none, -EIO if the
 * device broke the rules (now or before). */
int vq_get_used(struct vq *vq, void **token, uint32_t *len);

/* Ask for no interrupts / interrupts again. vq_enable_cb returns true if
 * buffers completed meanwhile (process them, or they may never interrupt). */
void vq_disable_cb(struct vq *vq);
bool vq_enable_cb(struct vq *vq);

/* Why the queue is broken ("" if it is not). */
const char *vq_broken_reason(const struct vq *vq);

#endif
