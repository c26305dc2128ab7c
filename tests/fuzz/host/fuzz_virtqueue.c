/*
 * fuzz_virtqueue: the split virtqueue (drivers/virtio/virtqueue.c) driven by
 * a program the fuzzer writes, against a device that may lie.
 *
 * Input: 3 bytes of setup (queue size 1..256, event index, indirect tables
 * and their size), then one operation per byte with its arguments:
 *   add        the driver posts n_out + n_in segments (lengths may be 0,
 *              counts may exceed the queue) with a fresh token
 *   pop        the simulated device (tests/unit/virtio_sim.c) takes the next
 *              available buffer, which must be exactly the one posted
 *   complete   the device completes a buffer it holds, honestly
 *   get        vq_get_used, up to 4 times
 *   push       the device writes a used entry with any id and length (a lie)
 *   jump       the device moves used.idx anywhere (a lie)
 *   notify     avail_event / NO_NOTIFY set, then vq_kick_prepare checked
 *   cb         vq_disable_cb / vq_enable_cb, the race report checked
 *   scribble   the device overwrites descriptors or the available ring
 *              (the driver must never read them back)
 * Invariants after every step: the driver's free list and its chains cover
 * every descriptor exactly once and agree with num_free and in_flight; a
 * token comes back only if it is outstanding, once, with a length the
 * buffer could take; an honest device gets every buffer back in the order
 * it completed them and never sees the queue broken; a broken queue says why,
 * stays broken with the same reason, and fails every later call.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/virtio/virtqueue.h"
#include "kernel/addr.h"
#include "tests/fuzz/host/fuzz_util.h"
#include "tests/unit/virtio_sim.h"

#define MAX_SIZE 256
#define MAX_SEGS 6

enum { POSTED, HELD, COMPLETED, RETURNED };

struct rec {
	int state;
	uint16_t head, need;
	uint64_t in_len;
	unsigned n_out, n_in;
	struct vq_seg seg[MAX_SEGS];
};

static struct vq Q;
static struct vsim S;
static struct rec *recs;
static size_t nrecs;
/* Device side: posted-not-popped (FIFO), held, completed-not-got (FIFO). */
static size_t *popq, pop_head, pop_tail;
static size_t *held, nheld;
static struct { size_t r; uint32_t len; } *done;
static size_t done_head, done_tail;
static bool lied, scribbled, was_broken;
static char broken_reason[sizeof(Q.broken_reason)];
static uint16_t model_avail, model_kicked, consumed;

static size_t outstanding_need(size_t *count)
{
	size_t need = 0;
	*count = 0;
	for (size_t i = 0; i < nrecs; i++)
		if (recs[i].state != RETURNED) {
			need += recs[i].need;
			(*count)++;
		}
	return need;
}

