/*
 * balloon_sim: the balloon core on a simulated machine (see balloon_sim.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon_sim.h"
#include "kernel/addr.h"

#define LIE INT64_MIN

static const char *const role_names[BALLOON_NQ] = { "inflate", "deflate", "stats", "hint", "report" };

static void fail(struct bsim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct bsim *s, const char *fmt, ...)
{
	if (s->failure[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------- ops */

/*
 * The direct map's page tables, as arch/x86_64/paging.c keeps them, one
 * 2 MiB block at a time: a block without a table is all mapped or all
 * unmapped (one 2 MiB entry); changing part of it needs a table, a frame
 * from the allocator (never through the OOM handler) or, when it has none,
 * from a reserve of BSIM_TABLE_RESERVE frames refilled before every change.
 * A block whose frames are all mapped again gives its table back. Frames
 * outside [256, frames) are always mapped (firmware, MMIO in the kernel).
 */
#define BLOCK 512u

static bool frame_mapped(const struct bsim *s, uint64_t f)
{
	return f < 256 || f >= s->c.frames || s->mapped[f];
}

/* All frames of block `blk` in the state `mapped`? */
__attribute__((noinline)) static bool block_is(const struct bsim *s, uint64_t blk, bool mapped)
{
	uint64_t lo = blk * BLOCK;
	if (lo >= 256 && lo + BLOCK <= s->c.frames) /* all RAM: one byte search */
		return !memchr(s->mapped + lo, !mapped, BLOCK);
	for (uint64_t f = lo; f < lo + BLOCK; f++)
		if (frame_mapped(s, f) != mapped)
			return false;
	return true;
}

static int64_t table_alloc(struct bsim *s)
{
	int64_t pfn = pfa_alloc_block_flags(&s->pfa, 0, PFA_NO_OOM);
	if (pfn < 0 && s->n_reserve > 0) {
		pfn = (int64_t)s->reserve[--s->n_reserve];
		s->reserve_uses++;
	}
	return pfn;
}

static void table_drop(struct bsim *s, uint64_t pfn)
{
	if (s->n_reserve < BSIM_TABLE_RESERVE)
		s->reserve[s->n_reserve++] = pfn;
	else if (pfa_free_block(&s->pfa, pfn, 0, __func__) < 0)
		fail(s, "page table frame %#lx could not be freed", (unsigned long)pfn);
}

static void refill_reserve(struct bsim *s)
{
	while (s->n_reserve < BSIM_TABLE_RESERVE) {
		int64_t pfn = pfa_alloc_block_flags(&s->pfa, 0, PFA_NO_OOM);
		if (pfn < 0)
			break;
		s->reserve[s->n_reserve++] = (uint64_t)pfn;
	}
}

/* Map or unmap one run: a buddy block, so inside one 2 MiB block or whole
 * 2 MiB blocks; 0, or -ENOMEM with nothing changed. `mapped` is the state
 * the run must be in before (checked). */
__attribute__((noinline)) static int set_run(struct bsim *s, uint64_t pfn, unsigned order, bool map)
{
	const char *what = map ? "map" : "unmap";
	uint64_t end = pfn + (1ULL << order);
	for (uint64_t f = pfn; f < end; f++)
		if (f < 256 || f >= s->c.frames || s->mapped[f] == map) {
			fail(s, "%s: frame %#lx of run %#lx order %u is %s", what, (unsigned long)f, (unsigned long)pfn,
			     order, f < 256 || f >= s->c.frames ? "not RAM" : map ? "already mapped" : "not mapped");
			return -EINVAL;
		}
	refill_reserve(s);
	uint64_t blk = pfn / BLOCK;
	if (order < PFA_HUGE_ORDER && !s->table[blk]) {
		int64_t t = table_alloc(s);
		if (t < 0)
			return -ENOMEM;
		s->table[blk] = (uint64_t)t + 1;
		s->page_tables++;
	}
	for (uint64_t f = pfn; f < end; f++)
		s->mapped[f] = map;
	for (uint64_t b = blk; map && b * BLOCK < end; b++)
		if (s->table[b] && block_is(s, b, true)) {
			table_drop(s, s->table[b] - 1);
			s->table[b] = 0;
			s->page_tables--;
		}
	return 0;
}

static int op_unmap(void *ctx, uint64_t pfn, unsigned order)
{
	struct bsim *s = ctx;
	if (s->fail_maps) {
		s->fail_maps--;
		return -ENOMEM;
	}
	return set_run(s, pfn, order, false);
}

static int op_map(void *ctx, uint64_t pfn, unsigned order)
{
	struct bsim *s = ctx;
	if (s->fail_maps) {
		s->fail_maps--;
		return -ENOMEM;
	}
	return set_run(s, pfn, order, true);
}

static enum balloon_queue role_of(struct bsim *s, uint16_t idx)
{
	for (int q = 0; q < BALLOON_NQ; q++)
		if (s->live[q] && s->b.qidx[q] == idx)
			return (enum balloon_queue)q;
	return BALLOON_NQ;
}

