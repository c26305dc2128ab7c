/*
 * fz_gen: the program generator of fuzz mode.
 *
 * All randomness comes from one splitmix64 stream seeded by fuzz.seed, and
 * the generator looks at nothing but that stream and what the executor
 * learned from the device (fz_state), so a seed gives the same programs on
 * the same QEMU. A program is: `prog`, a bring-up (reset, features, queues,
 * DRIVER_OK), a body of families of operations, `check`. A valid program
 * uses only what the virtio spec allows; a bad one mixes in malformed
 * families drawn from what the spec and QEMU's checks forbid (the list is
 * `bad_families` below; docs/fuzzing.md explains each).
 *
 * The registers are the transport's (modern PCI's common configuration,
 * or the virtio-mmio block, v2 or legacy v1), and a queue is written as a
 * split or a packed ring as negotiated; the malformed families follow:
 * bad_packed for packed rings, bad_mmio for mmio's registers.
 */
#include <string.h>
#include "devfuzz.h"
#include "drivers/virtio/balloon_core.h"
#include "drivers/virtio/virtio_mmio.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtio_pci_regs.h"
#include "kernel/prng.h"

#define MAIN_FRAMES (FZ_ARENA_FRAMES - FZ_GUARD_FRAMES)
#define PENDING_MAX 64

static struct {
	uint64_t rng;
	unsigned bad_percent;
	uint64_t prog_no;
	bool valid;
	enum { G_START, G_NEGOTIATE, G_QUEUES, G_BODY } phase;
	unsigned body_left;
	uint64_t features;
	int q_stats, q_hint, q_report; /* -1 when not negotiated */
	struct fz_op pending[PENDING_MAX];
	unsigned n_pending, next_pending;
} G;

static uint64_t rnd(void) { return prng_splitmix64(&G.rng); }

static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static bool chance(unsigned percent) { return below(100) < percent; }

static struct fz_op *push(enum fz_kind kind)
{
	struct fz_op *op = &G.pending[G.n_pending++];
	fz_op_init(op, kind);
	return op;
}

static void push_reg(enum fz_kind kind, uint64_t off, unsigned width, uint64_t value)
{
	struct fz_op *op = push(kind);
	op->off = off;
	op->width = width;
	op->value = value;
}

static void push_q(enum fz_kind kind, uint16_t q, uint64_t arg)
{
	struct fz_op *op = push(kind);
	op->q = q;
	op->off = arg;
}

static bool has(unsigned bit) { return G.features & (1ULL << bit); }

/* ---------------------------------------------------------------- transport registers */

static bool on_mmio(void) { return fz_state.transport != FZ_T_PCI; }
static bool on_legacy(void) { return fz_state.transport == FZ_T_MMIO1; }

static void set_status(uint8_t v)
{
	if (on_mmio())
		push_reg(FZ_MW, VIRTIO_MMIO_STATUS, 4, v);
	else
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DEVICE_STATUS, 1, v);
}

static void get_status(void)
{
	if (on_mmio())
		push_reg(FZ_MR, VIRTIO_MMIO_STATUS, 4, 0);
	else
		push_reg(FZ_CR, VIRTIO_PCI_COMMON_DEVICE_STATUS, 1, 0);
}

static void read_device_features(unsigned sel)
{
	if (on_mmio()) {
		push_reg(FZ_MW, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 4, sel);
		push_reg(FZ_MR, VIRTIO_MMIO_DEVICE_FEATURES, 4, 0);
	} else {
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT, 4, sel);
		push_reg(FZ_CR, VIRTIO_PCI_COMMON_DEVICE_FEATURE, 4, 0);
	}
}

static void write_driver_features(unsigned sel, uint32_t v)
{
	if (on_mmio()) {
		push_reg(FZ_MW, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 4, sel);
		push_reg(FZ_MW, VIRTIO_MMIO_DRIVER_FEATURES, 4, v);
	} else {
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 4, sel);
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DRIVER_FEATURE, 4, v);
	}
}

/* DRIVER_OK's status: legacy has no FEATURES_OK. */
static uint8_t ok_status(void) { return on_legacy() ? 0x07 : 0x0f; }

/* ---------------------------------------------------------------- buffers */

/* An add with one segment on queue q, descriptors picked among the free ones
 * (any ones when `anywhere`). NULL when the queue has no room. */
