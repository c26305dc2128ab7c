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
 * Three transports: modern PCI (cw/cr on the common configuration, here),
 * virtio-mmio version 2 and version 1 (mw/mr on the register block, with
 * the model that keeps rings inside their memory: fz_mmio.c). Split rings
 * are written here, packed ones by fz_packed.c, in the same ring memory.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "devfuzz.h"
#include "fz_internal.h"
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
#define PATTERN_WORDS 8                        /* checked words per arena frame */

struct fz_state fz_state;
struct fz_counters fz_counters;

struct virtio_dev *fz_vd;
static uint8_t window_cap;                 /* VIRTIO_PCI_CAP_PCI_CFG, 0 if none */
static uint32_t common_len, common_bar_off;
struct fz_ring fz_rings[FZ_QUEUES];
static void arena_refill(void);
static uint8_t *arena, *scratch;
static size_t scratch_used;
static bool exposed[FZ_ARENA_FRAMES];
static uint32_t feature_select, driver_feature_select;
uint8_t fz_transport;                      /* FZ_T_* */
uint64_t fz_driver_features;               /* as last written: decides packed at qsetup */
static uint64_t pattern_seed = 0x5eedb1a3c0ffeeULL;
struct fz_prog fz_prog;

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

void *fz_scratch_alloc(size_t bytes)
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
uint64_t fz_reg_read(volatile uint8_t *p, unsigned width)
{
	switch (width) {
	case 1: return mmio_read8(p);
	case 2: return mmio_read16(p);
	case 4: return mmio_read32(p);
	default: return mmio_read64(p);
	}
}

void fz_reg_write(volatile uint8_t *p, unsigned width, uint64_t v)
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
	if (fz_transport != FZ_T_PCI)
		return (uint8_t)mmio_read32(fz_vd->mmio + VIRTIO_MMIO_STATUS);
	return mmio_read8(fz_vd->common + VIRTIO_PCI_COMMON_DEVICE_STATUS);
}

static void forget_rings(void)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		struct fz_ring *r = &fz_rings[i];
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
	fz_vd = virtio_find(VIRTIO_ID_BALLOON);
	if (!fz_vd) {
		printf("fuzz: no virtio-balloon device to fuzz\n");
		return -ENODEV;
	}
	if (fz_vd->pci && fz_vd->legacy) { /* legacy PCI's I/O registers: no ops for them */
		printf("fuzz: the balloon is on %s; the device fuzzer drives modern PCI and virtio-mmio\n",
		       fz_vd->ops->name);
		fz_vd = NULL;
		return -EPROTONOSUPPORT;
	}
	fz_vd->driver = &fz_state; /* taken: no driver binds it */
	fz_transport = fz_vd->pci ? FZ_T_PCI : fz_vd->legacy ? FZ_T_MMIO1 : FZ_T_MMIO;
	fz_state.transport = (uint8_t)fz_transport;
	fz_mmio_init();
	struct pci_dev *d = fz_vd->pci;
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
		if (!(fz_rings[i].mem = mm_alloc_dma(RING_BYTES)))
			return -ENOMEM;
		fz_state.ring_pfn[i] = (uint32_t)(virt_to_phys(fz_rings[i].mem) >> PAGE_SHIFT);
	}
	int64_t pfn = pfa_alloc_block(&kernel_pfa, FZ_ARENA_ORDER);
	scratch = mm_alloc_dma(FZ_SCRATCH_BYTES);
	if (pfn < 0 || !scratch) {
		printf("fuzz: no memory for the 32 MiB arena and 2 MiB scratch area\n");
		return -ENOMEM;
	}
	arena = phys_to_virt((uint64_t)pfn << PAGE_SHIFT);
	fz_state.arena_pfn = (uint64_t)pfn;
	fz_state.device_cfg_len = fz_vd->device_cfg_len;
	if (fz_transport != FZ_T_PCI) /* the rest of the 512-byte block, up to 256 bytes */
		fz_state.device_cfg_len = fz_vd->mmio_size - VIRTIO_MMIO_CONFIG > 256 ? 256
					: (uint32_t)(fz_vd->mmio_size - VIRTIO_MMIO_CONFIG);
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
		   fz_state.device_cfg_len, fz_vd->ops->name);
	return 0;
}

