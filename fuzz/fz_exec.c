/*
 * fz_exec: carrying out device-fuzzing operations on the balloon device.
 *
 * This is the only code in fuzz mode that touches the device. It writes
 * rings and registers directly, without drivers/virtio/virtqueue.c, because
 * its job is to write what a correct driver never would. What it will not
 * do is let the device near memory the kernel uses: buffers are built in
 * the program's scratch area, frames and ranges must lie in the arena or
 * outside RAM, descriptor indices stay inside the ring memory, and the
 * registers holding ring addresses are written only by `qsetup` and
 * `qaddr`. An op that breaks one of these rules is refused with the reason
 * and not executed.
 *
 * Three transports: modern PCI (cw/cr on the common configuration),
 * virtio-mmio version 2 and version 1 (mw/mr on the register block). On
 * mmio the rings' whereabouts also hang on registers the ops may write in
 * any order — QueueReady (v2) enables the addresses last written, and on v1
 * QueuePFN × GuestPageSize, QueueNum and QueueAlign place all three rings —
 * so the executor keeps, per queue, what the spec says the device now
 * holds (struct mmio_model) and refuses a write after which the rings
 * could lie outside the ring memory. Where it cannot know (a reset by a
 * partial Status write, a QueueSel of odd width), it assumes the worse.
 *
 * Packed rings (2.8) use the same three areas: descriptors at the ring's
 * base, the driver event suppression structure where the split ring's
 * available ring is, the device's where its used ring is.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "devfuzz.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/mmio.h"
#include "drivers/virtio/balloon_core.h"
#include "drivers/virtio/virtio_mmio.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtio_pci_regs.h"
#include "kernel/addr.h"
#include "kernel/clock.h"
#include "kernel/console.h"
#include "kernel/event.h"
#include "boot/boot_info.h"
#include "kernel/mm.h"
#include "kernel/pfa.h"
#include "kernel/prng.h"

/* The ring-address registers (desc, driver, device: le64 each), written
 * only by qsetup so that the device never gets memory outside a ring. */
#define RING_ADDR_FIRST VIRTIO_PCI_COMMON_QUEUE_DESC
#define RING_ADDR_END (VIRTIO_PCI_COMMON_QUEUE_DEVICE + 8)
#define RING_AVAIL_OFF (16 * FZ_RING_MAX)      /* desc table first, 16 KiB */
#define RING_USED_OFF (RING_AVAIL_OFF + 4096)  /* avail ring, 2 KiB + 6 */
/* 64 KiB a ring: what the three areas need at FZ_RING_MAX entries (28 KiB)
 * with room for qaddr's offsets up to QADDR_MAX and v1's odd alignments. */
#define RING_BYTES (64u << 10)
#define QADDR_MAX 0x9000                       /* + 16 KiB + 8 KiB + 8 still inside */
#define PATTERN_WORDS 8                        /* checked words per arena frame */

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

/* What the device holds for each mmio queue, as the spec says it should
 * (4.2.2, 4.2.4), for deciding which register writes are safe. */
#define SEL_UNKNOWN 0xffffffffu
#define NUM_UNKNOWN 0xffffffffu
static struct mmio_model {
	uint32_t sel;                           /* QueueSel, or SEL_UNKNOWN */
	/* v2: addresses written by qsetup/qaddr since the last (possible) reset */
	bool addrs_ok[FZ_QUEUES];
	uint32_t num[FZ_QUEUES];                /* QueueNum written, else QueueNumMax read, else unknown */
	/* v1: the rings follow desc, num and align; desc is never forgotten
	 * (a reset the device ignored would leave it in place) */
	uint64_t desc[FZ_QUEUES];
	uint32_t vnum[FZ_QUEUES], align[FZ_QUEUES];
	uint32_t page_size;
	uint32_t feature_sel, driver_feature_sel;
} mm;

struct fz_state fz_state;
struct fz_counters fz_counters;

static struct virtio_dev *vd;
static uint8_t window_cap;                 /* VIRTIO_PCI_CAP_PCI_CFG, 0 if none */
static uint32_t common_len, common_bar_off;
static struct fz_ring rings[FZ_QUEUES];
static void arena_refill(void);
static uint8_t *arena, *scratch;
static size_t scratch_used;
static bool exposed[FZ_ARENA_FRAMES];
static uint32_t feature_select, driver_feature_select;
static enum { T_PCI, T_MMIO, T_MMIO1 } transport;
static uint64_t driver_features;           /* as last written: decides packed at qsetup */
static uint64_t pattern_seed = 0x5eedb1a3c0ffeeULL;
static struct {
	uint64_t number, op_index, needs_reset_op, used, bad_used;
	bool valid;
} prog;

/* ---------------------------------------------------------------- memory rules */

/* Bit 31 of both halves set: a device that reads arena memory as le32 frame
 * numbers (a readable range= on the inflate queue) finds only frames far
 * beyond any RAM, never one the kernel uses. */
static uint64_t pattern(uint32_t frame, unsigned word)
{
	return prng_mix64(pattern_seed ^ ((uint64_t)frame << 3 | word)) | 0x8000000080000000ULL;
}

/* Does [pfn, pfn + count) touch RAM the guest has (usable, or the low 1 MiB)? */
static bool frames_touch_ram(uint64_t pfn, uint64_t count)
{
	if (pfn < 256)
		return true;
	for (uint32_t i = 0; i < boot_info.memmap_count; i++) {
		const struct boot_mem_range *r = &boot_info.memmap[i];
		if (r->type == BOOT_MEM_RESERVED)
			continue; /* MMIO, ROM, firmware: the device may be told about it */
		uint64_t lo = r->base >> PAGE_SHIFT, hi = (r->base + r->size + PAGE_SIZE - 1) >> PAGE_SHIFT;
		if (pfn < hi && pfn + count > lo)
			return true;
	}
	return false;
}

static void *scratch_alloc(size_t bytes)
{
	size_t at = (scratch_used + 15) & ~(size_t)15;
	if (at + bytes > FZ_SCRATCH_BYTES || at + bytes < at)
		return NULL;
	scratch_used = at + bytes;
	return scratch + at;
}

static void expose(uint64_t first, uint64_t count)
{
	for (uint64_t f = first; f < first + count && f < FZ_ARENA_FRAMES; f++)
		exposed[f] = true;
}

/* ---------------------------------------------------------------- registers */

/* One access of the op's width (1, 2, 4 or 8, fz_op.c checks), as the op
 * says: a wrong width for the register is part of the fuzzing. */
static uint64_t reg_read(volatile uint8_t *p, unsigned width)
{
	switch (width) {
	case 1: return mmio_read8(p);
	case 2: return mmio_read16(p);
	case 4: return mmio_read32(p);
	default: return mmio_read64(p);
	}
}

static void reg_write(volatile uint8_t *p, unsigned width, uint64_t v)
{
	switch (width) {
	case 1: mmio_write8(p, (uint8_t)v); break;
	case 2: mmio_write16(p, (uint16_t)v); break;
	case 4: mmio_write32(p, (uint32_t)v); break;
	default: mmio_write64(p, v);
	}
}