static struct fz_op *push_add(uint16_t q, unsigned segs, bool anywhere)
{
	uint16_t size = fz_state.queue_size[q % FZ_QUEUES];
	if (size == 0)
		return NULL;
	bool ind = has(VIRTIO_F_RING_INDIRECT_DESC) && (segs > 1 ? chance(50) : chance(20));
	unsigned ndesc = ind ? 1 : segs;
	if (fz_state.packed[q % FZ_QUEUES]) {
		/* in order from the executor's next slot, a free buffer id */
		int id = fz_exec_pick_id(q);
		if (fz_state.free_desc[q % FZ_QUEUES] < ndesc || id < 0)
			return NULL;
		struct fz_op *op = push(FZ_PADD);
		op->q = q;
		op->slot = fz_state.pnext[q % FZ_QUEUES];
		op->wrap = fz_state.pwrap[q % FZ_QUEUES];
		op->bid = (uint16_t)id;
		op->ind = ind;
		op->n_segs = (uint8_t)segs;
		return op;
	}
	struct fz_op tmp;
	fz_op_init(&tmp, FZ_ADD);
	if (anywhere) {
		for (unsigned i = 0; i < ndesc; i++)
			tmp.desc[i] = (uint16_t)below(size);
	} else if (fz_exec_pick_desc(q, ndesc, tmp.desc) < 0) {
		return NULL;
	}
	struct fz_op *op = push(FZ_ADD);
	*op = tmp;
	op->q = q;
	op->ind = ind;
	op->n_desc = (uint8_t)ndesc;
	op->n_segs = (uint8_t)segs;
	return op;
}

/* Runs of arena frames whose inflated state is `inflated`, up to `want`. */
static void pick_frames(struct fz_seg *s, bool inflated, unsigned want)
{
	s->kind = FZ_SEG_PFNS;
	static bool taken[MAIN_FRAMES];
	memset(taken, 0, sizeof(taken));
	unsigned got = 0;
	for (unsigned tries = 0; tries < 16 && s->n_runs < 4 && got < want; tries++) {
		uint32_t f = (uint32_t)below(MAIN_FRAMES), n = 0;
		while (f + n < MAIN_FRAMES && got + n < want && fz_state.inflated[f + n] == inflated && !taken[f + n]) {
			taken[f + n] = true;
			n++;
		}
		if (n)
			s->run[s->n_runs++] = (struct fz_run){ true, f, n };
		got += n;
	}
}

/* ---------------------------------------------------------------- valid families */

static void valid_inflate(void)
{
	struct fz_op *op = push_add(BALLOON_Q_INFLATE, 1, false);
	if (!op)
		return;
	pick_frames(&op->seg[0], false, chance(10) ? 1024 : 1 + (unsigned)below(128));
	if (op->seg[0].n_runs == 0) {
		G.n_pending--;
		return;
	}
	push_q(FZ_KICK, BALLOON_Q_INFLATE, 0);
	push_q(FZ_WAIT, BALLOON_Q_INFLATE, 50);
}

static void valid_deflate(void)
{
	struct fz_op *op = push_add(BALLOON_Q_DEFLATE, 1, false);
	if (!op)
		return;
	pick_frames(&op->seg[0], true, 1 + (unsigned)below(512));
	if (op->seg[0].n_runs == 0) {
		G.n_pending--;
		return;
	}
	push_q(FZ_KICK, BALLOON_Q_DEFLATE, 0);
	push_q(FZ_WAIT, BALLOON_Q_DEFLATE, 50);
}

static void valid_stats(void)
{
	if (G.q_stats < 0 || fz_state.stats_in_flight)
		return;
	struct fz_op *op = push_add((uint16_t)G.q_stats, 1, false);
	if (!op)
		return;
	op->seg[0].kind = FZ_SEG_STATS;
	op->seg[0].len = 10;
	push_q(FZ_KICK, (uint16_t)G.q_stats, 0);
}

/* Free 2 MiB blocks of the arena, none of whose frames is inflated. */
static unsigned pick_blocks(struct fz_seg *segs, unsigned want)
{
	unsigned n = 0;
	for (unsigned tries = 0; tries < 8 && n < want; tries++) {
		uint32_t b = (uint32_t)below(MAIN_FRAMES / 512);
		bool ok = true;
		for (unsigned f = b * 512; f < b * 512 + 512 && ok; f++)
			ok = !fz_state.inflated[f];
		for (unsigned i = 0; i < n && ok; i++)
			ok = segs[i].run[0].start != (uint64_t)b << 21;
		if (!ok)
			continue;
		segs[n].kind = FZ_SEG_RANGE;
		segs[n].writable = true;
		segs[n].n_runs = 1;
		segs[n].run[0] = (struct fz_run){ true, (uint64_t)b << 21, 2u << 20 };
		n++;
	}
	return n;
}

static void valid_report(void)
{
	if (G.q_report < 0)
		return;
	struct fz_seg segs[4];
	memset(segs, 0, sizeof(segs));
	unsigned n = pick_blocks(segs, 1 + (unsigned)below(4));
	if (!n)
		return;
	struct fz_op *op = push_add((uint16_t)G.q_report, n, false);
	if (!op)
		return;
	memcpy(op->seg, segs, n * sizeof(segs[0]));
	push_q(FZ_KICK, (uint16_t)G.q_report, 0);
	push_q(FZ_WAIT, (uint16_t)G.q_report, 50);
}