static void op_notify(void *ctx, uint16_t idx)
{
	struct bsim *s = ctx;
	enum balloon_queue q = role_of(s, idx);
	if (q == BALLOON_NQ) {
		fail(s, "notify of device queue %u, which the balloon does not have", idx);
		return;
	}
	s->notifies[q]++;
	if (s->c.auto_answer & (1u << q))
		bsim_answer_all(s, q); /* like QEMU under TCG: during the notify */
}

/* Pages the guest has seen acknowledged on queue d (inflate 0, deflate 1):
 * the first vq.completed pushes. */
__attribute__((noinline)) static int64_t consumed_pages(struct bsim *s, int d)
{
	uint64_t n = s->vq[d].completed;
	if (n > s->n_pushes[d]) {
		fail(s, "the %s queue consumed %lu completions, the device pushed %u", role_names[d],
		     (unsigned long)n, s->n_pushes[d]);
		return 0;
	}
	for (; s->n_consumed[d] < n; s->n_consumed[d]++) {
		int64_t pages = s->push_pages[d][s->n_consumed[d]];
		if (pages == LIE) {
			fail(s, "the %s queue accepted completion %u, a lie", role_names[d], s->n_consumed[d]);
			return 0;
		}
		s->consumed[d] += pages;
	}
	return s->consumed[d];
}

static int op_config_write32(void *ctx, uint32_t off, uint32_t val)
{
	struct bsim *s = ctx;
	if (off == BALLOON_CFG_ACTUAL) {
		int64_t acked = consumed_pages(s, 0) - consumed_pages(s, 1);
		if ((int64_t)val != acked)
			fail(s, "actual written as %u, but the guest has seen %ld pages acknowledged", val, (long)acked);
		s->actual = val;
		s->actual_writes++;
	} else if (off == BALLOON_CFG_POISON_VAL) {
		s->poison_val = val;
		s->poison_writes++;
	} else {
		fail(s, "write of %#x to configuration offset %u", val, off);
		return -EIO;
	}
	memcpy(s->cfg + off, &val, 4);
	return 0;
}

static void op_queue_work(void *ctx)
{
	((struct bsim *)ctx)->work_pending = true;
}

static void op_timer_arm(void *ctx, enum balloon_timer t, uint64_t delay_ns)
{
	struct bsim *s = ctx;
	s->timer_armed[t] = true;
	s->timer_due[t] = s->now_ns + delay_ns;
}

static void op_timer_cancel(void *ctx, enum balloon_timer t)
{
	((struct bsim *)ctx)->timer_armed[t] = false;
}

static uint64_t op_now_ns(void *ctx)
{
	return ((struct bsim *)ctx)->now_ns;
}

static void op_relax(void *ctx)
{
	struct bsim *s = ctx;
	s->now_ns += 1000000;
	if (s->c.oom_answers && !s->in_relax) {
		s->in_relax = true;
		bsim_answer_all(s, BALLOON_Q_DEFLATE);
		s->in_relax = false;
	}
}

static void *op_dma_alloc(void *ctx, size_t bytes)
{
	struct bsim *s = ctx;
	if (s->n_dma == sizeof(s->dma) / sizeof(s->dma[0]))
		return NULL;
	void *p = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
	if (p) {
		memset(p, 0, bytes);
		s->dma[s->n_dma++] = p;
	}
	return p;
}

static void op_log(void *ctx, const char *line)
{
	if (((struct bsim *)ctx)->verbose)
		printf("  | %s\n", line);
}

static void op_event(void *ctx, const char *name, const char *fields)
{
	struct bsim *s = ctx;
	s->events++;
	if (!strcmp(name, "balloon_refused"))
		s->refusals++;
	if (s->verbose)
		printf("  @ %s %s\n", name, fields ? fields : "");
}

/* Workloads whose every page is in their working set: what can go is free
 * memory less a tenth of the sets and the reserve floor, as kernel/vm.c's
 * vm_avail says. */
static bool op_working_set(void *ctx, struct balloon_ws *w)
{
	struct bsim *s = ctx;
	uint64_t keep = s->ws_pages / 10 + s->pfa.reserve_floor, free = s->pfa.st.free;
	*w = (struct balloon_ws){ .ws = s->ws_pages, .margin = s->ws_pages / 10, .avail = free > keep ? free - keep : 0 };
	return s->ws_pages > 0;
}

static const struct balloon_ops sim_ops = {
	.unmap = op_unmap, .map = op_map, .notify = op_notify, .config_write32 = op_config_write32,
	.queue_work = op_queue_work, .timer_arm = op_timer_arm, .timer_cancel = op_timer_cancel,
	.now_ns = op_now_ns, .relax = op_relax, .device_failed = NULL, .dma_alloc = op_dma_alloc,
	.log = op_log, .event = op_event, .working_set = op_working_set,
};

/* ---------------------------------------------------------------- set up */