static uint8_t status(void)
{
	if (transport != T_PCI)
		return (uint8_t)mmio_read32(vd->mmio + VIRTIO_MMIO_STATUS);
	return mmio_read8(vd->common + VIRTIO_PCI_COMMON_DEVICE_STATUS);
}

/* The device may have reset: no v2 queue may be enabled again before its
 * addresses are written again (a reset device holds 0 there). */
static void mmio_forget(void)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		mm.addrs_ok[i] = false;
		mm.num[i] = NUM_UNKNOWN;
	}
}

static void forget_rings(void)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		struct fz_ring *r = &rings[i];
		r->size = r->avail_idx = r->used_seen = r->notify_off = 0;
		memset(r->busy, 0, sizeof(r->busy));
		memset(r->chain_n, 0, sizeof(r->chain_n));
		memset(r->id_n, 0, sizeof(r->id_n));
		r->packed = false;
		r->next_used = r->in_flight = 0;
		fz_state.queue_size[i] = 0;
		fz_state.free_desc[i] = 0;
		fz_state.packed[i] = false;
		fz_state.pnext[i] = 0;
		fz_state.pwrap[i] = true;
	}
	fz_state.up = false;
	fz_state.stats_in_flight = false;
}

/* ---------------------------------------------------------------- init */

int fz_exec_init(void)
{
	vd = virtio_find(VIRTIO_ID_BALLOON);
	if (!vd) {
		printf("fuzz: no virtio-balloon device to fuzz\n");
		return -ENODEV;
	}
	if (vd->pci && vd->legacy) { /* legacy PCI's I/O registers: no ops for them */
		printf("fuzz: the balloon is on %s; the device fuzzer drives modern PCI and virtio-mmio\n",
		       vd->ops->name);
		vd = NULL;
		return -EPROTONOSUPPORT;
	}
	vd->driver = &fz_state; /* taken: no driver binds it */
	transport = vd->pci ? T_PCI : vd->legacy ? T_MMIO1 : T_MMIO;
	fz_state.transport = (uint8_t)transport;
	mm.sel = SEL_UNKNOWN;
	mm.page_size = VIRTIO_MMIO_LEGACY_PAGE;
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		mm.vnum[i] = FZ_RING_MAX; /* the device's default size: at most QEMU's largest */
		mm.align[i] = VIRTIO_MMIO_LEGACY_PAGE;
	}
	mmio_forget();
	struct pci_dev *d = vd->pci;
	for (uint8_t c = d ? pci_find_cap(d, PCI_CAP_VENDOR, 0) : 0; c; c = pci_find_cap(d, PCI_CAP_VENDOR, c)) {
		uint8_t type = pci_read8(d, c + VIRTIO_PCI_CAP_CFG_TYPE);
		if (type == VIRTIO_PCI_CAP_PCI_CFG && !window_cap)
			window_cap = c;
		if (type == VIRTIO_PCI_CAP_COMMON_CFG && !common_len) {
			common_bar_off = pci_read32(d, c + VIRTIO_PCI_CAP_OFFSET);
			common_len = pci_read32(d, c + VIRTIO_PCI_CAP_LENGTH);
		}
	}
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		if (!(rings[i].mem = mm_alloc_dma(RING_BYTES)))
			return -ENOMEM;
		fz_state.ring_pfn[i] = (uint32_t)(virt_to_phys(rings[i].mem) >> PAGE_SHIFT);
	}
	int64_t pfn = pfa_alloc_block(&kernel_pfa, FZ_ARENA_ORDER);
	scratch = mm_alloc_dma(FZ_SCRATCH_BYTES);
	if (pfn < 0 || !scratch) {
		printf("fuzz: no memory for the 32 MiB arena and 2 MiB scratch area\n");
		return -ENOMEM;
	}
	arena = phys_to_virt((uint64_t)pfn << PAGE_SHIFT);
	fz_state.arena_pfn = (uint64_t)pfn;
	fz_state.device_cfg_len = vd->device_cfg_len;
	if (transport != T_PCI) /* the rest of the 512-byte block, up to 256 bytes */
		fz_state.device_cfg_len = vd->mmio_size - VIRTIO_MMIO_CONFIG > 256 ? 256
					: (uint32_t)(vd->mmio_size - VIRTIO_MMIO_CONFIG);
	for (uint32_t i = 0; i < boot_info.memmap_count; i++)
		if (boot_info.memmap[i].type != BOOT_MEM_RESERVED) {
			uint64_t end = (boot_info.memmap[i].base + boot_info.memmap[i].size) >> PAGE_SHIFT;
			if (end > fz_state.ram_end_pfn)
				fz_state.ram_end_pfn = end;
		}
	forget_rings();
	event_emit("fuzz_device", "\"arena_pfn\":%lu,\"arena_frames\":%u,\"ram_end_pfn\":%lu,\"window_cap\":%u,"
		   "\"common_len\":%u,\"device_cfg_len\":%u,\"transport\":\"%s\"", (unsigned long)pfn,
		   FZ_ARENA_FRAMES, (unsigned long)fz_state.ram_end_pfn, window_cap, common_len,
		   fz_state.device_cfg_len, vd->ops->name);
	return 0;
}

void fz_exec_set_pattern_seed(uint64_t seed)
{
	pattern_seed = prng_mix64(seed);
	arena_refill(); /* ops before any `prog` are checked against these */
}

int fz_exec_pick_desc(uint16_t q, unsigned n, uint16_t *out)
{
	struct fz_ring *r = &rings[q % FZ_QUEUES];
	unsigned got = 0;
	for (uint16_t i = 0; i < r->size && i < FZ_RING_MAX && got < n; i++)
		if (!r->busy[i])
			out[got++] = i;
	return got == n ? 0 : -ENOSPC;
}

int fz_exec_pick_id(uint16_t q)
{
	struct fz_ring *r = &rings[q % FZ_QUEUES];
	for (uint16_t i = 0; i < r->size && i < FZ_RING_MAX; i++)
		if (!r->id_n[i])
			return i;
	return -ENOSPC;
}

/* ---------------------------------------------------------------- programs and oracles */

/* Every arena frame gets its pattern back; none counts as given to the device. */
static void arena_refill(void)
{
	for (uint32_t f = 0; f < FZ_ARENA_FRAMES; f++) {
		uint64_t *page = (uint64_t *)(arena + (uint64_t)f * PAGE_SIZE);
		for (unsigned w = 0; w < PATTERN_WORDS; w++)
			page[w * 64] = pattern(f, w);
	}
	memset(exposed, 0, sizeof(exposed));
}

static void program_start(const struct fz_op *op)
{
	prog.number = op->off;
	prog.valid = op->value;
	prog.op_index = prog.used = prog.bad_used = 0;
	prog.needs_reset_op = 0;
	fz_state.needs_reset = false;
	memset(scratch, 0, scratch_used);
	scratch_used = 0;
	arena_refill();
	memset(fz_state.inflated, 0, sizeof(fz_state.inflated));
	fz_counters.programs++;
	fz_counters.valid_programs += prog.valid;
}

