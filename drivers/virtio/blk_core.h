/*
 * blk_core: virtio-blk requests (virtio 1.2, 5.2), without the kernel.
 *
 * A request is one buffer of three parts on the single request queue:
 *
 *   device-readable        device-readable or -writable       device-writable
 *   +------------------+   +--------------------------+       +--------+
 *   | type | 0 | sector|   | data: 0 .. N segments    |       | status |
 *   | le32 le32 le64   |   | (write: readable,        |       |  1 B   |
 *   +------------------+   |  read: writable)         |       +--------+
 *        16 bytes          +--------------------------+
 *
 * This file decides everything about them: the device configuration
 * (capacity in 512-byte sectors, blk_size, seg_max, size_max, read-only),
 * which requests may go at all (beyond capacity, misaligned to the block
 * size, a write to a read-only device: refused before the device sees them),
 * a table of up to BLK_MAX_INFLIGHT requests in flight keyed by the token
 * each was posted with, and their completion. The kernel glue
 * (drivers/virtio/blk.c) supplies the queue, DMA memory and a notify
 * callback; host tests and the fuzz harness supply a simulated device
 * (tests/unit/virtio_sim.c). One source for all three.
 *
 * The device is not trusted. Each slot owns its header, status byte and
 * data buffer (DMA memory the caller gives once); callers' buffers are
 * copied in and out, so a request abandoned after a timeout keeps its
 * memory until the device returns it, and a late or lying device can never
 * write into memory that was reused. A completion is checked: the token
 * must be a slot in flight (the virtqueue checks the head first), the used
 * length must cover what the device claims to have written (data + status
 * for a successful read, the status byte otherwise), and the status byte
 * must be OK, IOERR or UNSUPP (5.2.6). Anything else is a lie: the request
 * fails with -EPROTO, the device is marked broken with the reason, every
 * request in flight fails with -EIO and every later call fails with -EIO.
 */
#ifndef BLIMP_BLK_CORE_H
#define BLIMP_BLK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "drivers/virtio/virtqueue.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

/* Device configuration offsets (5.2.4), little-endian. */
#define BLK_CFG_CAPACITY 0  /* le64, 512-byte sectors */
#define BLK_CFG_SIZE_MAX 8  /* le32, bytes per segment */
#define BLK_CFG_SEG_MAX 12  /* le32, data segments per request */
#define BLK_CFG_BLK_SIZE 20 /* le32, bytes */
#define BLK_CFG_BYTES 24    /* what blk_parse_config reads */

/* Request types and status (5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define BLK_SECTOR 512
#define BLK_MAX_INFLIGHT 8
#define BLK_MAX_SEGS 16                /* data segments per request, our side */
#define BLK_REQ_BYTES (64 * 1024)      /* data buffer per slot */
#define BLK_STATUS_UNSET 0xff          /* written before posting */

struct blk_config {
	uint64_t capacity;       /* 512-byte sectors */
	uint32_t blk_size;       /* bytes, 512 unless VIRTIO_BLK_F_BLK_SIZE */
	uint32_t seg_max;        /* data segments per request (BLK_MAX_SEGS unless offered) */
	uint32_t size_max;       /* bytes per segment (BLK_REQ_BYTES unless offered) */
	bool ro, flush;
};

/* The header and status of one slot, in DMA memory. */
struct blk_hdr_mem {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
	uint8_t status;
	uint8_t pad[15];
};

enum blk_slot_state { BLK_FREE, BLK_INFLIGHT, BLK_DONE, BLK_ABANDONED };

struct blk_slot {
	enum blk_slot_state state;
	uint32_t type;
	uint64_t sector;
	uint32_t bytes;      /* data bytes */
	int result;          /* BLK_DONE: 0 or a negative errno */
	uint64_t token;      /* what it was posted with: slot + 1 + gen * BLK_MAX_INFLIGHT */
	struct blk_hdr_mem *hdr;
	uint8_t *data;       /* BLK_REQ_BYTES */
};