/*
 * The per-frame arrays outlive a machine: bsim_destroy keeps them and the
 * next bsim_init over no more frames takes them back, cleared as new (the
 * fuzzer builds a machine per input; malloc, page faults and ASan's
 * poisoning of fresh memory were a good part of its time). So does the
 * allocator as pfa_init and pfa_add_free_range leave it for a given size:
 * the same metadata buffer is put back in that state by a copy.
 */
static struct {
	uint64_t frames;       /* capacity of the arrays below; 0: none kept */
	void *meta, *snap_meta;
	uint8_t *mapped, *host_has, *snap_mapped, *snap_host;
	uint64_t *table, *snap_table, *blk_host;
	uint64_t tmpl_frames;  /* the allocator fresh over this many frames: */
	struct pfa tmpl_pfa;
	void *tmpl_meta;
} spare;

static void spare_release(void)
{
	free(spare.meta);
	free(spare.snap_meta);
	free(spare.tmpl_meta);
	free(spare.mapped);
	free(spare.host_has);
	free(spare.snap_mapped);
	free(spare.snap_host);
	free(spare.table);
	free(spare.snap_table);
	free(spare.blk_host);
	memset(&spare, 0, sizeof(spare));
}

/* Arrays for c->frames frames into s, reused when they fit. */
static void take_arrays(struct bsim *s, uint64_t frames)
{
	if (spare.frames < frames) {
		spare_release();
		size_t meta = pfa_metadata_size(frames), blocks = frames / BLOCK + 1;
		spare.frames = frames;
		spare.meta = malloc(meta);
		spare.snap_meta = malloc(meta);
		spare.tmpl_meta = malloc(meta);
		spare.mapped = malloc(frames);
		spare.host_has = malloc(frames);
		spare.snap_mapped = malloc(frames);
		spare.snap_host = malloc(frames);
		spare.table = malloc(blocks * sizeof(uint64_t));
		spare.snap_table = malloc(blocks * sizeof(uint64_t));
		spare.blk_host = malloc(blocks * sizeof(uint64_t));
	}
	size_t blocks = frames / BLOCK + 1;
	s->meta_size = pfa_metadata_size(frames);
	s->meta = spare.meta;
	s->snap_meta = spare.snap_meta;
	s->mapped = spare.mapped;
	s->host_has = spare.host_has;
	s->snap_mapped = spare.snap_mapped;
	s->snap_host = spare.snap_host;
	s->table = spare.table;
	s->snap_table = spare.snap_table;
	s->blk_host = spare.blk_host;
	memset(s->mapped, 1, frames);
	memset(s->host_has, 0, frames);
	memset(s->table, 0, blocks * sizeof(uint64_t));
	memset(s->blk_host, 0, blocks * sizeof(uint64_t));
}

/* The allocator over frames [256, frames) free, as pfa_init and
 * pfa_add_free_range make it (copied when this size was made before). */
static int fresh_pfa(struct bsim *s, uint64_t frames)
{
	if (spare.tmpl_frames == frames) {
		memcpy(s->meta, spare.tmpl_meta, s->meta_size);
		s->pfa = spare.tmpl_pfa;
		return 0;
	}
	spare.tmpl_frames = 0;
	if (pfa_init(&s->pfa, s->meta, s->meta_size, frames) < 0 || pfa_add_free_range(&s->pfa, 256, frames - 256) < 0)
		return -1;
	memcpy(spare.tmpl_meta, s->meta, s->meta_size);
	spare.tmpl_pfa = s->pfa;
	spare.tmpl_frames = frames;
	return 0;
}

int bsim_init(struct bsim *s, const struct bsim_config *c)
{
	memset(s, 0, sizeof(*s));
	s->c = *c;
	s->verbose = getenv("BSIM_VERBOSE") != NULL;
	take_arrays(s, c->frames);
	if (fresh_pfa(s, c->frames) < 0) {
		fail(s, "pfa_init over %lu frames failed", (unsigned long)c->frames);
		return -1;
	}
	pfa_set_reserve_floor(&s->pfa, c->reserve_floor);
	uint64_t features = (balloon_wanted_features(&c->p) & c->offered) | c->extra;
	s->nq = balloon_core_init(&s->b, &s->pfa, &sim_ops, s, &c->p, features);
	if (s->nq < 0) {
		fail(s, "balloon_core_init: %d", s->nq);
		return -1;
	}
	const bool has[BALLOON_NQ] = { true, true, s->b.has_stats, s->b.has_hint, s->b.has_report };
	for (int q = 0; q < BALLOON_NQ; q++) {
		if (!has[q])
			continue;
		uint16_t size = c->queue_size;
		size_t ring = c->packed ? vq_packed_ring_bytes(size) : vq_ring_bytes(size);
		s->ring[q] = aligned_alloc(4096, (ring + 4095) & ~(size_t)4095);
		s->tables[q] = c->indirect ? aligned_alloc(64, (vq_indirect_bytes(size, 64) + 63) & ~(size_t)63) : NULL;
		int (*init)(struct vq *, uint16_t, uint16_t, void *, bool, void *, uint16_t) =
			c->packed ? vq_init_packed : vq_init;
		if (init(&s->vq[q], s->b.qidx[q], size, s->ring[q], c->event_idx, s->tables[q], 64) < 0) {
			fail(s, "vq_init(size %u) failed", size);
			return -1;
		}
		vsim_attach(&s->dev[q], &s->vq[q]);
		s->queues[s->b.qidx[q]] = &s->vq[q];
		s->live[q] = true;
	}
	balloon_core_start(&s->b, s->queues);
	return 0;
}