static void finding(const char *kind, const char *fmt_detail, uint64_t a, uint64_t b)
{
	char detail[160];
	snprintf(detail, sizeof(detail), fmt_detail, (unsigned long)a, (unsigned long)b);
	fz_counters.findings++;
	printf("fz> FINDING %s: %s\n", kind, detail);
	event_emit("fuzz_finding", "\"kind\":\"%s\",\"prog\":%lu,\"op\":%lu,\"valid\":%d,\"detail\":\"%s\"", kind,
		   (unsigned long)prog.number, (unsigned long)prog.op_index, prog.valid, detail);
}

static void program_check(void)
{
	uint8_t st = status();
	unsigned bad_frames = 0;
	for (uint32_t f = 0; f < FZ_ARENA_FRAMES; f++) {
		if (exposed[f])
			continue;
		const uint64_t *page = (const uint64_t *)(arena + (uint64_t)f * PAGE_SIZE);
		for (unsigned w = 0; w < PATTERN_WORDS; w++)
			if (page[w * 64] != pattern(f, w)) {
				if (bad_frames++ < 4) {
					printf("fz> pattern lost: arena frame %u (pfn %#lx) word at +%u holds %#lx, "
					       "expected %#lx\n", f, (unsigned long)(fz_state.arena_pfn + f), w * 512,
					       (unsigned long)page[w * 64], (unsigned long)pattern(f, w));
				}
				break;
			}
	}
	fz_counters.pattern_errors += bad_frames;
	if (bad_frames)
		finding("pattern", "%lu arena frames never given to the device lost their contents (first at op %lu)",
			bad_frames, prog.op_index);
	unsigned exposed_n = 0;
	for (uint32_t f = 0; f < FZ_ARENA_FRAMES; f++)
		exposed_n += exposed[f];
	printf("fz> check status %#x, %u frames exposed, %u patterns lost\n", st, exposed_n, bad_frames);
	event_emit("fuzz_program", "\"prog\":%lu,\"valid\":%d,\"ops\":%lu,\"status\":%u,\"needs_reset_op\":%lu,"
		   "\"exposed\":%u,\"pattern_errors\":%u,\"used\":%lu,\"bad_used\":%lu", (unsigned long)prog.number,
		   prog.valid, (unsigned long)prog.op_index, st, (unsigned long)prog.needs_reset_op, exposed_n,
		   bad_frames, (unsigned long)prog.used, (unsigned long)prog.bad_used);
}

/* After every op: has the device given up on us? */
static void watch_status(void)
{
	if (fz_state.needs_reset)
		return;
	uint8_t st = status();
	if (!(st & VIRTIO_STATUS_NEEDS_RESET))
		return;
	fz_state.needs_reset = true;
	fz_state.up = false;
	prog.needs_reset_op = prog.op_index;
	if (prog.valid) {
		fz_counters.needs_reset_valid++;
		finding("needs_reset_valid", "the device set DEVICE_NEEDS_RESET (status %#lx) after op %lu of a valid program",
			st, prog.op_index);
	} else {
		fz_counters.needs_reset_bad++;
		printf("fz> needs_reset status %#x after op %lu\n", st, (unsigned long)prog.op_index);
	}
}

/* ---------------------------------------------------------------- buffers */

/* Build one segment's bytes; 0 with addr/len set, or -EINVAL with why. */
static int build_seg(uint16_t q, const struct fz_seg *s, bool hide, uint64_t *addr, uint32_t *len,
		     char *why, size_t why_len)
{
	switch (s->kind) {
	case FZ_SEG_PFNS: {
		uint64_t n = fz_seg_frames(s);
		uint32_t *p = scratch_alloc(n * 4);
		if (!p) {
			snprintf(why, why_len, "%lu frame numbers do not fit the scratch area", (unsigned long)n);
			return -EINVAL;
		}
		for (unsigned i = 0; i < s->n_runs; i++) {
			const struct fz_run *r = &s->run[i];
			if (r->arena && r->start + r->count > FZ_ARENA_FRAMES) {
				snprintf(why, why_len, "run a%#lx+%lu leaves the arena", (unsigned long)r->start,
					 (unsigned long)r->count);
				return -EINVAL;
			}
			if (!r->arena && frames_touch_ram(r->start, r->count)) {
				snprintf(why, why_len, "run p%#lx+%lu names RAM the guest uses", (unsigned long)r->start,
					 (unsigned long)r->count);
				return -EINVAL;
			}
		}
		for (unsigned i = 0; i < s->n_runs; i++) {
			const struct fz_run *r = &s->run[i];
			uint64_t base = r->arena ? fz_state.arena_pfn + r->start : r->start;
			for (uint64_t k = 0; k < r->count; k++)
				*p++ = (uint32_t)(base + k);
			if (r->arena && !hide && q != BALLOON_Q_DEFLATE)
				expose(r->start, r->count);
			if (r->arena && !s->writable && q == BALLOON_Q_INFLATE)
				for (uint64_t k = 0; k < r->count; k++)
					fz_state.inflated[r->start + k] = true;
			if (r->arena && q == BALLOON_Q_DEFLATE)
				for (uint64_t k = 0; k < r->count; k++)
					fz_state.inflated[r->start + k] = false;
		}
		*addr = virt_to_phys(p - n);
		*len = (uint32_t)(n * 4);
		return 0;
	}
	case FZ_SEG_RANGE: {
		const struct fz_run *r = &s->run[0];
		uint64_t arena_bytes = (uint64_t)FZ_ARENA_FRAMES * PAGE_SIZE;
		if (r->arena ? (r->start > arena_bytes || r->count > arena_bytes - r->start)
			     : frames_touch_ram(r->start >> PAGE_SHIFT,
						((r->start & (PAGE_SIZE - 1)) + r->count + PAGE_SIZE - 1) >> PAGE_SHIFT)) {
			snprintf(why, why_len, "range %c%#lx+%lu %s", r->arena ? 'a' : 'p', (unsigned long)r->start,
				 (unsigned long)r->count, r->arena ? "leaves the arena" : "touches RAM the guest uses");
			return -EINVAL;
		}
		*addr = r->arena ? (fz_state.arena_pfn << PAGE_SHIFT) + r->start : r->start;
		*len = (uint32_t)r->count;
		if (r->arena && !hide && r->count)
			expose(r->start >> PAGE_SHIFT, ((r->start & (PAGE_SIZE - 1)) + r->count + PAGE_SIZE - 1) >> PAGE_SHIFT);
		return 0;
	}
	case FZ_SEG_STATS: {
		/* Values with their high bits set: read as frame numbers by a
		 * confused device, they name nothing that is RAM. */
		uint8_t *p = scratch_alloc((size_t)s->len * 10);
		if (!p && s->len) {
			snprintf(why, why_len, "stats buffer does not fit the scratch area");
			return -EINVAL;
		}
		for (uint32_t i = 0; i < s->len; i++) {
			uint16_t tag = (uint16_t)(i | 0xff00);
			uint64_t val = 0xfff0000000000000ULL | i;
			memcpy(p + i * 10, &tag, 2);
			memcpy(p + i * 10 + 2, &val, 8);
		}
		*addr = virt_to_phys(p ? p : scratch);
		*len = s->len * 10;
		return 0;
	}
	default: { /* id=, zero= */
		uint8_t *p = scratch_alloc(s->len ? s->len : 1);
		if (!p) {
			snprintf(why, why_len, "buffer of %u bytes does not fit the scratch area", s->len);
			return -EINVAL;
		}
		if (s->kind == FZ_SEG_ID)
			memcpy(p, &s->value, s->len < 4 ? s->len : 4);
		*addr = virt_to_phys(p);
		*len = s->len;
		return 0;
	}
	}
}

