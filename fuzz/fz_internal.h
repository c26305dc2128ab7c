/*
 * fz_internal: what the executor's three files share (fz_exec.c: init, the
 * registers of modern PCI, split rings, the oracles; fz_mmio.c: virtio-mmio
 * registers and the model that keeps rings inside their memory;
 * fz_packed.c: packed rings). Not for the generator or anyone else.
 */
#ifndef BLIMP_FZ_INTERNAL_H
#define BLIMP_FZ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "devfuzz.h"

struct virtio_dev;

/* Each queue's ring memory (RING_BYTES, 64 KiB aligned): the descriptors
 * first, then where split rings put the available and used rings and
 * packed ones the driver and device event suppression structures. */
#define RING_AVAIL_OFF (16 * FZ_RING_MAX)      /* desc table first, 16 KiB */
#define RING_USED_OFF (RING_AVAIL_OFF + 4096)  /* avail ring, 2 KiB + 6 */
/* 64 KiB a ring: what the three areas need at FZ_RING_MAX entries (28 KiB)
 * with room for qaddr's offsets up to QADDR_MAX and v1's odd alignments. */
#define RING_BYTES (64u << 10)
#define QADDR_MAX 0x9000                       /* + 16 KiB + 8 KiB + 8 still inside */

struct fz_ring {
	uint8_t *mem;
	uint16_t size, avail_idx, used_seen, notify_off;
	uint32_t avail_off, used_off;           /* split: where the device was told they are */
	bool busy[FZ_RING_MAX];
	uint8_t chain_n[FZ_RING_MAX];           /* descriptors of the chain headed here */
	uint16_t chain[FZ_RING_MAX][FZ_MAX_SEGS];
	/* packed: the model after the last padd, and the reading side */
	bool packed, used_wrap;
	uint16_t next_used, in_flight;          /* descriptors made available, not yet used */
	uint8_t id_n[FZ_RING_MAX];              /* descriptors of buffer id i in flight */
};

extern struct fz_ring fz_rings[FZ_QUEUES];
extern struct virtio_dev *fz_vd;
extern uint8_t fz_transport;        /* FZ_T_* */
extern uint64_t fz_driver_features; /* as last written: decides packed at qsetup */

/* The running program, for its oracles. */
struct fz_prog {
	uint64_t number, op_index, needs_reset_op, used, bad_used;
	bool valid;
};
extern struct fz_prog fz_prog;

/* fz_exec.c */
uint64_t fz_reg_read(volatile uint8_t *p, unsigned width);
void fz_reg_write(volatile uint8_t *p, unsigned width, uint64_t v);
void *fz_scratch_alloc(size_t bytes);
/* One segment's bytes; 0 with addr/len set, or -EINVAL with why. */
int fz_build_seg(uint16_t q, const struct fz_seg *s, bool hide, uint64_t *addr, uint32_t *len,
		 char *why, size_t why_len);
/* Every segment of an add or padd op, into addr[0..n_segs) and len[]. */
int fz_build_segs(const struct fz_op *op, uint64_t *addr, uint32_t *len, char *why, size_t why_len);
void fz_finding(const char *kind, const char *fmt_detail, uint64_t a, uint64_t b);

/* fz_mmio.c: the ops return 0, or -EINVAL with why (nothing written) */
void fz_mmio_init(void);
void fz_mmio_forget(void);
int fz_mmio_check_write(uint64_t off, unsigned w, uint64_t v, char *why, size_t why_len);
void fz_mmio_reg_write(uint64_t off, unsigned w, uint64_t v);
int fz_mmio_qsetup(const struct fz_op *op, struct fz_ring *r, uint64_t base, char *why, size_t why_len);
int fz_mmio_qaddr(const struct fz_op *op, char *why, size_t why_len);
int fz_mmio_mw(const struct fz_op *op, char *why, size_t why_len);
int fz_mmio_mr(const struct fz_op *op, char *why, size_t why_len);

/* fz_packed.c */
int fz_packed_add(const struct fz_op *op, char *why, size_t why_len);
void fz_packed_wait(const struct fz_op *op, struct fz_ring *r);
int fz_packed_event(const struct fz_op *op, char *why, size_t why_len);

#endif