void bsim_destroy(struct bsim *s)
{
	balloon_core_destroy(&s->b);
	for (int q = 0; q < BALLOON_NQ; q++) {
		if (s->live[q])
			vq_destroy(&s->vq[q]);
		free(s->ring[q]);
		free(s->tables[q]);
		for (unsigned k = 0; k < s->n_popped[q]; k++)
			free(s->popped[q][k].pfns);
	}
	for (unsigned i = 0; i < s->n_dma; i++)
		free(s->dma[i]);
	free(s->push_pages[0]);
	free(s->push_pages[1]);
	free(s->fp[0]);
	free(s->fp[1]);
	/* the per-frame arrays stay for the next machine (see spare) */
}

/* ---------------------------------------------------------------- the host */

static void config_changed(struct bsim *s)
{
	balloon_config_changed(&s->b, s->cfg, s->b.has_hint ? 12 : 8);
}

void bsim_set_num_pages(struct bsim *s, uint32_t num_pages)
{
	memcpy(s->cfg + BALLOON_CFG_NUM_PAGES, &num_pages, 4);
	config_changed(s);
}

void bsim_set_hint_cmd(struct bsim *s, uint32_t id)
{
	memcpy(s->cfg + BALLOON_CFG_HINT_CMD_ID, &id, 4);
	config_changed(s);
}

void bsim_run_work(struct bsim *s)
{
	for (int i = 0; i < 64 && s->work_pending; i++) {
		s->work_pending = false;
		balloon_step(&s->b);
	}
}

bool bsim_fire_timer(struct bsim *s, enum balloon_timer t)
{
	if (!s->timer_armed[t])
		return false;
	s->timer_armed[t] = false;
	if (s->timer_due[t] > s->now_ns)
		s->now_ns = s->timer_due[t];
	balloon_timer_fired(&s->b, t);
	return true;
}

void bsim_interrupt(struct bsim *s)
{
	balloon_queue_ready(&s->b);
}

/* ---------------------------------------------------------------- the device */

/* noinline: here and below, so that the fuzz harness's coverage ignorelist
 * (tests/fuzz/host/balloon.ignore) can name these per-frame walks. */
__attribute__((noinline)) static bool check_pfns(struct bsim *s, enum balloon_queue q, struct bsim_popped *p)
{
	const struct vsim_buf *bf = &p->buf;
	if (bf->n_out != 1 || bf->n_in != 0 || bf->seg[0].len % 4 || bf->seg[0].len / 4 > s->b.p.batch_pages) {
		fail(s, "%s buffer: %u readable, %u writable segments, %u bytes", role_names[q], bf->n_out, bf->n_in,
		     bf->seg[0].len);
		return false;
	}
	p->n = bf->seg[0].len / 4;
	p->pfns = malloc(p->n * 4 + 1);
	memcpy(p->pfns, phys_to_virt(bf->seg[0].addr), p->n * 4);
	for (uint32_t i = 0; i < p->n; i++) {
		uint32_t f = p->pfns[i];
		if (f >= s->c.frames || pfa_frame_state(&s->pfa, f) != PFA_BALLOONED || s->mapped[f]) {
			fail(s, "%s buffer: frame %#x is not a ballooned, unmapped frame (state %d)", role_names[q], f,
			     f < s->c.frames ? (int)pfa_frame_state(&s->pfa, f) : -1);
			return false;
		}
		/* host_has: 0 no, 1 the host's, 2 in an inflate buffer, 3 in a deflate buffer */
		uint8_t want = q == BALLOON_Q_INFLATE ? 0 : 1;
		if (s->host_has[f] != want) {
			fail(s, "%s buffer: frame %#x is %s", role_names[q], f,
			     (const char *[]){ "not the host's", "already the host's", "already in an inflate buffer",
					       "already in a deflate buffer" }[s->host_has[f]]);
			return false;
		}
		s->host_has[f] = q == BALLOON_Q_INFLATE ? 2 : 3;
	}
	return true;
}