static int exec_add(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &rings[op->q % FZ_QUEUES];
	if (r->size == 0) {
		snprintf(why, why_len, "queue %u is not set up", op->q);
		return -EINVAL;
	}
	if (r->packed) {
		snprintf(why, why_len, "queue %u is packed: padd writes its descriptors", op->q);
		return -EINVAL;
	}
	for (unsigned i = 0; i < op->n_desc; i++)
		if (op->desc[i] >= FZ_RING_MAX) {
			snprintf(why, why_len, "descriptor %u is outside the ring memory", op->desc[i]);
			return -EINVAL;
		}
	uint64_t addr[FZ_MAX_SEGS];
	uint32_t len[FZ_MAX_SEGS];
	for (unsigned i = 0; i < op->n_segs; i++) {
		int rc = build_seg(op->q, &op->seg[i], op->hide, &addr[i], &len[i], why, why_len);
		if (rc < 0)
			return rc;
	}
	struct vq_desc *desc = (struct vq_desc *)r->mem;
	unsigned last = op->n_segs ? op->n_segs - 1 : 0;
	if (op->ind) {
		size_t table_bytes = (size_t)op->n_segs * sizeof(struct vq_desc);
		if (op->indlen != FZ_NONE && (size_t)op->indlen > table_bytes)
			table_bytes = (size_t)op->indlen; /* a device reading that far finds zeros */
		struct vq_desc *t = scratch_alloc(table_bytes ? table_bytes : 1);
		if (!t) {
			snprintf(why, why_len, "indirect table does not fit the scratch area");
			return -EINVAL;
		}
		for (unsigned i = 0; i < op->n_segs; i++)
			t[i] = (struct vq_desc){ addr[i], len[i], (uint16_t)(op->seg[i].writable ? VQ_DESC_F_WRITE : 0),
						 (uint16_t)(i + 1) };
		for (unsigned i = 0; i + 1 < op->n_segs; i++)
			t[i].flags |= VQ_DESC_F_NEXT;
		if (op->n_segs && (op->loop || op->next != FZ_NONE)) {
			t[last].flags |= VQ_DESC_F_NEXT;
			t[last].next = op->loop ? 0 : (uint16_t)op->next;
		}
		uint32_t ilen = op->indlen != FZ_NONE ? (uint32_t)op->indlen : (uint32_t)(op->n_segs * sizeof(*t));
		desc[op->desc[0]] = (struct vq_desc){ virt_to_phys(t), ilen, VQ_DESC_F_INDIRECT, 0 };
	} else {
		for (unsigned i = 0; i < op->n_segs; i++) {
			bool more = i + 1 < op->n_segs;
			desc[op->desc[i]] = (struct vq_desc){ addr[i], len[i],
				(uint16_t)((op->seg[i].writable ? VQ_DESC_F_WRITE : 0) | (more ? VQ_DESC_F_NEXT : 0)),
				more ? op->desc[i + 1] : 0 };
		}
		if (op->n_segs && (op->loop || op->next != FZ_NONE)) {
			desc[op->desc[last]].flags |= VQ_DESC_F_NEXT;
			desc[op->desc[last]].next = op->loop ? op->desc[0] : (uint16_t)op->next;
		}
	}
	uint16_t head = op->desc[0];
	for (unsigned i = 0; i < op->n_desc; i++)
		r->busy[op->desc[i]] = true;
	r->chain_n[head] = op->n_desc;
	memcpy(r->chain[head], op->desc, op->n_desc * sizeof(uint16_t));
	struct vq_avail *avail = (struct vq_avail *)(r->mem + r->avail_off);
	uint16_t size = r->size < FZ_RING_MAX ? r->size : FZ_RING_MAX;
	avail->ring[r->avail_idx % size] = op->head != FZ_NONE ? (uint16_t)op->head : head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	avail->idx = ++r->avail_idx;
	if (op->seg[0].kind == FZ_SEG_STATS)
		fz_state.stats_in_flight = true;
	return 0;
}

static void exec_wait_packed(const struct fz_op *op, struct fz_ring *r);

static void exec_wait(const struct fz_op *op)
{
	struct fz_ring *r = &rings[op->q % FZ_QUEUES];
	if (r->size == 0)
		return;
	if (r->packed) {
		exec_wait_packed(op, r);
		return;
	}
	volatile struct vq_used *used = (volatile struct vq_used *)(r->mem + r->used_off);
	uint64_t deadline = clock_ms() + op->off;
	uint16_t size = r->size < FZ_RING_MAX ? r->size : FZ_RING_MAX;
	while (used->idx == r->used_seen && clock_ms() < deadline)
		cpu_relax();
	uint16_t idx = used->idx;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if ((uint16_t)(idx - r->used_seen) > size) {
		/* More completions than buffers could exist: the device is lying. */
		prog.bad_used++;
		fz_counters.bad_used++;
		printf("fz> used.idx of queue %u moved from %u to %u, more than its %u entries\n", op->q,
		       r->used_seen, idx, size);
		if (prog.valid && !fz_state.needs_reset)
			finding("bad_used", "used.idx moved by %lu on queue %lu", (uint16_t)(idx - r->used_seen), op->q);
		r->used_seen = idx;
		return;
	}
	for (; r->used_seen != idx; r->used_seen++) {
		struct vq_used_elem e = used->ring[r->used_seen % size];
		prog.used++;
		fz_counters.used++;
		bool known = e.id < FZ_RING_MAX && r->chain_n[e.id];
		printf("fz> used %u id=%u len=%u%s\n", op->q, e.id, e.len, known ? "" : " (not a buffer in flight)");
		if (!known) {
			prog.bad_used++;
			fz_counters.bad_used++;
			if (prog.valid && !fz_state.needs_reset)
				finding("bad_used", "used entry names descriptor %lu on queue %lu, not a head in flight", e.id,
					op->q);
			continue;
		}
		for (unsigned i = 0; i < r->chain_n[e.id]; i++)
			r->busy[r->chain[e.id][i]] = false;
		r->chain_n[e.id] = 0;
	}
}

static int mmio_qsetup(const struct fz_op *op, struct fz_ring *r, uint64_t base, char *why, size_t why_len);

