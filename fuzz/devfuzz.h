/*
 * devfuzz: blimp fuzzes the virtio-balloon device (guest side, real QEMU).
 *
 * With `fuzz` on the command line the balloon driver stays out and this
 * takes the device instead, on modern PCI or virtio-mmio (v2 or legacy v1),
 * split or packed rings. It runs programs of operations (fz_op.h): a
 * bring-up, valid traffic mixed with malformed traffic, then the oracles.
 * Between programs the device is reset and brought up again.
 *
 *   fuzz                 run generated programs (fuzz.seed=, fuzz.ops=)
 *   fuzz.seed=N          the generator's one seed (printed first; default 1)
 *   fuzz.ops=N           operations to run in all (default 2000)
 *   fuzz.bad=PERCENT     share of programs with malformed operations (default 70)
 *   fuzz.replay          no generator: run the ops the host sends with the
 *                        `fz` shell command, one line each
 *
 * Memory the device may touch is confined: buffers live in a scratch area,
 * frames named by programs lie in a 32 MiB arena, and absolute frames or
 * addresses are accepted only outside the guest's RAM. The executor refuses
 * anything else (fz_exec), so neither a generated nor an edited program can
 * make the host discard memory the kernel uses.
 *
 * Oracles (host-side ones, QEMU crashing or hanging, are the host tool's):
 *   - DEVICE_NEEDS_RESET, read back after every operation: recorded; a
 *     finding when the program was valid;
 *   - arena frames never exposed to the device (in an inflate buffer, a
 *     report or hint range) must still hold their patterns at `check`;
 *   - used-ring entries the device writes must name a buffer in flight.
 */
#ifndef BLIMP_DEVFUZZ_H
#define BLIMP_DEVFUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include "fuzz/fz_op.h"

#define FZ_ARENA_ORDER 13                     /* 32 MiB, one allocator block */
#define FZ_ARENA_FRAMES (1u << FZ_ARENA_ORDER)
#define FZ_GUARD_FRAMES 512                   /* the arena's last 2 MiB: only overrunning ranges name it */
#define FZ_QUEUES 8                           /* ring memory slots (queue index mod 8) */
#define FZ_RING_MAX 1024                      /* the largest queue size QEMU accepts */
#define FZ_SCRATCH_BYTES (2u << 20)           /* a program's buffers */

/* What the executor tells the generator about the device. */
struct fz_state {
	bool up;                  /* DRIVER_OK written and no NEEDS_RESET seen */
	bool needs_reset;         /* seen in this program */
	uint64_t device_features; /* read at the last bring-up */
	uint16_t num_queues;
	uint32_t device_cfg_len;
	uint8_t transport;                /* 0 modern PCI, 1 mmio v2, 2 mmio v1 (legacy) */
	uint16_t queue_size[FZ_QUEUES];   /* as set up, 0 if not */
	bool packed[FZ_QUEUES];           /* laid out packed at qsetup */
	uint16_t pnext[FZ_QUEUES];        /* packed: the slot after the last padd, */
	bool pwrap[FZ_QUEUES];            /* and its wrap counter */
	uint32_t ring_pfn[FZ_QUEUES];     /* each ring memory's first frame (v1's QueuePFN) */
	uint16_t free_desc[FZ_QUEUES];    /* descriptors not in flight */
	uint64_t ram_end_pfn;             /* first frame above all usable RAM */
	uint64_t arena_pfn;
	bool inflated[FZ_ARENA_FRAMES];   /* sent on the inflate queue, not deflated */
	bool stats_in_flight;
};

extern struct fz_state fz_state;

/* Fuzz mode, when the command line asks for it: true if it took the
 * balloon device (then balloon_init must not run). */
bool devfuzz_start(void);

/* Take the balloon device, set up the arena and scratch; 0 or -errno:
 * -ENODEV (no balloon), -EPROTONOSUPPORT (the balloon is on legacy PCI,
 * whose I/O registers the ops do not write), -ENOMEM. */
int fz_exec_init(void);

/* Run one op and print it ("fz <text>") with its results ("fz> ..."). A
 * refused op prints why and returns -EINVAL; nothing is sent. */
int fz_exec(const struct fz_op *op);

/* The arena's patterns derive from this (the run's seed). */
void fz_exec_set_pattern_seed(uint64_t seed);

/* Pick `n` free descriptor indices of queue q (lowest first); -ENOSPC if
 * fewer are free. */
int fz_exec_pick_desc(uint16_t q, unsigned n, uint16_t *out);

/* A buffer id of packed queue q not in flight (lowest), or -ENOSPC. */
int fz_exec_pick_id(uint16_t q);

#define FZ_T_PCI 0
#define FZ_T_MMIO 1
#define FZ_T_MMIO1 2

/* Counters for the summary event. */
struct fz_counters {
	uint64_t ops, refused, programs, valid_programs, needs_reset_valid, needs_reset_bad;
	uint64_t pattern_errors, bad_used, used, findings;
};
extern struct fz_counters fz_counters;

/* The generator: the next op of the running program into *op. */
void fz_gen_init(uint64_t seed, unsigned bad_percent);
void fz_gen_next(struct fz_op *op);

#endif