__attribute__((noinline)) static bool check_blocks(struct bsim *s, enum balloon_queue q, const struct vsim_buf *bf,
						 enum pfa_state st)
{
	for (unsigned i = bf->n_out; i < bf->n_out + bf->n_in; i++) {
		uint64_t a = bf->seg[i].addr, len = bf->seg[i].len;
		if (a % HUGE_PAGE_SIZE || len < HUGE_PAGE_SIZE || (len & (len - 1))) {
			fail(s, "%s buffer: segment %#lx+%#lx is not a 2 MiB-aligned block", role_names[q],
			     (unsigned long)a, (unsigned long)len);
			return false;
		}
		for (uint64_t f = a >> PAGE_SHIFT; f < (a + len) >> PAGE_SHIFT; f++)
			if (pfa_frame_state(&s->pfa, f) != st) {
				fail(s, "%s buffer: frame %#lx is in state %d, not %d", role_names[q], (unsigned long)f,
				     (int)pfa_frame_state(&s->pfa, f), (int)st);
				return false;
			}
	}
	return true;
}

bool bsim_take(struct bsim *s, enum balloon_queue q)
{
	if (!s->live[q] || s->n_popped[q] == BSIM_MAX_POPPED)
		return false;
	struct bsim_popped *p = &s->popped[q][s->n_popped[q]];
	memset(p, 0, sizeof(*p));
	int rc = vsim_pop(&s->dev[q], &p->buf);
	if (rc == 0)
		return false;
	/* In a packed ring a lie is written over the descriptors themselves: a
	 * device that lied may read its own used descriptor back as a buffer
	 * (malformed, or a length of 0, which the driver never posts). It is
	 * dropped, not kept as a buffer to complete. */
	bool zero = false;
	for (unsigned i = 0; rc == 1 && i < p->buf.n_out + p->buf.n_in; i++)
		zero |= p->buf.seg[i].len == 0;
	if ((rc < 0 || zero) && s->lied[q] && s->vq[q].pdesc)
		return false;
	if (rc < 0) {
		fail(s, "%s queue: the driver posted a malformed chain", role_names[q]);
		return false;
	}
	s->n_popped[q]++;
	const struct vsim_buf *bf = &p->buf;
	/* A buffer the driver has already had back: only after this device
	 * lied, with a used entry naming a free slot that the driver then
	 * posted into (it cannot tell that from a fast answer). What the buffer
	 * names is the driver's again; there is nothing left to check. */
	if (s->lied[q] && bf->head < s->vq[q].size && !s->vq[q].shadow[bf->head].token)
		return true;
	switch (q) {
	case BALLOON_Q_INFLATE:
	case BALLOON_Q_DEFLATE:
		check_pfns(s, q, p);
		break;
	case BALLOON_Q_STATS: {
		const struct balloon_stat *st = phys_to_virt(bf->seg[0].addr);
		if (bf->n_out != 1 || bf->n_in || bf->seg[0].len != BALLOON_STATS_TAGS * sizeof(*st))
			fail(s, "stats buffer: %u+%u segments, %u bytes", bf->n_out, bf->n_in, bf->seg[0].len);
		else
			for (uint16_t t = 0; t < BALLOON_STATS_TAGS; t++)
				if (st[t].tag != t)
					fail(s, "stats buffer: entry %u has tag %u", t, st[t].tag);
		break;
	}
	case BALLOON_Q_REPORT:
		if (bf->n_out || !bf->n_in)
			fail(s, "report buffer: %u readable, %u writable segments", bf->n_out, bf->n_in);
		check_blocks(s, q, bf, PFA_ISOLATED);
		break;
	case BALLOON_Q_HINT:
		if (bf->n_out == 1 && !bf->n_in) {
			if (bf->seg[0].len != 4)
				fail(s, "hint id buffer of %u bytes", bf->seg[0].len);
			else
				s->hint_ids[s->n_hint_ids++ % 8] = *(const uint32_t *)phys_to_virt(bf->seg[0].addr);
		} else if (bf->n_out || !bf->n_in) {
			fail(s, "hint buffer: %u readable, %u writable segments", bf->n_out, bf->n_in);
		} else {
			check_blocks(s, q, bf, PFA_USED);
		}
		break;
	default:
		break;
	}
	return true;
}

/* Room to remember one more completion on q; false when the harness will
 * not remember more (the device then stops answering). */
static bool push_room(struct bsim *s, enum balloon_queue q)
{
	if (q > BALLOON_Q_DEFLATE || s->n_pushes[q] < s->cap_pushes[q])
		return true;
	unsigned cap = s->cap_pushes[q] ? 2 * s->cap_pushes[q] : 1024;
	int64_t *n = cap <= BSIM_MAX_PUSHES ? realloc(s->push_pages[q], cap * sizeof(*n)) : NULL;
	if (!n)
		return false;
	s->push_pages[q] = n;
	s->cap_pushes[q] = cap;
	return true;
}

static void record_push(struct bsim *s, enum balloon_queue q, int64_t pages)
{
	if (q <= BALLOON_Q_DEFLATE)
		s->push_pages[q][s->n_pushes[q]++] = pages;
}

/* An honest inflate/deflate completion: the frames become the host's, or
 * stop being. */
__attribute__((noinline)) static void host_takes(struct bsim *s, enum balloon_queue q, const struct bsim_popped *p)
{
	for (uint32_t i = 0; i < p->n; i++) {
		uint8_t was = s->host_has[p->pfns[i]];
		s->host_has[p->pfns[i]] = q == BALLOON_Q_INFLATE;
		if (was == 2)
			s->host_pages++;
		else if (was == 3)
			s->host_pages--;
	}
}