static void valid_config(void)
{
	static const uint8_t offs[] = { BALLOON_CFG_NUM_PAGES, BALLOON_CFG_ACTUAL, BALLOON_CFG_HINT_CMD_ID,
					BALLOON_CFG_POISON_VAL };
	uint64_t off = offs[below(has(VIRTIO_BALLOON_F_FREE_PAGE_HINT) || has(VIRTIO_BALLOON_F_PAGE_POISON) ? 4 : 2)];
	if (off + 4 > fz_state.device_cfg_len)
		return;
	if (off == BALLOON_CFG_ACTUAL && chance(50)) {
		unsigned held = 0;
		for (unsigned f = 0; f < FZ_ARENA_FRAMES; f++)
			held += fz_state.inflated[f];
		push_reg(FZ_DW, BALLOON_CFG_ACTUAL, 4, held);
	} else {
		push_reg(FZ_DR, off, 4, 0);
	}
}

static void valid_hint(void)
{
	if (G.q_hint < 0)
		return;
	struct fz_op *op = push_add((uint16_t)G.q_hint, 1, false);
	if (!op)
		return;
	op->seg[0].kind = FZ_SEG_ID;
	op->seg[0].value = 2 + (uint32_t)below(200);
	op->seg[0].len = 4;
	push_q(FZ_KICK, (uint16_t)G.q_hint, 0);
}

/* ---------------------------------------------------------------- malformed families */

static uint16_t any_queue(void)
{
	int qs[] = { BALLOON_Q_INFLATE, BALLOON_Q_DEFLATE, G.q_stats, G.q_hint, G.q_report };
	int q;
	do
		q = qs[below(5)];
	while (q < 0);
	return (uint16_t)q;
}

static void seg_frames_outside(struct fz_seg *s)
{
	uint64_t ram_end = fz_state.ram_end_pfn;
	/* beyond RAM, IOAPIC, LAPIC, q35's ECAM, HPET, the top of 4 GiB, the
	 * largest le32, above 4 GiB */
	const uint64_t pfns[] = { ram_end, ram_end + below(1u << 20), 0xfec00, 0xfee00, 0xb0000, 0xfed00,
				  0xfffff, 0xffffffff, 0x100000 + below(0x10000) };
	s->kind = FZ_SEG_PFNS;
	s->n_runs = (uint8_t)(1 + below(3));
	for (unsigned i = 0; i < s->n_runs; i++)
		s->run[i] = (struct fz_run){ false, pfns[below(sizeof(pfns) / sizeof(pfns[0]))], 1 + below(16) };
}

static void bad_pfns(void)
{
	uint16_t q = chance(70) ? BALLOON_Q_INFLATE : BALLOON_Q_DEFLATE;
	struct fz_op *op = push_add(q, 1, false);
	if (!op)
		return;
	struct fz_seg *s = &op->seg[0];
	switch (below(5)) {
	case 0: /* outside RAM, MMIO, ROM */
		seg_frames_outside(s);
		if (s->n_runs < FZ_MAX_RUNS && chance(50)) /* mixed with good ones */
			s->run[s->n_runs++] = (struct fz_run){ true, below(MAIN_FRAMES - 8), 1 + below(8) };
		break;
	case 1: /* the same frames twice in one buffer */
		s->kind = FZ_SEG_PFNS;
		s->run[0] = (struct fz_run){ true, below(MAIN_FRAMES - 64), 1 + below(64) };
		s->run[1] = s->run[0];
		s->n_runs = 2;
		break;
	case 2: /* deflating frames never inflated, inflating inflated ones */
		op->q = q = (uint16_t)(q ^ 1); /* inflate <-> deflate */
		if (fz_state.queue_size[q] == 0 || fz_state.packed[q] != (op->kind == FZ_PADD)) {
			G.n_pending--;
			return;
		}
		if (op->kind == FZ_PADD) { /* placed on the other queue's ring */
			int id = fz_exec_pick_id(q);
			op->slot = fz_state.pnext[q];
			op->wrap = fz_state.pwrap[q];
			op->bid = (uint16_t)(id < 0 ? 0 : id);
		}
		pick_frames(s, q == BALLOON_Q_INFLATE, 1 + (unsigned)below(128));
		if (!s->n_runs)
			s->run[s->n_runs++] = (struct fz_run){ true, below(MAIN_FRAMES), 1 };
		break;
	case 3: /* an empty buffer, or one of garbage */
		s->kind = FZ_SEG_ZERO;
		s->len = chance(50) ? 0 : (uint32_t)below(4096);
		break;
	default: /* huge: 64 Ki frame numbers, nearly all beyond RAM */
		s->kind = FZ_SEG_PFNS;
		s->n_runs = 8;
		for (unsigned i = 0; i < 7; i++)
			s->run[i] = (struct fz_run){ false, fz_state.ram_end_pfn + below(1u << 20), 8192 };
		s->run[7] = (struct fz_run){ true, below(MAIN_FRAMES - 8), 8192 - 8 * below(2) };
		s->run[7].count = 1 + below(8);
	}
	if (chance(20))
		s->writable = true; /* write-only where read-only is expected */
	push_q(FZ_KICK, q, 0);
	push_q(FZ_WAIT, q, 20);
}