static int exec_qsetup(const struct fz_op *op, char *why, size_t why_len)
{
	if (op->off > FZ_RING_MAX) {
		snprintf(why, why_len, "size %lu is beyond the ring memory (%u entries)", (unsigned long)op->off,
			 FZ_RING_MAX);
		return -EINVAL;
	}
	struct fz_ring *r = &rings[op->q % FZ_QUEUES];
	memset(r->mem, 0, RING_BYTES);
	memset(r->busy, 0, sizeof(r->busy));
	memset(r->chain_n, 0, sizeof(r->chain_n));
	memset(r->id_n, 0, sizeof(r->id_n));
	r->size = (uint16_t)op->off;
	r->avail_idx = r->used_seen = 0;
	r->avail_off = RING_AVAIL_OFF;
	r->used_off = RING_USED_OFF;
	/* Packed if the driver said so: the layout follows what was written,
	 * so a replay lays it out the same. v1 has no feature bits above 31. */
	r->packed = transport != T_MMIO1 && (driver_features >> VQ_F_RING_PACKED & 1);
	r->used_wrap = true;
	r->next_used = r->in_flight = 0;
	fz_state.packed[op->q % FZ_QUEUES] = r->packed;
	fz_state.pnext[op->q % FZ_QUEUES] = 0;
	fz_state.pwrap[op->q % FZ_QUEUES] = true;
	uint64_t base = virt_to_phys(r->mem);
	if (transport != T_PCI) {
		fz_state.queue_size[op->q % FZ_QUEUES] = r->size;
		fz_state.free_desc[op->q % FZ_QUEUES] = r->size;
		return mmio_qsetup(op, r, base, why, why_len);
	}
	volatile uint8_t *c = vd->common;
	mmio_write16(c + VIRTIO_PCI_COMMON_QUEUE_SELECT, op->q);
	mmio_write16(c + VIRTIO_PCI_COMMON_QUEUE_SIZE, (uint16_t)op->off);
	r->notify_off = mmio_read16(c + VIRTIO_PCI_COMMON_QUEUE_NOTIFY_OFF);
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DESC, (uint32_t)base);
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DESC + 4, (uint32_t)(base >> 32));
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DRIVER, (uint32_t)(base + RING_AVAIL_OFF));
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DRIVER + 4, (uint32_t)((base + RING_AVAIL_OFF) >> 32));
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DEVICE, (uint32_t)(base + RING_USED_OFF));
	mmio_write32(c + VIRTIO_PCI_COMMON_QUEUE_DEVICE + 4, (uint32_t)((base + RING_USED_OFF) >> 32));
	mmio_write16(c + VIRTIO_PCI_COMMON_QUEUE_ENABLE, 1);
	fz_state.queue_size[op->q % FZ_QUEUES] = r->size;
	fz_state.free_desc[op->q % FZ_QUEUES] = r->size;
	return 0;
}

/* ---------------------------------------------------------------- virtio-mmio */

/* Is [lo, hi) inside one ring's memory? */
static bool in_ring_mem(uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		uint64_t base = virt_to_phys(rings[i].mem);
		if (lo >= base && hi <= base + RING_BYTES && lo <= hi)
			return true;
	}
	return false;
}

/* The three rings a legacy device places from desc, num and align (2.7.2
 * legacy layout): inside one ring's memory? Rounding is done both the
 * spec's way (a power-of-two mask) and QEMU's (division), so an odd
 * QueueAlign is judged by the worse of the two. desc 0: no rings. */
static bool v1_span_ok(uint64_t desc, uint64_t num, uint64_t align)
{
	if (desc == 0)
		return true;
	uint64_t avail_end = desc + 16 * num + 6 + 2 * num;
	uint64_t up = align ? (avail_end + align - 1) / align * align : avail_end;
	uint64_t masked = align ? (avail_end + align - 1) & ~(align - 1) : avail_end;
	uint64_t lo = desc < masked ? desc : masked, hi = (up > masked ? up : masked) + 6 + 8 * num;
	return up >= avail_end && in_ring_mem(lo, hi);
}

/* The value's bytes that land in [reg, reg + 4) of a write of `w` bytes at off. */
static uint32_t bytes_in(uint64_t off, unsigned w, uint64_t v, unsigned reg)
{
	uint32_t out = 0;
	for (unsigned i = 0; i < w; i++)
		if (off + i >= reg && off + i < reg + 4u)
			out |= (uint32_t)((v >> (8 * i)) & 0xff) << (8 * (off + i - reg));
	return out;
}

static bool overlaps(uint64_t off, unsigned w, unsigned reg) { return off < reg + 4u && off + w > reg; }

/*
 * Check one mmio register write against the model; 0 and the model updated
 * as the spec says the device now stands, or -EINVAL with why. Called
 * before the write, which the caller then does.
 */
static int mmio_check_write(uint64_t off, unsigned w, uint64_t v, char *why, size_t why_len)
{
	bool exact = w == 4 && (off & 3) == 0;
	uint32_t sel = mm.sel, val = (uint32_t)v;
	bool sel_ok = sel < FZ_QUEUES;
	if (off < VIRTIO_MMIO_QUEUE_DEVICE_LOW + 8 && off + w > VIRTIO_MMIO_QUEUE_DESC_LOW) {
		snprintf(why, why_len, "ring addresses are written only by qsetup and qaddr");
		return -EINVAL;
	}
	if (transport == T_MMIO1) {
		static const unsigned placed[] = { VIRTIO_MMIO_GUEST_PAGE_SIZE, VIRTIO_MMIO_QUEUE_NUM,
						   VIRTIO_MMIO_QUEUE_ALIGN, VIRTIO_MMIO_QUEUE_PFN };
		for (unsigned i = 0; i < 4; i++) {
			unsigned reg = placed[i];
			if (!overlaps(off, w, reg))
				continue;
			if (!exact || (reg != VIRTIO_MMIO_GUEST_PAGE_SIZE && sel == SEL_UNKNOWN)) {
				snprintf(why, why_len, "v1's ring placement (%#x) is written whole, with QueueSel known", reg);
				return -EINVAL;
			}
			if (reg == VIRTIO_MMIO_QUEUE_NUM && sel_ok) {
				uint32_t n = val > mm.vnum[sel] ? val : mm.vnum[sel];
				if (!v1_span_ok(mm.desc[sel], n, mm.align[sel]))
					goto outside;
				mm.vnum[sel] = n;
			} else if (reg == VIRTIO_MMIO_QUEUE_ALIGN && sel_ok) {
				if (!v1_span_ok(mm.desc[sel], mm.vnum[sel], val))
					goto outside;
				if (val)
					mm.align[sel] = val;
			} else if (reg == VIRTIO_MMIO_QUEUE_PFN && val) {
				uint64_t ps = mm.page_size, desc = (uint64_t)val * ps;
				if (!sel_ok || ps == 0 || (ps & (ps - 1))) {
					snprintf(why, why_len, "QueuePFN with %s", !sel_ok ? "QueueSel beyond the ring memory"
						 : "a GuestPageSize that is no power of two");
					return -EINVAL;
				}
				if (!v1_span_ok(desc, mm.vnum[sel], mm.align[sel]))
					goto outside;
				mm.desc[sel] = desc;
			} else if (reg == VIRTIO_MMIO_GUEST_PAGE_SIZE) {
				mm.page_size = val;
			}
		}
	} else if (overlaps(off, w, VIRTIO_MMIO_QUEUE_READY) &&
		   bytes_in(off, w, v, VIRTIO_MMIO_QUEUE_READY) != 0) {
		uint32_t n = sel_ok ? mm.num[sel] : NUM_UNKNOWN;
		if (!exact || !sel_ok || !mm.addrs_ok[sel] || n == NUM_UNKNOWN || n > FZ_RING_MAX) {
			snprintf(why, why_len, "QueueReady only for a selected queue whose addresses and size "
				 "(<= %u) are known", FZ_RING_MAX);
			return -EINVAL;
		}
	}
	if (overlaps(off, w, VIRTIO_MMIO_QUEUE_SEL))
		mm.sel = exact ? val : SEL_UNKNOWN;
	if (transport == T_MMIO && overlaps(off, w, VIRTIO_MMIO_QUEUE_NUM)) {
		if (exact && sel_ok)
			mm.num[sel] = val;
		else if (sel_ok)
			mm.num[sel] = NUM_UNKNOWN;
		else if (sel == SEL_UNKNOWN)
			mmio_forget();
	}
	if (transport == T_MMIO && overlaps(off, w, VIRTIO_MMIO_STATUS))
		mmio_forget(); /* it may have been a reset */
	if (exact && off == VIRTIO_MMIO_DEVICE_FEATURES_SEL)
		mm.feature_sel = val;
	if (exact && off == VIRTIO_MMIO_DRIVER_FEATURES_SEL)
		mm.driver_feature_sel = val;
	if (exact && off == VIRTIO_MMIO_DRIVER_FEATURES && mm.driver_feature_sel < 2) {
		int sh = mm.driver_feature_sel ? 32 : 0;
		driver_features = (driver_features & ~(0xffffffffULL << sh)) | (uint64_t)val << sh;
	}
	if (exact && off == VIRTIO_MMIO_STATUS && val == 0)
		driver_features = 0;
	return 0;
outside:
	snprintf(why, why_len, "the rings of queue %u would leave the ring memory", sel);
	return -EINVAL;
}