bool bsim_complete(struct bsim *s, enum balloon_queue q, unsigned k, uint32_t len)
{
	if (!s->live[q] || !s->n_popped[q] || !push_room(s, q))
		return false;
	k %= s->n_popped[q];
	struct bsim_popped *p = &s->popped[q][k];
	bool honest = len <= p->buf.in_len;
	vsim_push(&s->dev[q], p->buf.head, len);
	if (q <= BALLOON_Q_DEFLATE) {
		if (honest) {
			host_takes(s, q, p);
		} else {
			s->lied[q] = true;
		}
		record_push(s, q, honest ? p->n : LIE);
	} else if (!honest) {
		s->lied[q] = true;
	}
	free(p->pfns);
	s->popped[q][k] = s->popped[q][--s->n_popped[q]];
	return true;
}

unsigned bsim_answer_all(struct bsim *s, enum balloon_queue q)
{
	unsigned n = 0;
	while (bsim_take(s, q))
		;
	while (s->n_popped[q] && bsim_complete(s, q, 0, 0))
		n++;
	return n;
}

void bsim_lie(struct bsim *s, enum balloon_queue q, unsigned kind, uint32_t arg)
{
	if (!s->live[q] || !push_room(s, q))
		return;
	struct vq *vq = &s->vq[q];
	struct vsim *d = &s->dev[q];
	/* A packed ring has no used index. A used descriptor written where the
	 * driver has nothing in flight is either read there and refused, or
	 * filled by the driver's next buffer and gone unseen: never a
	 * completion the driver could count, so not recorded as one. But it
	 * moved the device's used position on, and its next writes could then
	 * overwrite used descriptors the driver has not read (this accounting
	 * counts completions in order): after such a lie, no more lies; nor
	 * one that would lap what the driver has still to read. */
	if (vq->pdesc) {
		int unread = (int)d->used_pos - vq->next_used + (d->used_wrap != vq->used_wrap ? vq->size : 0);
		if (s->lie_astray[q] || unread < 0 || unread >= vq->size)
			return;
	}
	bool uncountable = vq->pdesc && !vq->in_flight;
	s->lie_astray[q] = uncountable;
	s->lied[q] = true;
	if (kind == 1 && s->n_popped[q]) {
		unsigned k = arg % s->n_popped[q];
		bsim_complete(s, q, k, s->popped[q][k].buf.in_len + 1 + arg % 4096);
		return;
	}
	if (kind == 2 && !vq->pdesc) {
		vsim_set_used_idx(d, (uint16_t)(d->used_idx + vq->in_flight + 1 + arg % 64));
		return;
	}
	if (kind == 2) { /* packed: USED for this pass, AVAIL not (a wrap counter lie) */
		vsim_push_raw(d, 0, 0, d->used_wrap ? VQ_PDESC_F_USED : VQ_PDESC_F_AVAIL, 1);
		return;
	}
	/* an id that is not a buffer in flight: out of range, or a free slot */
	uint32_t id = vq->size + arg % 1000;
	for (uint16_t i = 0; i < vq->size; i++) {
		uint16_t c = (uint16_t)((arg + i) % vq->size);
		if (!vq->shadow[c].token) {
			id = c;
			break;
		}
	}
	vsim_push(d, id, 0);
	if (!uncountable)
		record_push(s, q, LIE);
}

/* ---------------------------------------------------------------- the guest */

int64_t bsim_alloc(struct bsim *s, unsigned order)
{
	return pfa_alloc_block(&s->pfa, order);
}

int bsim_free(struct bsim *s, uint64_t pfn, unsigned order)
{
	return pfa_free_block(&s->pfa, pfn, order, __func__);
}

/* ---------------------------------------------------------------- invariants */

static int check_queue(struct bsim *s, enum balloon_queue q)
{
	const struct vq *vq = &s->vq[q];
	unsigned out = 0, descs = 0;
	for (uint16_t i = 0; i < vq->size; i++)
		if (vq->shadow[i].token) {
			out++;
			descs += vq->shadow[i].ndesc;
		}
	if (out != vq->in_flight || descs + vq->num_free != vq->size) {
		fail(s, "%s queue: %u buffers (%u descriptors) outstanding, in_flight %u, %u free of %u",
		     role_names[q], out, descs, vq->in_flight, vq->num_free, vq->size);
		return -1;
	}
	return 0;
}

#if defined(__clang__) && defined(BLIMP_FUZZ)
/* The frame walk is the harness's own bookkeeping: no coverage feedback
 * from it (it was most of the fuzzer's time, and teaches it nothing). */
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

/* Frames [lo, hi) of 2 MiB block `blk` (the last may be short). */
static uint64_t block_end(const struct bsim *s, uint64_t blk)
{
	uint64_t hi = (blk + 1) * BLOCK;
	return hi < s->c.frames ? hi : s->c.frames;
}