struct blk_stats {
	uint64_t requests, reads, writes, flushes;
	uint64_t bytes_read, bytes_written;
	uint64_t errors;     /* requests that ended with an error, lies and timeouts included */
	uint64_t lies;       /* completions that broke the rules */
	uint64_t refused;    /* requests refused before reaching the device */
	uint64_t late;       /* completions of abandoned requests */
	uint64_t max_inflight; /* the most requests the device held at once */
};

/* Side effects, supplied by whoever runs the core; `ctx` is theirs. */
struct blk_ops {
	void (*notify)(void *ctx);                 /* kick the request queue */
	void (*say)(void *ctx, const char *msg);   /* a refusal or lie, one line */
};

struct blk {
	struct vq *vq;
	struct blk_config cfg;
	uint32_t max_sectors;  /* per request: BLK_REQ_BYTES within seg_max x size_max */
	struct blk_slot slot[BLK_MAX_INFLIGHT];
	uint64_t gen;
	unsigned inflight;     /* slots INFLIGHT or ABANDONED: the device's */
	struct blk_stats st;
	const struct blk_ops *ops;
	void *ctx;
	bool broken;
	char broken_reason[160];
};

/*
 * Parse `len` bytes of device configuration (read from offset 0) under the
 * negotiated `features`. Returns 0 with *cfg filled, or -EINVAL with a reason
 * in why[]: configuration too short for an offered field, capacity whose
 * bytes overflow 64 bits, blk_size not a power of two in 512..65536, seg_max
 * or size_max 0, size_max below 512, or seg_max x size_max too small for one
 * block.
 */
int blk_parse_config(const uint8_t *raw, size_t len, uint64_t features, struct blk_config *cfg,
		     char *why, size_t why_len);

/* Bytes of DMA memory blk_core_init needs for headers / for data. */
#define BLK_HDR_MEM_BYTES (BLK_MAX_INFLIGHT * sizeof(struct blk_hdr_mem))
#define BLK_DATA_MEM_BYTES (BLK_MAX_INFLIGHT * (size_t)BLK_REQ_BYTES)

/* Set up `b` over a started queue with a parsed configuration and DMA
 * memory (hdr_mem: BLK_HDR_MEM_BYTES, 16-byte aligned; data_mem:
 * BLK_DATA_MEM_BYTES). Returns 0 or -EINVAL. */
int blk_core_init(struct blk *b, struct vq *vq, const struct blk_config *cfg, void *hdr_mem,
		  void *data_mem, const struct blk_ops *ops, void *ctx);

/*
 * Check whether sectors [sector, sector + nsect) may be read or written (or
 * a flush, nsect 0, sent), in any number of requests: 0, -EIO (broken),
 * -EROFS (write to a read-only device), -ERANGE (beyond capacity), -EINVAL
 * (unknown type, no sectors, not whole blocks, sectors for a flush).
 * Refusals are said and counted.
 */
int blk_core_check(struct blk *b, uint32_t type, uint64_t sector, uint32_t nsect);

/*
 * Post one request of `nsect` sectors at `sector` (a write copies `src` into
 * the slot first; reads and flushes ignore it). Returns the slot index (>= 0),
 * blk_core_check's refusals, -EINVAL (more than max_sectors), -EBUSY (no free slot, or the queue is full:
 * reap and retry) or vq_add's -EIO. The caller kicks nothing: ops->notify
 * runs here.
 */
int blk_core_submit(struct blk *b, uint32_t type, uint64_t sector, uint32_t nsect, const void *src);

/*
 * Take every completed buffer off the queue and judge it. Returns the number
 * of requests completed, or -EIO once the device broke a rule (then every
 * slot in flight is DONE with -EIO, abandoned ones freed).
 */
int blk_core_reap(struct blk *b);

/* Is slot `i` DONE (its result ready)? */
bool blk_core_done(const struct blk *b, int i);

/* Collect a DONE slot: a successful read copies its data into `dst`.
 * Frees the slot; returns the request's result. */
int blk_core_finish(struct blk *b, int i, void *dst);

/* Give up on an INFLIGHT slot (timeout): it stays the device's until it is
 * returned, then it is freed and counted late. A DONE slot is freed. */
void blk_core_abandon(struct blk *b, int i);

#endif