/* The ring's own rules: indirect lengths, loops, next and head out of range. */
static void bad_chain(void)
{
	uint16_t q = any_queue();
	uint16_t size = fz_state.queue_size[q % FZ_QUEUES];
	unsigned segs = 1 + (unsigned)below(3);
	struct fz_op *op = push_add(q, segs, chance(30));
	if (!op)
		return;
	for (unsigned i = 0; i < segs; i++) {
		op->seg[i].kind = FZ_SEG_PFNS;
		op->seg[i].n_runs = 1;
		op->seg[i].run[0] = (struct fz_run){ true, below(MAIN_FRAMES - 4), 1 + below(4) };
	}
	switch (below(4)) {
	case 0:
		op->ind = true;
		op->n_desc = 1;
		{
			const int32_t lens[] = { 0, 1, 15, 17, 4096, (int32_t)(segs * 16 + 8), 16 * 1024 };
			op->indlen = lens[below(sizeof(lens) / sizeof(lens[0]))];
		}
		break;
	case 1:
		op->loop = true;
		break;
	case 2:
		op->next = chance(50) ? 0xffff : (int32_t)(size + below(64));
		break;
	default:
		op->head = chance(50) ? 0xffff : (int32_t)(size + below(64));
	}
	if (!op->ind && op->n_desc != op->n_segs) {
		/* an indirect buffer lost its flag: one descriptor per segment again */
		op->n_desc = op->n_segs;
		for (unsigned i = 0; i < segs; i++)
			op->desc[i] = (uint16_t)((op->desc[0] + i) % size);
	}
	push_q(FZ_KICK, q, 0);
	push_q(FZ_WAIT, q, 20);
}

static void bad_avail(void)
{
	uint16_t q = any_queue();
	uint16_t size = fz_state.queue_size[q % FZ_QUEUES];
	const uint64_t jumps[] = { (uint64_t)size + 1, 0x8000, 2 + below(size + 1), (uint64_t)size * 2 };
	if (chance(50)) { /* more buffers than the queue holds, over descriptors in use */
		struct fz_op *op = push_add(q, 1, true);
		if (op) {
			op->seg[0].kind = FZ_SEG_ZERO;
			op->seg[0].len = 4;
		}
	}
	push_q(FZ_AVAIL, q, jumps[below(4)] & 0xffff);
	push_q(FZ_KICK, q, 0);
	push_q(FZ_WAIT, q, 20);
}

static void bad_stats_hint(void)
{
	int q = chance(50) ? G.q_stats : G.q_hint;
	if (q < 0)
		q = any_queue();
	struct fz_op *op = push_add((uint16_t)q, 1, false);
	if (!op)
		return;
	if (q == G.q_stats && chance(60)) { /* a second stats buffer, or an odd one */
		op->seg[0].kind = FZ_SEG_STATS;
		op->seg[0].len = (uint32_t)below(12);
	} else { /* a command id of the wrong size */
		const uint32_t lens[] = { 0, 1, 2, 3, 5, 8, 64 };
		op->seg[0].kind = FZ_SEG_ID;
		op->seg[0].value = (uint32_t)rnd();
		op->seg[0].len = lens[below(7)];
	}
	op->seg[0].writable = chance(30);
	push_q(FZ_KICK, (uint16_t)q, 0);
	push_q(FZ_WAIT, (uint16_t)q, 20);
}

static void bad_report(void)
{
	int q = G.q_report >= 0 ? G.q_report : any_queue();
	struct fz_op *op = push_add((uint16_t)q, 1, false);
	if (!op)
		return;
	struct fz_seg *s = &op->seg[0];
	s->kind = FZ_SEG_RANGE;
	s->writable = !chance(15);
	s->n_runs = 1;
	uint64_t main_bytes = (uint64_t)MAIN_FRAMES << 12;
	switch (below(4)) {
	case 0: /* misaligned start */
		s->run[0] = (struct fz_run){ true, (below(MAIN_FRAMES / 512 - 1) << 21) + 1 + below(4095), 2u << 20 };
		break;
	case 1: /* not a whole number of pages, or none */
		s->run[0] = (struct fz_run){ true, below(MAIN_FRAMES / 512) << 21, below(2) ? below(4096) : 4096 + 1 + below(8192) };
		break;
	case 2: /* overrunning the last block into the guard */
		s->run[0] = (struct fz_run){ true, main_bytes - (1u << 20), 3u << 20 };
		break;
	default: /* not RAM at all */
		s->run[0] = (struct fz_run){ false, chance(50) ? 0xfec00000ULL : fz_state.ram_end_pfn << 12, 2u << 20 };
	}
	push_q(FZ_KICK, (uint16_t)q, 0);
	push_q(FZ_WAIT, (uint16_t)q, 20);
}