void fz_exec_set_pattern_seed(uint64_t seed)
{
	pattern_seed = prng_mix64(seed);
	arena_refill(); /* ops before any `prog` are checked against these */
}

int fz_exec_pick_desc(uint16_t q, unsigned n, uint16_t *out)
{
	struct fz_ring *r = &fz_rings[q % FZ_QUEUES];
	unsigned got = 0;
	for (uint16_t i = 0; i < r->size && i < FZ_RING_MAX && got < n; i++)
		if (!r->busy[i])
			out[got++] = i;
	return got == n ? 0 : -ENOSPC;
}

int fz_exec_pick_id(uint16_t q)
{
	struct fz_ring *r = &fz_rings[q % FZ_QUEUES];
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
	fz_prog.number = op->off;
	fz_prog.valid = op->value;
	fz_prog.op_index = fz_prog.used = fz_prog.bad_used = 0;
	fz_prog.needs_reset_op = 0;
	fz_state.needs_reset = false;
	memset(scratch, 0, scratch_used);
	scratch_used = 0;
	arena_refill();
	memset(fz_state.inflated, 0, sizeof(fz_state.inflated));
	fz_counters.programs++;
	fz_counters.valid_programs += fz_prog.valid;
}

void fz_finding(const char *kind, const char *fmt_detail, uint64_t a, uint64_t b)
{
	char detail[160];
	snprintf(detail, sizeof(detail), fmt_detail, (unsigned long)a, (unsigned long)b);
	fz_counters.findings++;
	printf("fz> FINDING %s: %s\n", kind, detail);
	event_emit("fuzz_finding", "\"kind\":\"%s\",\"prog\":%lu,\"op\":%lu,\"valid\":%d,\"detail\":\"%s\"", kind,
		   (unsigned long)fz_prog.number, (unsigned long)fz_prog.op_index, fz_prog.valid, detail);
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
		fz_finding("pattern", "%lu arena frames never given to the device lost their contents (first at op %lu)",
			bad_frames, fz_prog.op_index);
	unsigned exposed_n = 0;
	for (uint32_t f = 0; f < FZ_ARENA_FRAMES; f++)
		exposed_n += exposed[f];
	printf("fz> check status %#x, %u frames exposed, %u patterns lost\n", st, exposed_n, bad_frames);
	event_emit("fuzz_program", "\"prog\":%lu,\"valid\":%d,\"ops\":%lu,\"status\":%u,\"needs_reset_op\":%lu,"
		   "\"exposed\":%u,\"pattern_errors\":%u,\"used\":%lu,\"bad_used\":%lu", (unsigned long)fz_prog.number,
		   fz_prog.valid, (unsigned long)fz_prog.op_index, st, (unsigned long)fz_prog.needs_reset_op, exposed_n,
		   bad_frames, (unsigned long)fz_prog.used, (unsigned long)fz_prog.bad_used);
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
	fz_prog.needs_reset_op = fz_prog.op_index;
	if (fz_prog.valid) {
		fz_counters.needs_reset_valid++;
		fz_finding("needs_reset_valid", "the device set DEVICE_NEEDS_RESET (status %#lx) after op %lu of a valid program",
			st, fz_prog.op_index);
	} else {
		fz_counters.needs_reset_bad++;
		printf("fz> needs_reset status %#x after op %lu\n", st, (unsigned long)fz_prog.op_index);
	}
}

/* ---------------------------------------------------------------- buffers */

