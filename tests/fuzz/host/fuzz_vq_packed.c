/*
 * fuzz_vq_packed: the packed virtqueue (drivers/virtio/vq_packed.c) driven
 * by a program the fuzzer writes, against a device that may lie.
 *
 * Input: 3 bytes of setup (queue size 1..256, any, not only powers of two;
 * event index; indirect tables and their size), then one operation per byte
 * with its arguments:
 *   add        the driver posts n_out + n_in segments (lengths may be 0,
 *              counts may exceed the queue) with a fresh token
 *   pop        the simulated device (tests/unit/virtio_sim.c) takes the next
 *              available chain, which must be exactly the one posted
 *   complete   the device completes a buffer it holds, honestly
 *   get        vq_get_used, up to 4 times
 *   push       the device writes a used descriptor with any id, length and
 *              flags (honest flags, or AVAIL/USED in any combination: the
 *              wrap counter lies) and moves on by 1..4 slots
 *   event      the device writes its event suppression structure (any
 *              off_wrap, any flags 0..3), then vq_kick_prepare is checked
 *   cb         vq_disable_cb / vq_enable_cb, the race report checked
 *   scribble   the device overwrites a byte of the descriptor ring (used
 *              flags out of order, ids, lengths) or of an indirect table
 * Invariants after every step: next_avail/avail_wrap and next_used/used_wrap
 * are the model's counts of descriptors posted and given back, modulo the
 * ring, with the wrap counter flipping each pass; the free buffer ids and
 * the in-flight ids cover every id once and agree with num_free and
 * in_flight; the driver's event suppression says what the driver asked
 * for; a token comes back only if outstanding, once, with a length the
 * buffer could take; an honest device gets every buffer back in the order
 * it completed them and never sees the queue broken; the device event
 * structure breaks the queue exactly when it is outside the spec; a broken
 * queue says why, stays broken with the same reason, and fails every call.
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
	uint16_t id, need;
	uint64_t in_len;
	unsigned n_out, n_in;
	struct vq_seg seg[MAX_SEGS];
};

static struct vq Q;
static struct vsim S;
static void *mem;
static struct rec *recs;
static size_t nrecs;
static size_t *popq, pop_head, pop_tail; /* posted, not popped (FIFO) */
static size_t *held, nheld;
static struct { size_t r; uint32_t len; } *done; /* completed, not got (FIFO) */
static size_t done_head, done_tail;
static bool lied, scribbled, was_broken;
static char broken_reason[sizeof(Q.broken_reason)];
static uint64_t posted, given_back, kicked; /* descriptors, free-running */

/* Where a free-running count of descriptors lands: slot and wrap counter
 * (1 on the first pass, 2.8.1). */
static void place(uint64_t count, uint16_t *slot, bool *wrap)
{
	*slot = (uint16_t)(count % Q.size);
	*wrap = ((count / Q.size) & 1) == 0;
}