static void bad_registers(void)
{
	switch (below(5)) {
	case 0: /* status bits out of order */
		{
			const uint8_t sts[] = { 0x04, 0x08, 0x0f, 0x07, 0x8f, 0x4f, 0x01, 0x0d, 0xff };
			push_reg(FZ_CW, VIRTIO_PCI_COMMON_DEVICE_STATUS, 1, sts[below(sizeof(sts))]);
		}
		break;
	case 1: /* features changed after FEATURES_OK */
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT, 4, below(3));
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_DRIVER_FEATURE, 4, (uint32_t)rnd());
		break;
	case 2: /* a queue that does not exist */
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_QUEUE_SELECT, 2,
			 chance(50) ? 0xffff : fz_state.num_queues + below(8));
		push_reg(FZ_CR, VIRTIO_PCI_COMMON_QUEUE_SIZE, 2, 0);
		if (chance(50))
			push_reg(FZ_CW, VIRTIO_PCI_COMMON_QUEUE_SIZE, 2, 1u << below(11));
		push_reg(FZ_CW, VIRTIO_PCI_COMMON_QUEUE_ENABLE, 2, 1);
		push_reg(FZ_CR, VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF, 2, 0);
		break;
	case 3: /* odd-width device configuration, poison_val with reporting */
		if (fz_state.device_cfg_len == 0)
			return;
		{
			const unsigned widths[] = { 1, 2, 4, 8 };
			unsigned w = widths[below(4)];
			uint64_t limit = fz_state.device_cfg_len < 64 ? fz_state.device_cfg_len : 64;
			if (limit < w)
				return;
			uint64_t off = chance(30) ? 12 : below(limit - w + 1);
			if (chance(50))
				push_reg(FZ_DW, off, w, chance(50) ? 0xaa : rnd());
			push_reg(FZ_DR, off, w, 0);
		}
		break;
	default: /* the PCI configuration window */
		{
			struct fz_op *op = push(chance(50) ? FZ_WW : FZ_WR);
			op->q = (uint16_t)below(8);
			op->off = chance(70) ? below(0x4000) : rnd() & 0xffffffff;
			const uint32_t lens[] = { 0, 1, 2, 3, 4, 8 };
			op->width = lens[below(6)];
			op->value = (uint32_t)rnd();
		}
	}
}


/* ---------------------------------------------------------------- packed rings */

/* A set-up packed queue, or -1. */
static int packed_queue(void)
{
	for (unsigned tries = 0; tries < 8; tries++) {
		uint16_t q = any_queue();
		if (fz_state.packed[q % FZ_QUEUES] && fz_state.queue_size[q % FZ_QUEUES])
			return q;
	}
	return -1;
}

static void arena_seg(struct fz_seg *s)
{
	s->kind = FZ_SEG_PFNS;
	s->n_runs = 1;
	s->run[0] = (struct fz_run){ true, below(MAIN_FRAMES - 16), 1 + below(16) };
}

/* The slot `n` descriptors after (slot, wrap), and its wrap counter. */
static uint16_t slot_after(uint16_t size, uint16_t slot, unsigned n, bool *wrap)
{
	for (unsigned i = 0; i < n; i++)
		if (++slot >= size) {
			slot = 0;
			*wrap = !*wrap;
		}
	return slot;
}

/* Packed descriptors that lie (2.8): flags, order, ids, lengths, tables,
 * event suppression. */
static void bad_packed(void)
{
	int qi = packed_queue();
	if (qi < 0)
		return;
	uint16_t q = (uint16_t)qi, size = fz_state.queue_size[q % FZ_QUEUES];
	unsigned segs = 1 + (unsigned)below(3);
	struct fz_op *op = push_add(q, segs, false);
	if (!op)
		return;
	for (unsigned i = 0; i < segs; i++)
		arena_seg(&op->seg[i]);
	switch (below(7)) {
	case 0: /* AVAIL/USED lie about the wrap counter */
		switch (below(4)) {
		case 0: op->wrap = !op->wrap; break;                   /* the whole chain from the other pass */
		case 1: op->av = op->us = op->wrap; break;             /* looks used already */
		case 2: op->av = op->us = !op->wrap; break;            /* used in the last pass */
		default: op->av = !op->wrap; op->us = op->wrap;         /* the old pass's available */
		}
		break;
	case 1: { /* made available out of order: a gap first, filled later (or not) */
		bool wrap = op->wrap;
		uint16_t first = op->slot;
		op->slot = slot_after(size, op->slot, 1 + (unsigned)below(3), &wrap);
		op->wrap = wrap;
		if (chance(50)) {
			push_q(FZ_KICK, q, 0);
			push_q(FZ_WAIT, q, 10);
			struct fz_op *fill = push(FZ_PADD);
			*fill = *op;
			fill->slot = first;
			fill->wrap = fz_state.pwrap[q % FZ_QUEUES];
			fill->bid = (uint16_t)((op->bid + 1) % size);
			fill->ind = false;
			fill->n_segs = 1;
		}
		break;
	}
	case 2: { /* a buffer id reused while in flight */
		bool wrap = op->wrap;
		unsigned n = op->ind ? 1 : op->n_segs;
		struct fz_op *again = push(FZ_PADD);
		*again = *op;
		again->slot = slot_after(size, op->slot, n, &wrap);
		again->wrap = wrap;
		if (chance(30)) { /* or one beyond the ring */
			again->bid = (uint16_t)(chance(50) ? 0xffff : size + below(64));
		}
		break;
	}
	case 3: { /* lengths and addresses */
		struct fz_seg *sg = &op->seg[below(segs)];
		memset(sg, 0, sizeof(*sg));
		switch (below(4)) {
		case 0: seg_frames_outside(sg); break;
		case 1: sg->kind = FZ_SEG_ZERO; sg->len = chance(50) ? 0 : (uint32_t)below(1u << 20); break;
		case 2:
			sg->kind = FZ_SEG_RANGE;
			sg->n_runs = 1;
			sg->run[0] = (struct fz_run){ false, chance(50) ? 0xfec00000ULL : fz_state.ram_end_pfn << 12,
						      chance(50) ? 0xffffffffu : (uint64_t)below(1u << 24) };
			break;
		default:
			sg->kind = FZ_SEG_RANGE;
			sg->n_runs = 1;
			sg->run[0] = (struct fz_run){ true, below((uint64_t)MAIN_FRAMES << 12), below(8192) };
		}
		sg->writable = chance(50);
		break;
	}
	case 4: { /* indirect tables with bad contents */
		op->ind = true;
		const int32_t lens[] = { 0, 1, 15, 17, 4096, (int32_t)(segs * 16 + 8), 16 * 1024, 65536 };
		if (chance(60))
			op->indlen = lens[below(sizeof(lens) / sizeof(lens[0]))];
		op->nest = chance(40);
		if (!op->nest && op->indlen == FZ_NONE)
			op->nest = true;
		break;
	}
	case 5: { /* event suppression structure garbage */
		struct fz_op *ev = push(FZ_PEVENT);
		ev->q = q;
		ev->value = chance(50) ? below(4) : rnd() & 0xffff;
		ev->off = rnd() & 0xffff;
		break;
	}
	default: /* the first descriptor available before the rest are written */
		op->rev = true;
		op->ind = false;
	}
	push_q(FZ_KICK, q, 0);
	push_q(FZ_WAIT, q, 20);
}