static void check_queue(void)
{
	uint8_t seen[MAX_SIZE] = { 0 };
	if (was_broken && !Q.broken)
		fh_fail("queue was broken (%s) and is not any more", broken_reason);
	if (Q.broken) {
		if (!Q.broken_reason[0])
			fh_fail("queue broken without a reason");
		if (was_broken && strcmp(broken_reason, Q.broken_reason))
			fh_fail("broken reason changed from '%s' to '%s'", broken_reason, Q.broken_reason);
		if (!was_broken)
			memcpy(broken_reason, Q.broken_reason, sizeof(broken_reason));
		was_broken = true;
	} else if (Q.broken_reason[0]) {
		fh_fail("queue not broken but has a reason: %s", Q.broken_reason);
	}
	uint16_t p = Q.free_head;
	for (unsigned i = 0; i < Q.num_free; i++) {
		if (p >= Q.size)
			fh_fail("free list entry %u is descriptor %u, queue size %u", i, p, Q.size);
		if (seen[p])
			fh_fail("descriptor %u twice on the free list", p);
		seen[p] = 1;
		p = Q.next[p];
	}
	unsigned heads = 0, chained = 0;
	for (unsigned h = 0; h < Q.size; h++) {
		const struct vq_shadow *s = &Q.shadow[h];
		if (!s->token)
			continue;
		const struct rec *r = s->token;
		if (r < recs || r >= recs + nrecs || r->state == RETURNED || r->head != h)
			fh_fail("head %u holds token %p, not an outstanding buffer with that head", h, s->token);
		if (s->ndesc != r->need || s->in_len != (uint32_t)r->in_len)
			fh_fail("head %u: shadow ndesc %u in_len %u, posted %u and %llu", h, s->ndesc,
				s->in_len, r->need, (unsigned long long)r->in_len);
		heads++;
		for (unsigned k = 0, d = h; k < s->ndesc; k++, d = Q.next[d]) {
			if (d >= Q.size || seen[d])
				fh_fail("chain of head %u: descriptor %u out of range or used twice", h, d);
			seen[d] = 2;
			chained++;
		}
	}
	if (Q.num_free + chained != Q.size)
		fh_fail("%u free + %u in chains != queue size %u", Q.num_free, chained, Q.size);
	size_t count, need = outstanding_need(&count);
	if (heads != count || Q.in_flight != count || chained != need)
		fh_fail("driver has %u heads, in_flight %u, %u descriptors; model %zu buffers, %zu "
			"descriptors", heads, Q.in_flight, chained, count, need);
}

static void op_add(struct fh *f)
{
	uint8_t b = fh_u8(f);
	unsigned n_out = b & 3, n_in = (b >> 2) & 3, n = n_out + n_in;
	struct rec *r = &recs[nrecs];
	memset(r, 0, sizeof(*r));
	bool zero = false;
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t kind = fh_u8(f);
		uint32_t len = kind < 16 ? 0 : kind < 128 ? kind : fh_u32(f);
		r->seg[i] = (struct vq_seg){ 0x100000 + 0x1000 * (uint64_t)i, len };
		zero |= len == 0;
		total += len;
		if (i >= n_out)
			r->in_len += len;
	}
	r->n_out = n_out;
	r->n_in = n_in;
	bool use_ind = Q.indirect && n > 1 && n <= Q.max_indirect;
	r->need = (uint16_t)(use_ind ? 1 : n);
	size_t count, need = outstanding_need(&count);
	int want;
	if (was_broken)
		want = -EIO;
	else if (n == 0 || (n > Q.size && !(Q.indirect && n <= Q.max_indirect)) || zero)
		want = -EINVAL;
	else if (total > UINT32_MAX)
		want = -EINVAL; /* virtio 1.2, 2.7.13.1: no chain longer than 2^32 bytes */
	else if (Q.size - need < r->need)
		want = -ENOSPC;
	else
		want = 0;
	int rc = vq_add(&Q, r->seg, n_out, r->seg + n_out, n_in, r);
	if (rc != want)
		fh_fail("vq_add(%u out, %u in, total %llu bytes) = %d, expected %d (free %u)", n_out,
			n_in, (unsigned long long)total, rc, want, Q.num_free);
	if (rc == 0) {
		r->state = POSTED;
		r->head = Q.avail->ring[model_avail & (Q.size - 1)]; /* read before any scribble */
		nrecs++;
		popq[pop_tail++] = (size_t)(r - recs);
		model_avail++;
	}
}