/* Must block `blk` be walked? Always, unless incremental and its frames'
 * states, map, host_has and page table are what the last sound check saw. */
NO_COVERAGE static bool block_dirty(const struct bsim *s, uint64_t blk)
{
	if (!s->incremental || !s->snap_valid)
		return true;
	if (s->same_frames)
		return false;
	uint64_t lo = blk * BLOCK, n = block_end(s, blk) - lo;
	return s->table[blk] != s->snap_table[blk] || memcmp(s->pfa.frame + lo, s->snap_meta + lo, n) ||
	       memcmp(s->mapped + lo, s->snap_mapped + lo, n) || memcmp(s->host_has + lo, s->snap_host + lo, n);
}

/* Ballooned exactly when unmapped; the host's frames still ballooned. */
NO_COVERAGE static int check_frames(struct bsim *s)
{
	uint64_t host = 0;
	const uint8_t *frame = s->pfa.frame; /* state in the low 3 bits (pfa.h) */
	for (uint64_t blk = 0; blk * BLOCK < s->c.frames; blk++) {
		if (!block_dirty(s, blk)) {
			host += s->blk_host[blk];
			continue;
		}
		uint64_t in_blk = 0;
		for (uint64_t f = blk * BLOCK; f < block_end(s, blk); f++) {
			bool ballooned = (frame[f] & 7) == PFA_BALLOONED;
			if (ballooned == s->mapped[f]) {
				fail(s, "frame %#lx: %s but %s", (unsigned long)f,
				     ballooned ? "ballooned" : "not ballooned", s->mapped[f] ? "mapped" : "unmapped");
				return -1;
			}
			if (s->host_has[f] && !ballooned) {
				fail(s, "frame %#lx: the host holds it (%u) but the guest has it back", (unsigned long)f,
				     s->host_has[f]);
				return -1;
			}
			in_blk += s->host_has[f] == 1 || s->host_has[f] == 3; /* a deflate taken: still the host's */
		}
		s->blk_host[blk] = in_blk;
		host += in_blk;
	}
	if (host != s->host_pages) {
		fail(s, "harness: host holds %lu frames, counted %lu", (unsigned long)host, (unsigned long)s->host_pages);
		return -1;
	}
	return 0;
}

/* Page tables: a block without one is all mapped or all unmapped; every
 * table and reserve frame is an allocated, mapped frame. */
NO_COVERAGE static int check_tables(struct bsim *s)
{
	uint64_t tables = 0;
	for (uint64_t blk = 0; blk * BLOCK < s->c.frames; blk++) {
		if (s->table[blk]) {
			uint64_t t = s->table[blk] - 1;
			tables++;
			if (pfa_frame_state(&s->pfa, t) != PFA_USED || !frame_mapped(s, t)) {
				fail(s, "the page table of block %#lx, frame %#lx, is in state %d%s", (unsigned long)blk,
				     (unsigned long)t, (int)pfa_frame_state(&s->pfa, t), frame_mapped(s, t) ? "" : ", unmapped");
				return -1;
			}
		} else if (block_dirty(s, blk) && !block_is(s, blk, true) && !block_is(s, blk, false)) {
			fail(s, "2 MiB block %#lx is partly mapped but has no page table", (unsigned long)blk);
			return -1;
		}
	}
	for (unsigned i = 0; i < s->n_reserve; i++)
		if (pfa_frame_state(&s->pfa, s->reserve[i]) != PFA_USED) {
			fail(s, "reserve table frame %#lx is in state %d", (unsigned long)s->reserve[i],
			     (int)pfa_frame_state(&s->pfa, s->reserve[i]));
			return -1;
		}
	if (tables != s->page_tables) {
		fail(s, "harness: %lu page tables counted, %lu found", (unsigned long)s->page_tables, (unsigned long)tables);
		return -1;
	}
	return 0;
}

/* The allocator as pfa_check last passed it? (pfa_check reads only the
 * struct and its metadata.) */
NO_COVERAGE static bool pfa_unchanged(const struct bsim *s)
{
	return s->incremental && s->snap_valid && !memcmp(&s->pfa, &s->snap_pfa, sizeof(s->pfa)) &&
	       !memcmp(s->meta, s->snap_meta, s->meta_size);
}

/* Nothing per frame or per block changed since the last sound check? */
NO_COVERAGE static bool frames_unchanged(const struct bsim *s)
{
	return s->incremental && s->snap_valid && !memcmp(s->meta, s->snap_meta, s->c.frames) &&
	       !memcmp(s->mapped, s->snap_mapped, s->c.frames) && !memcmp(s->host_has, s->snap_host, s->c.frames) &&
	       !memcmp(s->table, s->snap_table, (s->c.frames / BLOCK + 1) * sizeof(*s->table));
}