static void mmio_reg_write(uint64_t off, unsigned w, uint64_t v) { reg_write(vd->mmio + off, w, v); }

/* A write the model allows, or nothing and -EINVAL. */
static int mmio_write_checked(uint64_t off, unsigned w, uint64_t v, char *why, size_t why_len)
{
	int rc = mmio_check_write(off, w, v, why, why_len);
	if (rc == 0)
		mmio_reg_write(off, w, v);
	return rc;
}

static int mmio_qsetup(const struct fz_op *op, struct fz_ring *r, uint64_t base, char *why, size_t why_len)
{
	int rc;
	uint16_t size = r->size;
	if (transport == T_MMIO1) {
		const uint64_t align = VIRTIO_MMIO_LEGACY_PAGE;
		r->avail_off = 16u * size;
		r->used_off = (uint32_t)((r->avail_off + 6 + 2u * size + align - 1) & ~(align - 1));
		if ((rc = mmio_write_checked(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4, VIRTIO_MMIO_LEGACY_PAGE, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_SEL, 4, op->q, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_NUM, 4, size, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_ALIGN, 4, align, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_PFN, 4, base / VIRTIO_MMIO_LEGACY_PAGE, why, why_len)))
			return rc;
		return 0;
	}
	mmio_reg_write(VIRTIO_MMIO_QUEUE_SEL, 4, op->q);
	mm.sel = op->q;
	if ((rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_NUM, 4, size, why, why_len)) < 0)
		return rc;
	const uint64_t addr[3] = { base, base + RING_AVAIL_OFF, base + RING_USED_OFF };
	for (unsigned i = 0; i < 3; i++) {
		mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i, 4, (uint32_t)addr[i]);
		mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i + 4, 4, (uint32_t)(addr[i] >> 32));
	}
	if (op->q < FZ_QUEUES)
		mm.addrs_ok[op->q] = true;
	return mmio_write_checked(VIRTIO_MMIO_QUEUE_READY, 4, 1, why, why_len);
}

/* qaddr: select Q, give it three ring addresses inside its ring memory. */
static int exec_qaddr(const struct fz_op *op, char *why, size_t why_len)
{
	if (transport != T_MMIO) {
		snprintf(why, why_len, "qaddr is for virtio-mmio version 2 (v1 places rings by QueuePFN)");
		return -EINVAL;
	}
	for (unsigned i = 0; i < 3; i++)
		if (op->qoff[i] > QADDR_MAX) {
			snprintf(why, why_len, "offset %#x is beyond %#x: the ring would leave its memory", op->qoff[i],
				 QADDR_MAX);
			return -EINVAL;
		}
	uint64_t base = virt_to_phys(rings[op->q % FZ_QUEUES].mem);
	mmio_reg_write(VIRTIO_MMIO_QUEUE_SEL, 4, op->q);
	mm.sel = op->q;
	for (unsigned i = 0; i < 3; i++) {
		uint64_t a = base + op->qoff[i];
		mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i, 4, (uint32_t)a);
		mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i + 4, 4, (uint32_t)(a >> 32));
	}
	if (op->q < FZ_QUEUES)
		mm.addrs_ok[op->q] = true;
	return 0;
}

static int exec_mw(const struct fz_op *op, char *why, size_t why_len)
{
	if (transport == T_PCI) {
		snprintf(why, why_len, "mw is for virtio-mmio; the balloon is on PCI (cw)");
		return -EINVAL;
	}
	if (op->off + op->width > vd->mmio_size) {
		snprintf(why, why_len, "outside the mmio register block");
		return -EINVAL;
	}
	return mmio_write_checked(op->off, op->width, op->value, why, why_len);
}

static int exec_mr(const struct fz_op *op, char *why, size_t why_len)
{
	if (transport == T_PCI || op->off + op->width > vd->mmio_size) {
		snprintf(why, why_len, transport == T_PCI ? "mr is for virtio-mmio; the balloon is on PCI (cr)"
							  : "outside the mmio register block");
		return -EINVAL;
	}
	uint64_t v = reg_read(vd->mmio + op->off, op->width);
	printf("fz> = %#lx\n", (unsigned long)v);
	if (op->width != 4)
		return 0;
	if (op->off == VIRTIO_MMIO_DEVICE_FEATURES && mm.feature_sel < 2) {
		int sh = mm.feature_sel ? 32 : 0;
		fz_state.device_features = (fz_state.device_features & ~(0xffffffffULL << sh)) | v << sh;
	}
	if (op->off == VIRTIO_MMIO_QUEUE_NUM_MAX && mm.sel < FZ_QUEUES && mm.num[mm.sel] == NUM_UNKNOWN)
		mm.num[mm.sel] = (uint32_t)v; /* the size the device takes when none is written */
	return 0;
}

/* ---------------------------------------------------------------- packed rings */

static uint16_t pstep(const struct fz_ring *r, uint16_t slot, bool *wrap)
{
	if (++slot >= r->size) {
		slot = 0;
		*wrap = !*wrap;
	}
	return slot;
}