static void op_pop(void)
{
	if (scribbled)
		return; /* the simulator would follow the scribbled descriptors */
	struct vsim_buf b;
	int rc = vsim_pop(&S, &b);
	if (lied) {
		/* A device that returned buffers it never took falls behind on the
		 * available ring, whose slots the driver has since reused: what it
		 * finds there is whatever the driver wrote last. */
		if (rc == 1 && b.head < Q.size && Q.shadow[b.head].token) {
			struct rec *r = Q.shadow[b.head].token;
			if (r->state == POSTED) {
				r->state = HELD;
				held[nheld++] = (size_t)(r - recs);
			}
		}
		return;
	}
	if (pop_head == pop_tail) {
		if (rc != 0)
			fh_fail("device found a buffer (%d) nobody posted", rc);
		return;
	}
	struct rec *r = &recs[popq[pop_head++]];
	if (rc != 1)
		fh_fail("device could not take a posted buffer: vsim_pop = %d", rc);
	if (b.n_out != r->n_out || b.n_in != r->n_in || b.in_len != (uint32_t)r->in_len)
		fh_fail("device sees %u out %u in (%u writable), driver posted %u out %u in (%llu)",
			b.n_out, b.n_in, b.in_len, r->n_out, r->n_in, (unsigned long long)r->in_len);
	for (unsigned i = 0; i < b.n_out + b.n_in; i++)
		if (b.seg[i].addr != r->seg[i].addr || b.seg[i].len != r->seg[i].len)
			fh_fail("segment %u differs between driver and device", i);
	if (b.head != r->head)
		fh_fail("device took head %u, driver posted head %u", b.head, r->head);
	r->state = HELD;
	held[nheld++] = (size_t)(r - recs);
}

static void op_complete(struct fh *f)
{
	uint8_t i = fh_u8(f);
	uint32_t v = fh_u32(f);
	while (nheld && recs[held[nheld - 1]].state != HELD)
		nheld--; /* returned meanwhile through a lie */
	if (!nheld)
		return;
	i %= nheld;
	size_t ri = held[i];
	held[i] = held[--nheld];
	struct rec *r = &recs[ri];
	if (r->state != HELD)
		return;
	uint32_t len = (uint32_t)(v % (r->in_len + 1));
	r->state = COMPLETED;
	vsim_push(&S, r->head, len);
	done[done_tail].r = ri;
	done[done_tail++].len = len;
}

static void op_get(void)
{
	void *tok = NULL;
	uint32_t len = 0;
	int rc = vq_get_used(&Q, &tok, &len);
	if (was_broken && rc != -EIO)
		fh_fail("broken queue answered vq_get_used with %d", rc);
	if (rc == -EIO) {
		if (!Q.broken)
			fh_fail("vq_get_used = -EIO but the queue is not broken");
		if (!lied)
			fh_fail("an honest device broke the queue: %s", Q.broken_reason);
		return;
	}
	if (rc == 0) {
		if (!lied && done_head != done_tail)
			fh_fail("vq_get_used = 0 with %zu completions published", done_tail - done_head);
		return;
	}
	if (rc != 1)
		fh_fail("vq_get_used = %d", rc);
	struct rec *r = tok;
	if (r < recs || r >= recs + nrecs || (size_t)((char *)r - (char *)recs) % sizeof(*r))
		fh_fail("vq_get_used returned token %p, never posted", tok);
	if (r->state == RETURNED)
		fh_fail("token of buffer %zu returned twice", (size_t)(r - recs));
	if (len > r->in_len)
		fh_fail("buffer %zu: %u bytes written, only %llu writable", (size_t)(r - recs), len,
			(unsigned long long)r->in_len);
	if (!lied) {
		if (done_head == done_tail || &recs[done[done_head].r] != r || done[done_head].len != len)
			fh_fail("honest device: got buffer %zu len %u, expected the next completion",
				(size_t)(r - recs), len);
		done_head++;
	}
	r->state = RETURNED;
	consumed++;
}

static void op_notify(struct fh *f)
{
	uint8_t how = fh_u8(f);
	if (how & 1)
		vsim_set_avail_event(&S, (uint16_t)(model_avail - (how >> 2)));
	if (how & 2)
		vsim_set_no_notify(&S, how & 4);
	uint16_t event = *(volatile uint16_t *)&Q.used->ring[Q.size];
	bool want;
	if (was_broken)
		want = false;
	else if (Q.event_idx)
		want = (uint16_t)(model_avail - event - 1) < (uint16_t)(model_avail - model_kicked);
	else
		want = !(Q.used->flags & VQ_USED_F_NO_NOTIFY);
	bool got = vq_kick_prepare(&Q);
	model_kicked = model_avail;
	if (got != want)
		fh_fail("vq_kick_prepare = %d, expected %d (event %u, avail %u)", got, want, event,
			model_avail);
}