static void check_queue(void)
{
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
		if (!lied)
			fh_fail("an honest device broke the queue: %s", Q.broken_reason);
	} else if (Q.broken_reason[0]) {
		fh_fail("queue not broken but has a reason: %s", Q.broken_reason);
	}
	uint16_t slot;
	bool wrap;
	place(posted, &slot, &wrap);
	if (Q.next_avail != slot || Q.avail_wrap != wrap)
		fh_fail("next_avail %u wrap %d after %llu descriptors posted, expected %u wrap %d",
			Q.next_avail, Q.avail_wrap, (unsigned long long)posted, slot, wrap);
	place(given_back, &slot, &wrap);
	if (Q.next_used != slot || Q.used_wrap != wrap)
		fh_fail("next_used %u wrap %d after %llu descriptors given back, expected %u wrap %d",
			Q.next_used, Q.used_wrap, (unsigned long long)given_back, slot, wrap);
	if (posted - given_back != (uint64_t)(Q.size - Q.num_free))
		fh_fail("%llu descriptors outstanding, num_free %u of %u", (unsigned long long)(posted - given_back),
			Q.num_free, Q.size);

	uint8_t seen[MAX_SIZE] = { 0 };
	uint16_t p = Q.free_head;
	for (unsigned i = 0; i < (unsigned)(Q.size - Q.in_flight); i++) {
		if (p >= Q.size || seen[p] || Q.shadow[p].token)
			fh_fail("free id list entry %u is id %u: out of range, twice, or in flight", i, p);
		seen[p] = 1;
		p = Q.next[p];
	}
	unsigned ids = 0, descs = 0;
	for (unsigned id = 0; id < Q.size; id++) {
		const struct vq_shadow *s = &Q.shadow[id];
		if (!s->token)
			continue;
		const struct rec *r = s->token;
		if (r < recs || r >= recs + nrecs || r->state == RETURNED || r->id != id)
			fh_fail("id %u holds token %p, not an outstanding buffer with that id", id, s->token);
		if (s->ndesc != r->need || s->in_len != (uint32_t)r->in_len)
			fh_fail("id %u: shadow ndesc %u in_len %u, posted %u and %llu", id, s->ndesc, s->in_len,
				r->need, (unsigned long long)r->in_len);
		ids++;
		descs += s->ndesc;
	}
	if (ids != Q.in_flight || ids + (Q.size - Q.in_flight) != Q.size || descs != posted - given_back)
		fh_fail("%u ids in flight (in_flight %u), %u descriptors, model %llu", ids, Q.in_flight, descs,
			(unsigned long long)(posted - given_back));

	/* The driver event suppression structure says what the driver wants. */
	struct vq_event e = *Q.driver_event;
	uint16_t want_flags = !Q.callbacks ? VQ_EVENT_F_DISABLE
			      : Q.event_idx ? VQ_EVENT_F_DESC : VQ_EVENT_F_ENABLE;
	if (e.flags != want_flags)
		fh_fail("driver event flags %u, expected %u (callbacks %d)", e.flags, want_flags, Q.callbacks);
	if (want_flags == VQ_EVENT_F_DESC &&
	    e.off_wrap != (uint16_t)(Q.next_used | (Q.used_wrap ? VQ_EVENT_WRAP : 0)))
		fh_fail("driver event off_wrap %#x, next used %u wrap %d", e.off_wrap, Q.next_used, Q.used_wrap);
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
	int want;
	if (was_broken)
		want = -EIO;
	else if (n == 0 || (n > Q.size && !(Q.indirect && n <= Q.max_indirect)) || zero || total > UINT32_MAX)
		want = -EINVAL;
	else if (Q.size - (posted - given_back) < r->need)
		want = -ENOSPC;
	else
		want = 0;
	uint16_t slot = Q.next_avail;
	int rc = vq_add(&Q, r->seg, n_out, r->seg + n_out, n_in, r);
	if (rc != want)
		fh_fail("vq_add(%u out, %u in, total %llu bytes) = %d, expected %d (free %u)", n_out, n_in,
			(unsigned long long)total, rc, want, Q.num_free);
	if (rc == 0) {
		r->state = POSTED;
		r->id = Q.pdesc[slot].id; /* read before any scribble */
		nrecs++;
		popq[pop_tail++] = (size_t)(r - recs);
		posted += r->need;
	}
}