static int exec_padd(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &rings[op->q % FZ_QUEUES];
	if (r->size == 0 || !r->packed) {
		snprintf(why, why_len, "queue %u is %s", op->q, r->size ? "split: add writes its descriptors"
								: "not set up");
		return -EINVAL;
	}
	if (op->slot >= r->size) {
		snprintf(why, why_len, "slot %u is beyond the queue's %u", op->slot, r->size);
		return -EINVAL;
	}
	unsigned n = op->ind ? 1 : op->n_segs;
	if (n > r->size) {
		snprintf(why, why_len, "%u descriptors do not fit a queue of %u", n, r->size);
		return -EINVAL;
	}
	uint64_t addr[FZ_MAX_SEGS];
	uint32_t len[FZ_MAX_SEGS];
	for (unsigned i = 0; i < op->n_segs; i++) {
		int rc = build_seg(op->q, &op->seg[i], op->hide, &addr[i], &len[i], why, why_len);
		if (rc < 0)
			return rc;
	}
	struct vq_pdesc d[FZ_MAX_SEGS];
	if (op->ind) {
		size_t table_bytes = (size_t)op->n_segs * sizeof(struct vq_pdesc);
		if (op->indlen != FZ_NONE && (size_t)op->indlen > table_bytes)
			table_bytes = (size_t)op->indlen; /* a device reading that far finds zeros */
		struct vq_pdesc *t = scratch_alloc(table_bytes);
		if (!t) {
			snprintf(why, why_len, "indirect table does not fit the scratch area");
			return -EINVAL;
		}
		for (unsigned i = 0; i < op->n_segs; i++)
			t[i] = (struct vq_pdesc){ addr[i], len[i], op->bid,
				(uint16_t)((op->seg[i].writable ? VQ_DESC_F_WRITE : 0) | (op->nest ? VQ_DESC_F_INDIRECT : 0)) };
		uint32_t ilen = op->indlen != FZ_NONE ? (uint32_t)op->indlen : (uint32_t)(op->n_segs * sizeof(*t));
		d[0] = (struct vq_pdesc){ virt_to_phys(t), ilen, op->bid, VQ_DESC_F_INDIRECT };
	} else {
		for (unsigned i = 0; i < n; i++)
			d[i] = (struct vq_pdesc){ addr[i], len[i], op->bid,
				(uint16_t)((op->seg[i].writable ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)) };
	}
	/* AVAIL = the wrap counter of the slot's pass, USED = its opposite
	 * (2.8.1); the first descriptor's bits as the op says. */
	uint16_t slots[FZ_MAX_SEGS], slot = op->slot;
	bool wrap = op->wrap;
	for (unsigned i = 0; i < n; i++) {
		slots[i] = slot;
		bool av = wrap, us = !wrap;
		if (i == 0 && op->av != FZ_NONE)
			av = op->av;
		if (i == 0 && op->us != FZ_NONE)
			us = op->us;
		d[i].flags |= (uint16_t)((av ? VQ_PDESC_F_AVAIL : 0) | (us ? VQ_PDESC_F_USED : 0));
		slot = pstep(r, slot, &wrap);
	}
	struct vq_pdesc *ring = (struct vq_pdesc *)r->mem;
	/* In order, the first descriptor's flags go last, by a release store,
	 * so the device sees the whole chain at once; `rev` publishes the
	 * first descriptor before the others are written. */
	if (op->rev)
		__atomic_store_n(&ring[slots[0]].flags, 0, __ATOMIC_RELAXED);
	for (unsigned k = 0; k < n; k++) {
		unsigned i = op->rev ? k : n - 1 - k;
		struct vq_pdesc *p = &ring[slots[i]];
		p->addr = d[i].addr;
		p->len = d[i].len;
		p->id = d[i].id;
		__atomic_store_n(&p->flags, d[i].flags, __ATOMIC_RELEASE);
	}
	if (op->bid < FZ_RING_MAX) {
		if (r->id_n[op->bid])
			r->in_flight = (uint16_t)(r->in_flight - r->id_n[op->bid]); /* reused: the new chain counts */
		r->id_n[op->bid] = (uint8_t)n;
	}
	r->in_flight = (uint16_t)(r->in_flight + n);
	fz_state.pnext[op->q % FZ_QUEUES] = slot;
	fz_state.pwrap[op->q % FZ_QUEUES] = wrap;
	if (op->seg[0].kind == FZ_SEG_STATS)
		fz_state.stats_in_flight = true;
	return 0;
}

/* Used descriptors from next_used on: USED and AVAIL both equal to the used
 * wrap counter (2.8.1). Each names a buffer id, whose descriptors the
 * device skipped (2.8.7). */