NO_COVERAGE static void fp_put(struct bsim *s, const void *p, size_t n)
{
	if (!n)
		return;
	if (s->fp_len[1] + n > s->fp_cap[1]) {
		size_t cap = 2 * (s->fp_len[1] + n);
		uint8_t *m = realloc(s->fp[1], cap);
		if (!m)
			abort();
		s->fp[1] = m;
		s->fp_cap[1] = cap;
	}
	memcpy(s->fp[1] + s->fp_len[1], p, n);
	s->fp_len[1] += n;
}

/* Everything balloon_check reads besides the allocator (balloon_check.c),
 * into fp[1]; true when it is what fp[0] holds from the last sound check. */
NO_COVERAGE static bool balloon_unchanged(struct bsim *s)
{
	const struct balloon *b = &s->b;
	if (!s->incremental)
		return false;
	s->fp_len[1] = 0;
	fp_put(s, b, sizeof(*b));
	fp_put(s, b->runs, b->n_runs * sizeof(*b->runs));
	for (uint32_t i = 0; i < b->p.inflight && i < BALLOON_MAX_INFLIGHT; i++)
		if (b->batch[i].busy) {
			fp_put(s, b->batch[i].runs, b->batch[i].n_runs * sizeof(*b->batch[i].runs));
			fp_put(s, b->batch[i].pfns, b->batch[i].n * sizeof(*b->batch[i].pfns));
		}
	if (b->hint_blocks)
		fp_put(s, b->hint_blocks, b->hint_n * sizeof(*b->hint_blocks));
	for (int q = 0; q < BALLOON_NQ; q++)
		if (b->vq[q])
			fp_put(s, &b->vq[q]->in_flight, sizeof(b->vq[q]->in_flight));
	return s->incremental && s->snap_valid && s->same_pfa && s->fp_len[0] == s->fp_len[1] &&
	       !memcmp(s->fp[0], s->fp[1], s->fp_len[1]);
}

/* Remember the state that just passed, for the next incremental check. */
NO_COVERAGE static void snapshot(struct bsim *s)
{
	if (!s->snap_valid || !s->same_pfa) {
		memcpy(&s->snap_pfa, &s->pfa, sizeof(s->pfa));
		memcpy(s->snap_meta, s->meta, s->meta_size);
	}
	if (!s->snap_valid || !s->same_frames) {
		memcpy(s->snap_mapped, s->mapped, s->c.frames);
		memcpy(s->snap_host, s->host_has, s->c.frames);
		memcpy(s->snap_table, s->table, (s->c.frames / BLOCK + 1) * sizeof(*s->table));
	}
	uint8_t *fp = s->fp[0];
	size_t cap = s->fp_cap[0];
	s->fp[0] = s->fp[1];
	s->fp_len[0] = s->fp_len[1];
	s->fp_cap[0] = s->fp_cap[1];
	s->fp[1] = fp;
	s->fp_cap[1] = cap;
	s->snap_valid = true;
}

int bsim_check(struct bsim *s)
{
	char why[256];
	if (s->failure[0])
		return -1;
	s->same_pfa = pfa_unchanged(s);
	s->same_frames = s->same_pfa && frames_unchanged(s);
	if (!s->same_pfa && pfa_check(&s->pfa, why, sizeof(why)) < 0) {
		fail(s, "pfa_check: %s", why);
		return -1;
	}
	if (!balloon_unchanged(s) && balloon_check(&s->b, why, sizeof(why)) < 0) {
		fail(s, "balloon_check: %s", why);
		return -1;
	}
	if (check_frames(s) < 0 || check_tables(s) < 0)
		return -1;
	for (int q = 0; q < BALLOON_NQ; q++)
		if (s->live[q] && check_queue(s, (enum balloon_queue)q) < 0)
			return -1;
	for (int t = 0; t < BALLOON_NT; t++)
		if (s->timer_armed[t] != s->b.timer_armed[t]) {
			fail(s, "timer %d: armed %d for the kernel, %d for the balloon", t, s->timer_armed[t],
			     s->b.timer_armed[t]);
			return -1;
		}
	if ((s->actual_writes ? s->actual : 0) != s->b.held) {
		fail(s, "actual last written %u, the balloon holds %u", s->actual, s->b.held);
		return -1;
	}
	bool poison = s->b.features & (1ULL << VIRTIO_BALLOON_F_PAGE_POISON);
	if (poison ? s->poison_writes != 1 || s->poison_val != (uint32_t)(s->c.p.poison & 0xff) * 0x01010101u
		   : s->poison_writes != 0) {
		fail(s, "poison_val written %lu times, last %#x (poison %d, negotiated %d)",
		     (unsigned long)s->poison_writes, s->poison_val, s->c.p.poison, poison);
		return -1;
	}
	uint32_t num_pages;
	memcpy(&num_pages, s->cfg, 4);
	if (s->b.target != (num_pages < s->c.frames ? num_pages : s->c.frames)) {
		fail(s, "target %u for num_pages %u over %lu frames", s->b.target, num_pages, (unsigned long)s->c.frames);
		return -1;
	}
	if (s->incremental)
		snapshot(s);
	else
		s->snap_valid = false;
	return 0;
}