/* ---------------------------------------------------------------- mmio registers */

static void mw(uint64_t off, uint64_t v) { push_reg(FZ_MW, off, 4, v); }
static void mr(uint64_t off) { push_reg(FZ_MR, off, 4, 0); }

static unsigned n_queues(void)
{
	return 2u + (G.q_stats >= 0) + (G.q_hint >= 0) + (G.q_report >= 0);
}

/* virtio-mmio registers written in the wrong state (4.2.2, 4.2.4). */
static void bad_mmio(void)
{
	uint16_t q = (uint16_t)below(n_queues());
	bool v1 = on_legacy();
	switch (below(9)) {
	case 0: /* QueueReady (v2) or QueuePFN (v1) before QueueNum */
		mw(VIRTIO_MMIO_QUEUE_SEL, q);
		if (v1) {
			mw(VIRTIO_MMIO_QUEUE_PFN, fz_state.ring_pfn[q % FZ_QUEUES]);
		} else {
			mw(VIRTIO_MMIO_QUEUE_READY, 0);
			struct fz_op *op = push(FZ_QADDR);
			op->q = q;
			op->qoff[0] = 0;
			op->qoff[1] = 0x4000;
			op->qoff[2] = 0x5000;
			mw(VIRTIO_MMIO_QUEUE_READY, 1);
		}
		{
			const uint32_t nums[] = { 0, 1, 3, 100, 129, 1024, 0xffff, 0xffffffff };
			mw(VIRTIO_MMIO_QUEUE_NUM, nums[below(8)]);
		}
		push_q(FZ_KICK, q, 0);
		push_q(FZ_WAIT, q, 20);
		break;
	case 1: { /* QueueSel past the last queue */
		const uint32_t sels[] = { n_queues(), n_queues() + 1, 7, 8, 1023, 1024, 0xffff, 0xffffffff };
		uint32_t sel = sels[below(8)];
		if (!v1 && sel < FZ_QUEUES && chance(50)) {
			struct fz_op *op = push(FZ_QADDR);
			op->q = (uint16_t)sel;
			op->qoff[1] = 0x4000;
			op->qoff[2] = 0x5000;
		}
		mw(VIRTIO_MMIO_QUEUE_SEL, sel);
		mr(VIRTIO_MMIO_QUEUE_NUM_MAX);
		mw(VIRTIO_MMIO_QUEUE_NUM, 1u << below(11));
		mr(v1 ? VIRTIO_MMIO_QUEUE_PFN : VIRTIO_MMIO_QUEUE_READY);
		if (v1)
			mw(VIRTIO_MMIO_QUEUE_PFN, chance(50) ? 0 : fz_state.ring_pfn[sel % FZ_QUEUES]);
		else
			mw(VIRTIO_MMIO_QUEUE_READY, 1);
		mw(VIRTIO_MMIO_QUEUE_NOTIFY, sel);
		break;
	}
	case 2: { /* QueueNum beyond QueueNumMax, on a queue in use */
		const uint32_t nums[] = { 129, 256, 257, 1024, 1025, 0x10000, 0xffffffff, 3 };
		mw(VIRTIO_MMIO_QUEUE_SEL, q);
		mr(VIRTIO_MMIO_QUEUE_NUM_MAX);
		mw(VIRTIO_MMIO_QUEUE_NUM, nums[below(8)]);
		if (!v1 && chance(50)) {
			mw(VIRTIO_MMIO_QUEUE_READY, 0);
			mw(VIRTIO_MMIO_QUEUE_READY, 1);
		}
		push_q(FZ_KICK, q, 0);
		push_q(FZ_WAIT, q, 20);
		break;
	}
	case 3: /* features changed after FEATURES_OK and DRIVER_OK */
		mw(VIRTIO_MMIO_DRIVER_FEATURES_SEL, below(3));
		mw(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)rnd());
		mr(VIRTIO_MMIO_STATUS);
		break;
	case 4: { /* unaligned and oversized accesses, the configuration too */
		const unsigned widths[] = { 1, 2, 4, 8 };
		unsigned w = widths[below(4)];
		uint64_t off = below(0x200 - w + 1);
		if (w == 4 && !(off & 3))
			off |= 1 + below(3);
		if (off + w > 0x200)
			off = 0x200 - w - 1;
		push_reg(chance(50) ? FZ_MW : FZ_MR, off, w, rnd());
		break;
	}
	case 5: { /* reads of write-only registers, writes to read-only ones */
		static const uint16_t wo[] = { 0x20, 0x24, 0x28, 0x30, 0x38, 0x3c, 0x50, 0x64, 0x80, 0x94, 0xa4 };
		static const uint16_t ro[] = { 0x00, 0x04, 0x08, 0x0c, 0x10, 0x34, 0x60, 0xfc };
		if (chance(50))
			mr(wo[below(sizeof(wo) / sizeof(wo[0]))]);
		else
			mw(ro[below(sizeof(ro) / sizeof(ro[0]))], (uint32_t)rnd());
		break;
	}
	case 6: { /* status going backwards, or bits out of order */
		const uint8_t sts[] = { 0x03, 0x01, 0x0b, 0x07, 0x8f, 0x40, 0x4f, 0xff, 0x04 };
		mw(VIRTIO_MMIO_STATUS, sts[below(sizeof(sts))]);
		mr(VIRTIO_MMIO_STATUS);
		if (chance(50)) {
			push_q(FZ_KICK, q, 0);
			push_q(FZ_WAIT, q, 20);
		}
		break;
	}
	case 7: /* rings moved while the queue is in use */
		if (v1) {
			const uint32_t aligns[] = { 0, 1, 3, 64, 100, 4096, 8192, 0x10000, 0x80000000u };
			const uint32_t pages[] = { 0, 1, 512, 3, 4096, 8192, 0x10000 };
			mw(VIRTIO_MMIO_QUEUE_SEL, q);
			switch (below(3)) {
			case 0: mw(VIRTIO_MMIO_QUEUE_ALIGN, aligns[below(9)]); break;
			case 1:
				mw(VIRTIO_MMIO_GUEST_PAGE_SIZE, pages[below(7)]);
				mw(VIRTIO_MMIO_QUEUE_PFN, fz_state.ring_pfn[below(FZ_QUEUES)] + below(4));
				mw(VIRTIO_MMIO_GUEST_PAGE_SIZE, VIRTIO_MMIO_LEGACY_PAGE);
				break;
			default: mw(VIRTIO_MMIO_QUEUE_PFN, fz_state.ring_pfn[below(FZ_QUEUES)] + below(8));
			}
		} else {
			struct fz_op *op = push(FZ_QADDR);
			op->q = q;
			for (unsigned i = 0; i < 3; i++)
				op->qoff[i] = chance(30) ? (uint32_t)below(0x9001) : (uint32_t)(below(9) << 12);
			if (chance(60))
				mw(VIRTIO_MMIO_QUEUE_READY, 1);
		}
		push_q(FZ_KICK, q, 0);
		push_q(FZ_WAIT, q, 20);
		break;
	default: /* interrupt acknowledgements of bits never raised */
		mw(VIRTIO_MMIO_INTERRUPT_ACK, (uint32_t)rnd());
		mr(VIRTIO_MMIO_INTERRUPT_STATUS);
	}
}

