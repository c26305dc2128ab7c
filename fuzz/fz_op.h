/*
 * fz_op: one operation of a device-fuzzing program, and its text form.
 *
 * In fuzz mode (fuzz/devfuzz.h) blimp drives the virtio-balloon device with
 * programs of these operations. Every executed operation is printed on
 * serial as "fz <text>", and the same text read back (fuzz.replay, the `fz`
 * shell command) re-runs it exactly: the text carries every value, including
 * which descriptors a buffer uses, so a replay needs no generator.
 *
 *   prog N valid|bad            a program starts (its oracles are reset)
 *   reset                       status 0, then wait until it reads 0
 *   cw OFF W VAL / cr OFF W     common-configuration write / read (W: 1 2 4 8)
 *   dw OFF W VAL / dr OFF W     device-configuration write / read
 *   ww BAR OFF LEN VAL          PCI configuration window (VIRTIO_PCI_CAP_PCI_CFG)
 *   wr BAR OFF LEN                 write / read
 *   qsetup Q SIZE               select Q, set its size and rings, enable it
 *   add Q d=I[,I..] [ind] [indlen=N] [loop] [next=N] [head=N] [hide] SEG..
 *                               write a descriptor chain (or one indirect
 *                               table) and put it in the available ring
 *   avail Q N                   move the available index by N, no entries
 *   kick Q                      notify Q
 *   wait Q MS                   poll Q's used ring up to MS milliseconds
 *   check                       the program's oracles; it ends
 *
 * virtio-mmio (the balloon on microvm, version 2 or legacy version 1):
 *   mw OFF W VAL / mr OFF W     mmio register write / read (W: 1 2 4 8); the
 *                               ring addresses (v2 0x80-0xa7) are written by
 *                               qsetup and qaddr only, and v1's GuestPageSize,
 *                               QueueNum, QueueAlign, QueuePFN and v2's
 *                               QueueReady only where the rings the device
 *                               would then use stay inside the ring memory
 *   qaddr Q DESC DRV DEV        select Q and write its three ring addresses
 *                               (v2) as offsets into Q's ring memory, whatever
 *                               state the queue is in; nothing else
 *
 * Packed rings (VIRTIO_F_RING_PACKED negotiated: qsetup lays the queue out
 * packed, `wait` reads used descriptors):
 *   padd Q at=SLOT id=ID wrap=W [av=A] [us=U] [rev] [ind] [indlen=N] [nest] SEG..
 *                               write one descriptor per segment (one
 *                               indirect table with `ind`) from SLOT on,
 *                               flipping W past the ring's end, every one
 *                               carrying buffer id ID; AVAIL/USED are W/!W
 *                               unless av=/us= say otherwise for the first
 *                               (the flags that make the buffer available);
 *                               `rev` writes the first descriptor first, so
 *                               the chain is available before its tail;
 *                               `nest` marks the table's entries INDIRECT
 *   pevent Q FLAGS OFFWRAP      write the driver event suppression structure
 *
 * A segment SEG is "r:" (device-readable) or "w:" (device-writable), then
 *   pfns=RUN[,RUN..]  a buffer of le32 frame numbers; RUN is aN+C (C frames
 *                     from arena frame N) or pN+C (from absolute frame N)
 *   range=aOFF+LEN    guest memory itself: LEN bytes at arena byte OFF, or
 *   range=pADDR+LEN   at physical ADDR (free page reporting and hinting)
 *   stats=N           N statistics entries (tag, le64 value)
 *   id=VAL/LEN        a command id: LEN bytes of le32 VAL (zero-extended)
 *   zero=LEN          LEN zero bytes
 * `hide` keeps the buffer's frames out of the "exposed" set: only for tests
 * of the pattern oracle itself (the generator never writes it).
 *
 * This file is compiled into the kernel and into the host tests.
 */
#ifndef BLIMP_FZ_OP_H
#define BLIMP_FZ_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FZ_MAX_SEGS 8       /* segments (descriptors) in one add */
#define FZ_MAX_RUNS 8       /* runs in one pfns= segment */
#define FZ_LINE_MAX 240     /* one op's text, so it fits a shell line */
#define FZ_NONE (-1)

enum fz_kind {
	FZ_PROG, FZ_RESET, FZ_CW, FZ_CR, FZ_DW, FZ_DR, FZ_WW, FZ_WR,
	FZ_QSETUP, FZ_ADD, FZ_AVAIL, FZ_KICK, FZ_WAIT, FZ_CHECK,
	FZ_MW, FZ_MR, FZ_QADDR, FZ_PADD, FZ_PEVENT,
};

enum fz_seg_kind { FZ_SEG_PFNS, FZ_SEG_RANGE, FZ_SEG_STATS, FZ_SEG_ID, FZ_SEG_ZERO };

/* A run of frames (pfns=) or of bytes (range=), arena-relative or absolute. */
struct fz_run {
	bool arena;
	uint64_t start;
	uint64_t count; /* frames for pfns=, bytes for range= */
};

struct fz_seg {
	bool writable;
	uint8_t kind;   /* enum fz_seg_kind */
	uint8_t n_runs; /* pfns= and range= (range= has exactly one) */
	struct fz_run run[FZ_MAX_RUNS];
	uint32_t value; /* id= */
	uint32_t len;   /* id=, zero= bytes; stats= entries */
};

struct fz_op {
	uint8_t kind;      /* enum fz_kind */
	uint16_t q;        /* queue, BAR (ww/wr) */
	uint64_t off;      /* cw cr dw dr ww wr mw mr: offset; prog: number; avail: delta; wait: ms;
			      qsetup: size; pevent: off_wrap */
	uint32_t width;    /* cw cr dw dr mw mr: access width; ww wr: window length */
	uint64_t value;    /* cw dw ww mw: value written; prog: 1 if valid; pevent: flags */
	uint32_t qoff[3];  /* qaddr: desc, driver, device offsets in the ring memory */
	/* padd (with ind, indlen and the segments of add) */
	uint16_t slot, bid;
	bool wrap, rev, nest;
	int8_t av, us;     /* FZ_NONE: as the wrap counter says */
	/* add */
	uint8_t n_desc;
	uint16_t desc[FZ_MAX_SEGS];
	bool ind, loop, hide;
	int32_t indlen, next, head; /* FZ_NONE when not given */
	uint8_t n_segs;
	struct fz_seg seg[FZ_MAX_SEGS];
};

/* An op with every optional field unset. */
void fz_op_init(struct fz_op *op, enum fz_kind kind);

/*
 * Parse one op's text (without the "fz " prefix). Returns 0, or -EINVAL
 * with a sentence in `why` naming the token at fault.
 */
int fz_parse(const char *text, struct fz_op *op, char *why, size_t why_len);

/* Write an op's text into buf; returns its length, or -ENOSPC if it does
 * not fit in len (FZ_LINE_MAX always does for ops fz_parse accepts). */
int fz_format(const struct fz_op *op, char *buf, size_t len);

/* Frames named by a pfns= segment. */
uint64_t fz_seg_frames(const struct fz_seg *s);

#endif
