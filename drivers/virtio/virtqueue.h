/*
 * virtqueue: split virtqueues (virtio 1.2, section 2.7) and packed ones
 * (2.8, drivers/virtio/vq_packed.c), hardened against the device. Callers
 * see one interface; `layout` in struct vq says which ring is underneath.
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
 * The packed ring (VIRTIO_F_RING_PACKED) is one array of descriptors both
 * sides write in turn, plus two 4-byte event suppression structures:
 *
 *   descriptor ring (16 B each)    driver writes available, device used
 *   +------+-----+----+-------+
 *   | addr | len | id | flags |  x size; flags carry AVAIL (bit 7), USED (15)
 *   +------+-----+----+-------+
 *   driver event suppression       driver writes: interrupt me? (off_wrap, flags)
 *   device event suppression       device writes: notify me?    (off_wrap, flags)
 *
 * Each side keeps a wrap counter that flips on every pass over the ring; a
 * descriptor is available when AVAIL == the driver's counter and USED is
 * not, used when both equal it (2.8.1). A chain is consecutive descriptors
 * with NEXT; the device writes one used descriptor (buffer id, length) per
 * chain and skips the rest. The same distrust applies: a used descriptor
 * whose flags disagree with the wrap counter, an id beyond the queue or not
 * in flight, a length beyond what was writable, event suppression flags or
 * offsets outside the spec break the queue with the reason.
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

/* Transport feature bits that concern the ring (virtio 1.2, 6). */
#define VQ_F_INDIRECT_DESC 28
#define VQ_F_EVENT_IDX 29
#define VQ_F_RING_PACKED 34

/* Packed ring (2.8.13, 2.8.14). */
#define VQ_PDESC_F_AVAIL (1 << 7)
#define VQ_PDESC_F_USED (1 << 15)
#define VQ_EVENT_F_ENABLE 0
#define VQ_EVENT_F_DISABLE 1
#define VQ_EVENT_F_DESC 2 /* only with EVENT_IDX: at off_wrap */
#define VQ_EVENT_WRAP (1 << 15)

enum vq_layout { VQ_SPLIT, VQ_PACKED };

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

struct vq_pdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;    /* buffer id: the driver's, echoed in the used descriptor */
	uint16_t flags; /* NEXT, WRITE, INDIRECT, AVAIL, USED */
};

struct vq_event {
	uint16_t off_wrap; /* descriptor offset (bits 0-14) and wrap counter (15) */
	uint16_t flags;    /* VQ_EVENT_F_* */
};
/* An event suppression structure as one 32-bit word (off_wrap low, flags
 * high), read and written at once so neither side sees half an update;
 * may_alias because it is the same memory as struct vq_event. */
typedef uint32_t __attribute__((may_alias)) vq_event_word;

/* One piece of a buffer: physical address and length. */
struct vq_seg {
	uint64_t addr;
	uint32_t len;
};

/* What the driver remembers about a posted buffer, by head index (split)
 * or buffer id (packed). */
struct vq_shadow {
	void *token;     /* NULL: not an outstanding head */
	uint16_t ndesc;  /* descriptors in the chain (1 when indirect) */
	uint32_t in_len; /* bytes the device may write */
};

struct vq {
	uint16_t index, size;
	enum vq_layout layout;
	bool indirect, event_idx;
	struct vq_desc *desc;     /* split */
	struct vq_avail *avail;
	struct vq_used *used;
	struct vq_pdesc *pdesc;   /* packed */
	struct vq_event *driver_event, *device_event;
	struct vq_desc *indirect_tables; /* size tables of max_indirect entries, or NULL */
	uint16_t max_indirect;

	struct vq_shadow *shadow; /* size entries */
	uint16_t *next;           /* the driver's own free list and chains (split),
				     free buffer ids (packed) */
	uint16_t free_head, num_free, in_flight;
	/* packed: next descriptor to fill / to read back, their wrap counters,
	 * descriptors added since the last notification check */
	uint16_t next_avail, next_used, added_since_kick;
	bool avail_wrap, used_wrap;
	uint16_t avail_idx;       /* what the driver last published */
	uint16_t kicked_idx;      /* avail_idx at the last notification check */
	uint16_t last_used;       /* next used entry to consume */
	bool callbacks;           /* interrupts wanted */

	bool broken;
	char broken_reason[160];
	uint64_t added, completed;
};

/* Bytes of split-ring memory (16-byte aligned, physically contiguous) for `size`. */
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

/*
 * For transports: the ring feature bits this driver can use (INDIRECT_DESC,
 * EVENT_IDX, and RING_PACKED unless `allow_packed` is false), to offer
 * alongside the device's own bits; then, once negotiated, the queue shape
 * the features ask for, the memory it needs (one physically contiguous,
 * 64-byte aligned block: ring, then indirect tables) and its set-up there.
 */
struct vq_config {
	enum vq_layout layout;
	bool event_idx;
	uint16_t max_indirect; /* 0: no indirect descriptors */
	size_t used_align;     /* split: the used ring's alignment; 0: 64 (legacy PCI: 4096) */
};
uint64_t vq_driver_features(bool allow_packed);
struct vq_config vq_config_for(uint64_t negotiated, uint16_t max_indirect);
size_t vq_mem_bytes(const struct vq_config *c, uint16_t size);
/* Returns what vq_init / vq_init_packed return. */
int vq_setup(struct vq *vq, const struct vq_config *c, uint16_t index, uint16_t size, void *mem);

/* The packed ring's memory and set-up, as vq_ring_bytes / vq_init; any
 * size in 1..32768 (no power of two needed, 2.8). */
size_t vq_packed_ring_bytes(uint16_t size);
int vq_init_packed(struct vq *vq, uint16_t index, uint16_t size, void *ring, bool event_idx,
		   void *indirect_mem, uint16_t max_indirect);

/* "split" or "packed". */
const char *vq_layout_name(const struct vq *vq);

/* Physical addresses of the three parts, for the transport's registers
 * (queue_desc, queue_driver, queue_device). Split: descriptor table,
 * available ring, used ring. Packed: descriptor ring, driver event
 * suppression, device event suppression. */
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