/* ---------------------------------------------------------------- programs */

static void plan_bringup(void)
{
	G.prog_no++;
	G.valid = !chance(G.bad_percent);
	struct fz_op *op = push(FZ_PROG);
	op->off = G.prog_no;
	op->value = G.valid;
	push(FZ_RESET);
	set_status(1);
	set_status(3);
	read_device_features(0);
	if (!on_legacy())
		read_device_features(1);
	G.phase = G_NEGOTIATE;
}

static void plan_negotiate(void)
{
	static const unsigned bits[] = { 0, 1, 2, 3, 4, 5, 28, 29 };
	uint64_t offered = fz_state.device_features, want = on_legacy() ? 0 : 1ULL << VIRTIO_F_VERSION_1;
	if (on_legacy())
		offered &= 0xffffffffULL; /* v1: 32 feature bits */
	for (unsigned i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if ((offered >> bits[i] & 1) && chance(70))
			want |= 1ULL << bits[i];
	/* Packed whenever offered (the device was started with packed=on to be
	 * fuzzed that way), but for a few programs. */
	if ((offered >> VQ_F_RING_PACKED & 1) && chance(90))
		want |= 1ULL << VQ_F_RING_PACKED;
	if (!G.valid && chance(15))
		want ^= 1ULL << (chance(50) ? VIRTIO_F_VERSION_1 : below(64)); /* unoffered, or no VERSION_1 */
	G.features = want & (G.valid ? offered : ~0ULL);
	uint16_t q = BALLOON_Q_DEFLATE + 1; /* the optional queues follow, in this order (5.5.2) */
	G.q_stats = has(VIRTIO_BALLOON_F_STATS_VQ) ? q++ : -1;
	G.q_hint = has(VIRTIO_BALLOON_F_FREE_PAGE_HINT) ? q++ : -1;
	G.q_report = has(VIRTIO_BALLOON_F_REPORTING) ? q++ : -1;
	write_driver_features(0, (uint32_t)G.features);
	if (!on_legacy())
		write_driver_features(1, (uint32_t)(G.features >> 32));
	if (!on_legacy() && (G.valid || chance(80)))
		set_status(0x0b);
	get_status();
	if (!on_mmio())
		push_reg(FZ_CR, VIRTIO_PCI_COMMON_NUM_QUEUES, 2, 0);
	G.phase = G_QUEUES;
}

static void plan_queues(void)
{
	bool early_ok = !G.valid && chance(15); /* DRIVER_OK before the queues */
	if (early_ok)
		set_status(ok_status());
	for (int q = 0; q < (int)n_queues(); q++) {
		uint64_t size = 16ULL << below(4);
		if (has(VQ_F_RING_PACKED) && !on_legacy() && chance(60)) {
			/* small, and of any size (2.8.10): the wrap counters flip
			 * within a program */
			const uint64_t small[] = { 4, 5, 7, 8, 12 };
			size = small[below(5)];
		}
		if (!G.valid && chance(10)) {
			const uint64_t odd[] = { 0, 3, 100, 1024, 256 };
			size = odd[below(5)];
		}
		if (on_mmio()) { /* mmio has no queue count: each queue's maximum is read */
			mw(VIRTIO_MMIO_QUEUE_SEL, (uint16_t)q);
			mr(VIRTIO_MMIO_QUEUE_NUM_MAX);
		}
		push_q(FZ_QSETUP, (uint16_t)q, size);
	}
	if (!early_ok)
		set_status(ok_status());
	if (has(VIRTIO_BALLOON_F_PAGE_POISON))
		push_reg(FZ_DW, BALLOON_CFG_POISON_VAL, 4,
			 G.valid && has(VIRTIO_BALLOON_F_REPORTING) ? 0 : (chance(50) ? 0 : 0xaaaaaaaa));
	G.phase = G_BODY;
	G.body_left = 8 + (unsigned)below(40);
}

static void plan_body(void)
{
	if (fz_state.needs_reset || G.body_left == 0) {
		push(FZ_CHECK);
		G.phase = G_START;
		return;
	}
	G.body_left--;
	if (!G.valid && chance(45)) {
		/* the ring's and the transport's own families stand in for split
		 * rings' (bad_chain, bad_avail) and PCI's (bad_registers) */
		bool packed = has(VQ_F_RING_PACKED) && !on_legacy();
		static void (*const pci_split[])(void) = { /* as before the other shapes: seeds keep their programs */
			bad_pfns, bad_chain, bad_avail, bad_stats_hint, bad_report, bad_registers,
		};
		if (!packed && !on_mmio()) {
			pci_split[below(sizeof(pci_split) / sizeof(pci_split[0]))]();
			return;
		}
		void (*const bad_families[])(void) = {
			bad_pfns, packed ? bad_packed : bad_chain, packed ? bad_packed : bad_avail, bad_stats_hint,
			bad_report, on_mmio() ? bad_mmio : bad_registers, packed ? bad_packed : bad_pfns,
			on_mmio() ? bad_mmio : bad_registers,
		};
		bad_families[below(sizeof(bad_families) / sizeof(bad_families[0]))]();
		return;
	}
	static void (*const valid_families[])(void) = {
		valid_inflate, valid_inflate, valid_inflate, valid_deflate, valid_deflate,
		valid_stats, valid_report, valid_report, valid_config, valid_hint,
	};
	valid_families[below(sizeof(valid_families) / sizeof(valid_families[0]))]();
}

void fz_gen_init(uint64_t seed, unsigned bad_percent)
{
	memset(&G, 0, sizeof(G));
	G.rng = seed;
	G.bad_percent = bad_percent > 100 ? 100 : bad_percent;
	G.q_stats = G.q_hint = G.q_report = -1;
}

void fz_gen_next(struct fz_op *op)
{
	while (G.next_pending == G.n_pending) {
		G.n_pending = G.next_pending = 0;
		switch (G.phase) {
		case G_START: plan_bringup(); break;
		case G_NEGOTIATE: plan_negotiate(); break;
		case G_QUEUES: plan_queues(); break;
		case G_BODY: plan_body(); break;
		}
	}
	*op = G.pending[G.next_pending++];
}