static void op_pop(void)
{
	if (scribbled)
		return; /* the simulator would follow the scribbled descriptors */
	struct vsim_buf b;
	int rc = vsim_pop(&S, &b);
	if (lied) {
		/* Buffers given back through a lie have had their slots reused:
		 * take what is there if it is a buffer in flight. */
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
	if (b.n_out != r->n_out || b.n_in != r->n_in || b.in_len != (uint32_t)r->in_len || b.ndesc != r->need)
		fh_fail("device sees %u out %u in (%u writable, %u descriptors), driver posted %u out %u in "
			"(%llu, %u)", b.n_out, b.n_in, b.in_len, b.ndesc, r->n_out, r->n_in,
			(unsigned long long)r->in_len, r->need);
	for (unsigned i = 0; i < b.n_out + b.n_in; i++)
		if (b.seg[i].addr != r->seg[i].addr || b.seg[i].len != r->seg[i].len)
			fh_fail("segment %u differs between driver and device", i);
	if (b.head != r->id)
		fh_fail("device took buffer id %u, driver posted id %u", b.head, r->id);
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
	vsim_push(&S, r->id, len);
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
	given_back += r->need;
}

static void op_push(struct fh *f)
{
	uint8_t k = fh_u8(f);
	uint16_t id = k < 200 ? (uint16_t)(k % (Q.size + 2u)) : fh_u16(f);
	uint32_t len = fh_u32(f);
	uint8_t how = fh_u8(f);
	static const uint16_t lies[] = { 0, VQ_PDESC_F_AVAIL, VQ_PDESC_F_USED, VQ_PDESC_F_AVAIL | VQ_PDESC_F_USED };
	uint16_t flags = how & 4 ? lies[how & 3] : vsim_used_flags(&S);
	vsim_push_raw(&S, id, len, flags, (uint16_t)(1 + (how >> 4) % 4));
	lied = true;
}

static void op_event(struct fh *f)
{
	uint16_t off_wrap = fh_u16(f);
	uint8_t how = fh_u8(f);
	if (how & 8) /* mostly a valid offset, near the driver's position */
		off_wrap = (uint16_t)((Q.next_avail + Q.size - (how >> 4) % (Q.size + 1u)) % Q.size |
				      (off_wrap & VQ_EVENT_WRAP));
	uint16_t flags = how & 3;
	vsim_set_device_event(&S, off_wrap, flags);
	uint16_t off = off_wrap & (uint16_t)~VQ_EVENT_WRAP;
	bool valid = flags == VQ_EVENT_F_ENABLE || flags == VQ_EVENT_F_DISABLE ||
		     (flags == VQ_EVENT_F_DESC && Q.event_idx && off < Q.size);
	bool want = false;
	if (flags == VQ_EVENT_F_ENABLE)
		want = true;
	else if (flags == VQ_EVENT_F_DESC && valid) {
		/* The event as a count of descriptors: in the driver's current
		 * pass if its wrap counter matches, else the pass before. */
		uint64_t base = posted - Q.next_avail;
		bool same = ((off_wrap & VQ_EVENT_WRAP) != 0) == Q.avail_wrap;
		int64_t event = (int64_t)(base + off) - (same ? 0 : Q.size);
		want = posted - kicked >= Q.size || (event >= (int64_t)kicked && event < (int64_t)posted);
	}
	if (was_broken)
		want = false;
	bool got = vq_kick_prepare(&Q);
	kicked = posted;
	if (got != want)
		fh_fail("vq_kick_prepare = %d, expected %d (off_wrap %#x flags %u, posted %llu, next_avail %u)",
			got, want, off_wrap, flags, (unsigned long long)posted, Q.next_avail);
	if (!was_broken && Q.broken != !valid)
		fh_fail("device event off_wrap %#x flags %u: queue %s", off_wrap, flags,
			Q.broken ? "broken though valid" : "not broken though invalid");
	if (!valid)
		lied = true;
}

static void op_cb(struct fh *f)
{
	if (fh_u8(f) & 1) {
		vq_disable_cb(&Q);
		return;
	}
	bool got = vq_enable_cb(&Q);
	bool want = done_head != done_tail;
	if (!lied && got != want)
		fh_fail("vq_enable_cb = %d with %zu completions not yet taken", got, done_tail - done_head);
}

static void op_scribble(struct fh *f)
{
	uint8_t where = fh_u8(f);
	uint16_t at = fh_u16(f);
	uint8_t v = fh_u8(f);
	uint8_t *base = (uint8_t *)Q.pdesc;
	size_t bytes = 16 * (size_t)Q.size;
	if ((where & 1) && Q.indirect_tables) {
		base = (uint8_t *)Q.indirect_tables;
		bytes = vq_indirect_bytes(Q.size, Q.max_indirect);
	}
	base[at % bytes] = v;
	scribbled = lied = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	uint8_t s0 = fh_u8(&f), s1 = fh_u8(&f), s2 = fh_u8(&f);
	uint16_t qsize = (uint16_t)(1 + s0); /* 1..256 */
	uint64_t features = vq_driver_features(true);
	if (!(s1 & 1))
		features &= ~(1ULL << VQ_F_EVENT_IDX);
	if (!(s1 & 2))
		features &= ~(1ULL << VQ_F_INDIRECT_DESC);
	struct vq_config c = vq_config_for(features, (uint16_t)(2 + s2 % 7));
	mem = aligned_alloc(64, (vq_mem_bytes(&c, qsize) + 63) & ~(size_t)63);
	recs = calloc(size + 1, sizeof(*recs));
	popq = calloc(size + 1, sizeof(*popq));
	held = calloc(size + 1, sizeof(*held));
	done = calloc(size + 1, sizeof(*done));
	nrecs = pop_head = pop_tail = nheld = done_head = done_tail = 0;
	lied = scribbled = was_broken = false;
	broken_reason[0] = 0;
	posted = given_back = kicked = 0;
	if (vq_setup(&Q, &c, 0, qsize, mem) != 0 || Q.layout != VQ_PACKED)
		fh_fail("vq_setup(packed, size %u) failed", qsize);
	vsim_attach(&S, &Q);
	check_queue();

	while (fh_left(&f)) {
		uint8_t op = fh_u8(&f);
		static const char *const names[] = { "add", "add", "pop", "complete", "get", "push",
						     "event", "cb", "scribble", "get" };
		fh_trace("op %s: in flight %u, free %u, next_avail %u/%d, next_used %u/%d", names[op % 10],
			 Q.in_flight, Q.num_free, Q.next_avail, Q.avail_wrap, Q.next_used, Q.used_wrap);
		switch (op % 10) {
		case 0: case 1: op_add(&f); break;
		case 2: op_pop(); break;
		case 3: op_complete(&f); break;
		case 4: case 9:
			for (int i = 0; i <= (op >> 4) % 4; i++)
				op_get();
			break;
		case 5: op_push(&f); break;
		case 6: op_event(&f); break;
		case 7: op_cb(&f); break;
		case 8: op_scribble(&f); break;
		}
		check_queue();
	}

	vq_destroy(&Q);
	free(mem);
	free(recs);
	free(popq);
	free(held);
	free(done);
	return 0;
}