static void exec_wait_packed(const struct fz_op *op, struct fz_ring *r)
{
	volatile struct vq_pdesc *ring = (volatile struct vq_pdesc *)r->mem;
	uint64_t deadline = clock_ms() + op->off;
	for (unsigned seen = 0; seen < r->size;) {
		uint16_t flags = ring[r->next_used].flags;
		bool used = (flags & VQ_PDESC_F_USED) != 0, avail = (flags & VQ_PDESC_F_AVAIL) != 0;
		if (used != r->used_wrap || avail != r->used_wrap) {
			if (seen || clock_ms() >= deadline)
				return;
			cpu_relax();
			continue;
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint16_t id = ring[r->next_used].id;
		uint32_t len = ring[r->next_used].len;
		seen++;
		prog.used++;
		fz_counters.used++;
		bool known = id < FZ_RING_MAX && r->id_n[id];
		printf("fz> used %u slot=%u id=%u len=%u%s\n", op->q, r->next_used, id, len,
		       known ? "" : " (not a buffer in flight)");
		unsigned skip = known ? r->id_n[id] : 1;
		if (!known) {
			prog.bad_used++;
			fz_counters.bad_used++;
			if (prog.valid && !fz_state.needs_reset)
				finding("bad_used", "used descriptor names buffer id %lu on queue %lu, not one in flight", id,
					op->q);
		} else {
			r->in_flight = (uint16_t)(r->in_flight - r->id_n[id]);
			r->id_n[id] = 0;
		}
		for (unsigned i = 0; i < skip; i++)
			r->next_used = pstep(r, r->next_used, &r->used_wrap);
	}
}

static int exec_pevent(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &rings[op->q % FZ_QUEUES];
	if (r->size == 0 || !r->packed) {
		snprintf(why, why_len, "queue %u is not a packed ring", op->q);
		return -EINVAL;
	}
	uint32_t word = (uint32_t)op->off | (uint32_t)op->value << 16;
	__atomic_store_n((vq_event_word *)(r->mem + RING_AVAIL_OFF), word, __ATOMIC_RELEASE);
	return 0;
}

/* ---------------------------------------------------------------- one op */

static int refuse(const char *text, const char *why)
{
	fz_counters.refused++;
	printf("fz> refused \"%s\": %s\n", text, why);
	return -EINVAL;
}

int fz_exec(const struct fz_op *op)
{
	char text[FZ_LINE_MAX + 16], why[160] = "";
	if (fz_format(op, text, sizeof(text)) < 0)
		return refuse("?", "op does not print");
	if (!console_at_line_start())
		putchar('\n'); /* after a prompt: tools read ops from the start of a line */
	printf("fz %s\n", text);
	fz_counters.ops++;
	prog.op_index++;
	volatile uint8_t *c = vd->common; /* modern PCI's; NULL on mmio */
	int rc = 0;
	uint64_t v;
	switch (op->kind) {
	case FZ_PROG:
		program_start(op);
		return 0;
	case FZ_CHECK:
		program_check();
		return 0;
	case FZ_RESET: {
		if (transport == T_PCI)
			mmio_write8(c + VIRTIO_PCI_COMMON_DEVICE_STATUS, 0);
		else if (mmio_check_write(VIRTIO_MMIO_STATUS, 4, 0, why, sizeof(why)) == 0)
			mmio_reg_write(VIRTIO_MMIO_STATUS, 4, 0);
		driver_features = 0;
		uint64_t start = clock_ms();
		while (status() != 0 && clock_ms() - start < 1000)
			cpu_relax();
		if (status() != 0)
			finding("reset", "status still %#lx %lu ms after writing 0", status(), clock_ms() - start);
		forget_rings();
		fz_state.needs_reset = false;
		break;
	}
	case FZ_CW:
	case FZ_CR:
		if (transport != T_PCI)
			return refuse(text, "cw and cr are modern PCI's; the balloon is on virtio-mmio (mw, mr)");
		if (op->off + op->width > common_len)
			return refuse(text, "outside the common configuration");
		if (op->kind == FZ_CW && op->off < RING_ADDR_END && op->off + op->width > RING_ADDR_FIRST)
			return refuse(text, "ring addresses are written only by qsetup");
		if (op->kind == FZ_CW) {
			reg_write(c + op->off, op->width, op->value);
			if (op->off == VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT && op->width == 4)
				feature_select = (uint32_t)op->value;
			if (op->off == VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT && op->width == 4)
				driver_feature_select = (uint32_t)op->value;
			if (op->off == VIRTIO_PCI_COMMON_DRIVER_FEATURE && op->width == 4 && driver_feature_select < 2) {
				int sh = driver_feature_select ? 32 : 0;
				driver_features = (driver_features & ~(0xffffffffULL << sh)) | (op->value & 0xffffffffULL) << sh;
			}
			if (op->off == VIRTIO_PCI_COMMON_DEVICE_STATUS && op->width == 1) {
				if (op->value == 0)
					forget_rings();
				fz_state.up = (op->value & VIRTIO_STATUS_DRIVER_OK) && (status() & VIRTIO_STATUS_DRIVER_OK);
			}
			break;
		}
		v = reg_read(c + op->off, op->width);
		printf("fz> = %#lx\n", (unsigned long)v);
		if (op->off == VIRTIO_PCI_COMMON_DEVICE_FEATURE && op->width == 4 && feature_select < 2) {
			int sh = feature_select ? 32 : 0;
			fz_state.device_features = (fz_state.device_features & ~(0xffffffffULL << sh)) | v << sh;
		}
		if (op->off == VIRTIO_PCI_COMMON_NUM_QUEUES && op->width == 2)
			fz_state.num_queues = (uint16_t)v;
		break;
	case FZ_DW:
	case FZ_DR: {
		volatile uint8_t *cfg = transport == T_PCI ? vd->device_cfg : vd->mmio + VIRTIO_MMIO_CONFIG;
		if (!cfg || op->off + op->width > fz_state.device_cfg_len)
			return refuse(text, "outside the device configuration");
		if (op->kind == FZ_DW)
			reg_write(cfg + op->off, op->width, op->value);
		else
			printf("fz> = %#lx\n", (unsigned long)reg_read(cfg + op->off, op->width));
		break;
	}
	case FZ_WW:
	case FZ_WR: {
		if (!window_cap)
			return refuse(text, "the device has no PCI configuration window");
		/* The window reaches the whole BAR whatever BAR it names (QEMU),
		 * so the ring-address registers are guarded by offset alone. */
		uint64_t lo = common_bar_off + RING_ADDR_FIRST, hi = common_bar_off + RING_ADDR_END;
		if (op->kind == FZ_WW && op->off < hi && op->off + (op->width ? op->width : 1) > lo)
			return refuse(text, "ring addresses are written only by qsetup");
		struct pci_dev *d = vd->pci;
		/* The BAR byte shares a dword with id and padding: written as read. */
		uint32_t head = pci_read32(d, window_cap + VIRTIO_PCI_CAP_BAR);
		pci_write32(d, window_cap + VIRTIO_PCI_CAP_BAR, (head & ~0xffu) | op->q);
		pci_write32(d, window_cap + VIRTIO_PCI_CAP_OFFSET, (uint32_t)op->off);
		pci_write32(d, window_cap + VIRTIO_PCI_CAP_LENGTH, op->width);
		if (op->kind == FZ_WW)
			pci_write32(d, window_cap + VIRTIO_PCI_CAP_PCI_CFG_DATA, (uint32_t)op->value);
		else
			printf("fz> = %#x\n", pci_read32(d, window_cap + VIRTIO_PCI_CAP_PCI_CFG_DATA));
		break;
	}
	case FZ_QSETUP:
		rc = exec_qsetup(op, why, sizeof(why));
		break;
	case FZ_ADD:
		rc = exec_add(op, why, sizeof(why));
		break;
	case FZ_AVAIL: {
		struct fz_ring *r = &rings[op->q % FZ_QUEUES];
		if (r->packed)
			return refuse(text, "a packed ring has no available index");
		r->avail_idx = (uint16_t)(r->avail_idx + op->off);
		((struct vq_avail *)(r->mem + r->avail_off))->idx = r->avail_idx;
		break;
	}
	case FZ_KICK: {
		if (transport != T_PCI) {
			mmio_reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, op->q);
			break;
		}
		uint64_t at = (uint64_t)rings[op->q % FZ_QUEUES].notify_off * vd->notify_mult;
		if (op->q >= FZ_QUEUES || at + 2 > vd->notify_len)
			return refuse(text, "no notify address for this queue");
		mmio_write16(vd->notify + at, op->q);
		break;
	}
	case FZ_WAIT:
		exec_wait(op);
		break;
	case FZ_MW:
		rc = exec_mw(op, why, sizeof(why));
		break;
	case FZ_MR:
		rc = exec_mr(op, why, sizeof(why));
		break;
	case FZ_QADDR:
		rc = exec_qaddr(op, why, sizeof(why));
		break;
	case FZ_PADD:
		rc = exec_padd(op, why, sizeof(why));
		break;
	case FZ_PEVENT:
		rc = exec_pevent(op, why, sizeof(why));
		break;
	}
	if (rc < 0)
		return refuse(text, why);
	watch_status();
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		if (rings[i].packed) {
			fz_state.free_desc[i] = (uint16_t)(rings[i].in_flight >= rings[i].size ? 0
							   : rings[i].size - rings[i].in_flight);
			continue;
		}
		unsigned busy = 0;
		for (unsigned k = 0; k < rings[i].size && k < FZ_RING_MAX; k++)
			busy += rings[i].busy[k];
		fz_state.free_desc[i] = (uint16_t)(rings[i].size - busy);
	}
	return 0;
}