static void op_cb(struct fh *f)
{
	if (fh_u8(f) & 1) {
		vq_disable_cb(&Q);
		return;
	}
	bool got = vq_enable_cb(&Q);
	bool want = S.used_idx != consumed;
	if (got != want)
		fh_fail("vq_enable_cb = %d, device used.idx %u, driver consumed %u", got, S.used_idx,
			consumed);
}

static void op_scribble(struct fh *f)
{
	uint8_t where = fh_u8(f);
	uint16_t at = fh_u16(f);
	uint8_t v = fh_u8(f);
	uint8_t *base = (uint8_t *)Q.desc;
	size_t bytes = 16 * (size_t)Q.size + 6 + 2 * (size_t)Q.size; /* descriptors, avail ring */
	if ((where & 1) && Q.indirect_tables) {
		base = (uint8_t *)Q.indirect_tables;
		bytes = vq_indirect_bytes(Q.size, Q.max_indirect);
	}
	base[at % bytes] = v;
	scribbled = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	uint8_t s0 = fh_u8(&f), s1 = fh_u8(&f), s2 = fh_u8(&f);
	uint16_t qsize = (uint16_t)(1u << (s0 % 9));
	bool event_idx = s1 & 1, indirect = s1 & 2;
	uint16_t max_ind = (uint16_t)(2 + s2 % 7);
	void *ring = aligned_alloc(64, (vq_ring_bytes(qsize) + 63) & ~(size_t)63);
	void *tables = indirect ? aligned_alloc(64, (vq_indirect_bytes(qsize, max_ind) + 63) & ~(size_t)63)
				: NULL;
	recs = calloc(size + 1, sizeof(*recs));
	popq = calloc(size + 1, sizeof(*popq));
	held = calloc(size + 1, sizeof(*held));
	done = calloc(size + 1, sizeof(*done));
	nrecs = pop_head = pop_tail = nheld = done_head = done_tail = 0;
	lied = scribbled = was_broken = false;
	broken_reason[0] = 0;
	model_avail = model_kicked = consumed = 0;
	if (vq_init(&Q, 0, qsize, ring, event_idx, tables, max_ind) != 0)
		fh_fail("vq_init(size %u) failed", qsize);
	vsim_attach(&S, &Q);
	check_queue();

	while (fh_left(&f)) {
		uint8_t op = fh_u8(&f);
		static const char *const names[] = { "add", "add", "pop", "complete", "get", "push",
						     "jump", "notify", "cb", "scribble" };
		fh_trace("op %s: in flight %u, free %u, used.idx %u, last_used %u", names[op % 10],
			 Q.in_flight, Q.num_free, S.used_idx, Q.last_used);
		switch (op % 10) {
		case 0: case 1: op_add(&f); break;
		case 2: op_pop(); break;
		case 3: op_complete(&f); break;
		case 4:
			for (int i = 0; i <= (op >> 4) % 4; i++)
				op_get();
			break;
		case 5: { /* a used entry with any id and length */
			uint8_t k = fh_u8(&f);
			uint32_t id = k < 200 ? k % (Q.size + 2u) : fh_u32(&f);
			vsim_push(&S, id, fh_u32(&f));
			lied = true;
			break;
		}
		case 6: { /* used.idx anywhere: a small step either way, or any value */
			uint8_t k = fh_u8(&f);
			vsim_set_used_idx(&S, k < 128 ? (uint16_t)(S.used_idx + (int8_t)fh_u8(&f)) : fh_u16(&f));
			lied = true;
			break;
		}
		case 7: op_notify(&f); break;
		case 8: op_cb(&f); break;
		case 9: op_scribble(&f); break;
		}
		check_queue();
	}

	vq_destroy(&Q);
	free(ring);
	free(tables);
	free(recs);
	free(popq);
	free(held);
	free(done);
	return 0;
}