/* Build one segment's bytes; 0 with addr/len set, or -EINVAL with why. */
int fz_build_seg(uint16_t q, const struct fz_seg *s, bool hide, uint64_t *addr, uint32_t *len,
		     char *why, size_t why_len)
{
	switch (s->kind) {
	case FZ_SEG_PFNS: {
		uint64_t n = fz_seg_frames(s);
		uint32_t *p = fz_scratch_alloc(n * 4);
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
		uint8_t *p = fz_scratch_alloc((size_t)s->len * 10);
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
		uint8_t *p = fz_scratch_alloc(s->len ? s->len : 1);
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

int fz_build_segs(const struct fz_op *op, uint64_t *addr, uint32_t *len, char *why, size_t why_len)
{
	for (unsigned i = 0; i < op->n_segs; i++) {
		int rc = fz_build_seg(op->q, &op->seg[i], op->hide, &addr[i], &len[i], why, why_len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int exec_add(const struct fz_op *op, char *why, size_t why_len)
{
	struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
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
	int rc = fz_build_segs(op, addr, len, why, why_len);
	if (rc < 0)
		return rc;
	struct vq_desc *desc = (struct vq_desc *)r->mem;
	unsigned last = op->n_segs ? op->n_segs - 1 : 0;
	if (op->ind) {
		size_t table_bytes = (size_t)op->n_segs * sizeof(struct vq_desc);
		if (op->indlen != FZ_NONE && (size_t)op->indlen > table_bytes)
			table_bytes = (size_t)op->indlen; /* a device reading that far finds zeros */
		struct vq_desc *t = fz_scratch_alloc(table_bytes ? table_bytes : 1);
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

static void exec_wait(const struct fz_op *op)
{
	struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
	if (r->size == 0)
		return;
	if (r->packed) {
		fz_packed_wait(op, r);
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
		fz_prog.bad_used++;
		fz_counters.bad_used++;
		printf("fz> used.idx of queue %u moved from %u to %u, more than its %u entries\n", op->q,
		       r->used_seen, idx, size);
		if (fz_prog.valid && !fz_state.needs_reset)
			fz_finding("bad_used", "used.idx moved by %lu on queue %lu", (uint16_t)(idx - r->used_seen), op->q);
		r->used_seen = idx;
		return;
	}
	for (; r->used_seen != idx; r->used_seen++) {
		struct vq_used_elem e = used->ring[r->used_seen % size];
		fz_prog.used++;
		fz_counters.used++;
		bool known = e.id < FZ_RING_MAX && r->chain_n[e.id];
		printf("fz> used %u id=%u len=%u%s\n", op->q, e.id, e.len, known ? "" : " (not a buffer in flight)");
		if (!known) {
			fz_prog.bad_used++;
			fz_counters.bad_used++;
			if (fz_prog.valid && !fz_state.needs_reset)
				fz_finding("bad_used", "used entry names descriptor %lu on queue %lu, not a head in flight", e.id,
					op->q);
			continue;
		}
		for (unsigned i = 0; i < r->chain_n[e.id]; i++)
			r->busy[r->chain[e.id][i]] = false;
		r->chain_n[e.id] = 0;
	}
}

static int exec_qsetup(const struct fz_op *op, char *why, size_t why_len)
{
	if (op->off > FZ_RING_MAX) {
		snprintf(why, why_len, "size %lu is beyond the ring memory (%u entries)", (unsigned long)op->off,
			 FZ_RING_MAX);
		return -EINVAL;
	}
	struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
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
	r->packed = fz_transport != FZ_T_MMIO1 && (fz_driver_features >> VQ_F_RING_PACKED & 1);
	r->used_wrap = true;
	r->next_used = r->in_flight = 0;
	fz_state.packed[op->q % FZ_QUEUES] = r->packed;
	fz_state.pnext[op->q % FZ_QUEUES] = 0;
	fz_state.pwrap[op->q % FZ_QUEUES] = true;
	uint64_t base = virt_to_phys(r->mem);
	if (fz_transport != FZ_T_PCI) {
		fz_state.queue_size[op->q % FZ_QUEUES] = r->size;
		fz_state.free_desc[op->q % FZ_QUEUES] = r->size;
		return fz_mmio_qsetup(op, r, base, why, why_len);
	}
	volatile uint8_t *c = fz_vd->common;
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
	fz_prog.op_index++;
	volatile uint8_t *c = fz_vd->common; /* modern PCI's; NULL on mmio */
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
		if (fz_transport == FZ_T_PCI)
			mmio_write8(c + VIRTIO_PCI_COMMON_DEVICE_STATUS, 0);
		else if (fz_mmio_check_write(VIRTIO_MMIO_STATUS, 4, 0, why, sizeof(why)) == 0)
			fz_mmio_reg_write(VIRTIO_MMIO_STATUS, 4, 0);
		fz_driver_features = 0;
		uint64_t start = clock_ms();
		while (status() != 0 && clock_ms() - start < 1000)
			cpu_relax();
		if (status() != 0)
			fz_finding("reset", "status still %#lx %lu ms after writing 0", status(), clock_ms() - start);
		forget_rings();
		fz_state.needs_reset = false;
		break;
	}
	case FZ_CW:
	case FZ_CR:
		if (fz_transport != FZ_T_PCI)
			return refuse(text, "cw and cr are modern PCI's; the balloon is on virtio-mmio (mw, mr)");
		if (op->off + op->width > common_len)
			return refuse(text, "outside the common configuration");
		if (op->kind == FZ_CW && op->off < RING_ADDR_END && op->off + op->width > RING_ADDR_FIRST)
			return refuse(text, "ring addresses are written only by qsetup");
		if (op->kind == FZ_CW) {
			fz_reg_write(c + op->off, op->width, op->value);
			if (op->off == VIRTIO_PCI_COMMON_DEVICE_FEATURE_SELECT && op->width == 4)
				feature_select = (uint32_t)op->value;
			if (op->off == VIRTIO_PCI_COMMON_DRIVER_FEATURE_SELECT && op->width == 4)
				driver_feature_select = (uint32_t)op->value;
			if (op->off == VIRTIO_PCI_COMMON_DRIVER_FEATURE && op->width == 4 && driver_feature_select < 2) {
				int sh = driver_feature_select ? 32 : 0;
				fz_driver_features = (fz_driver_features & ~(0xffffffffULL << sh)) | (op->value & 0xffffffffULL) << sh;
			}
			if (op->off == VIRTIO_PCI_COMMON_DEVICE_STATUS && op->width == 1) {
				if (op->value == 0)
					forget_rings();
				fz_state.up = (op->value & VIRTIO_STATUS_DRIVER_OK) && (status() & VIRTIO_STATUS_DRIVER_OK);
			}
			break;
		}
		v = fz_reg_read(c + op->off, op->width);
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
		volatile uint8_t *cfg = fz_transport == FZ_T_PCI ? fz_vd->device_cfg : fz_vd->mmio + VIRTIO_MMIO_CONFIG;
		if (!cfg || op->off + op->width > fz_state.device_cfg_len)
			return refuse(text, "outside the device configuration");
		if (op->kind == FZ_DW)
			fz_reg_write(cfg + op->off, op->width, op->value);
		else
			printf("fz> = %#lx\n", (unsigned long)fz_reg_read(cfg + op->off, op->width));
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
		struct pci_dev *d = fz_vd->pci;
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
		struct fz_ring *r = &fz_rings[op->q % FZ_QUEUES];
		if (r->packed)
			return refuse(text, "a packed ring has no available index");
		r->avail_idx = (uint16_t)(r->avail_idx + op->off);
		((struct vq_avail *)(r->mem + r->avail_off))->idx = r->avail_idx;
		break;
	}
	case FZ_KICK: {
		if (fz_transport != FZ_T_PCI) {
			fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, 4, op->q);
			break;
		}
		uint64_t at = (uint64_t)fz_rings[op->q % FZ_QUEUES].notify_off * fz_vd->notify_mult;
		if (op->q >= FZ_QUEUES || at + 2 > fz_vd->notify_len)
			return refuse(text, "no notify address for this queue");
		mmio_write16(fz_vd->notify + at, op->q);
		break;
	}
	case FZ_WAIT:
		exec_wait(op);
		break;
	case FZ_MW:
		rc = fz_mmio_mw(op, why, sizeof(why));
		break;
	case FZ_MR:
		rc = fz_mmio_mr(op, why, sizeof(why));
		break;
	case FZ_QADDR:
		rc = fz_mmio_qaddr(op, why, sizeof(why));
		break;
	case FZ_PADD:
		rc = fz_packed_add(op, why, sizeof(why));
		break;
	case FZ_PEVENT:
		rc = fz_packed_event(op, why, sizeof(why));
		break;
	}
	if (rc < 0)
		return refuse(text, why);
	watch_status();
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		if (fz_rings[i].packed) {
			fz_state.free_desc[i] = (uint16_t)(fz_rings[i].in_flight >= fz_rings[i].size ? 0
							   : fz_rings[i].size - fz_rings[i].in_flight);
			continue;
		}
		unsigned busy = 0;
		for (unsigned k = 0; k < fz_rings[i].size && k < FZ_RING_MAX; k++)
			busy += fz_rings[i].busy[k];
		fz_state.free_desc[i] = (uint16_t)(fz_rings[i].size - busy);
	}
	return 0;
}
