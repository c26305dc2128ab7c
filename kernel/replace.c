/*
 * replace: page-replacement policies (see replace.h for the interface and
 * docs/paging.md for the (R,M) classes with a worked example).
 *
 * The ring is a doubly linked cycle through the used slots, threaded through
 * the caller's slot array; free slots form a singly linked list through
 * `next`. Every operation but the victim scan is O(1).
 *
 * The enhanced second-chance scan, as Stallings describes the Macintosh
 * variant and Silberschatz et al. the "enhanced second-chance algorithm"
 * (Tanenbaum's NRU classes, taken in clock order instead of at random):
 *
 *   pass 1  once around from the hand, changing nothing: the first page of
 *           class (0,0) — not used lately, clean — is the victim.
 *   pass 2  once around again, clearing R on every page passed over: the
 *           first page of class (0,1) — not used lately, dirty — is the
 *           victim. A dirty victim costs a write, so it comes second.
 *   pass 3  every R is clear now, so pages that were (1,0) are (0,0):
 *           pass 1 again finds the first of them.
 *   pass 4  pass 2 again finds the first page that was (1,1).
 *
 * So a victim is taken from the lowest non-empty class in the order
 * (0,0) (0,1) (1,0) (1,1), the first one after the hand within its class,
 * and R is cleared only if no page of class (0,0) was found. If the caller's
 * bits change under the scan (a CPU touching pages meanwhile) and four
 * passes find nothing, the hand's page is taken, as FIFO would.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "replace.h"
#include "check.h"

static const char *const policy_names[REPLACE_POLICIES] = { "fifo", "clock", "esc", "lru", "opt" };

const char *replace_policy_name(enum replace_policy p)
{
	return (unsigned)p < REPLACE_POLICIES ? policy_names[p] : "?";
}

int replace_policy_parse(const char *name)
{
	for (int p = 0; p < REPLACE_POLICIES; p++)
		if (name && strcmp(name, policy_names[p]) == 0)
			return p;
	return -EINVAL;
}

int replace_init(struct replace *r, enum replace_policy policy, const struct replace_ops *ops,
		 void *ctx, struct replace_slot *slots, uint32_t n_slots)
{
	if (!r || !slots || n_slots == 0 || n_slots == REPLACE_NONE)
		return -EINVAL;
	if (policy != REPLACE_FIFO && policy != REPLACE_CLOCK && policy != REPLACE_ESC)
		return -EINVAL;
	if (policy != REPLACE_FIFO && (!ops || !ops->bits))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->policy = policy;
	r->ops = ops;
	r->ctx = ctx;
	r->slot = slots;
	r->n_slots = n_slots;
	r->hand = REPLACE_NONE;
	for (uint32_t i = 0; i < n_slots; i++) {
		slots[i].page = 0;
		slots[i].used = false;
		slots[i].prev = REPLACE_NONE;
		slots[i].next = i + 1 < n_slots ? i + 1 : REPLACE_NONE;
	}
	r->free_head = 0;
	return 0;
}

int64_t replace_insert(struct replace *r, uint64_t page)
{
	uint32_t s = r->free_head;
	if (s == REPLACE_NONE)
		return -ENOSPC;
	struct replace_slot *n = &r->slot[s];
	r->free_head = n->next;
	n->page = page;
	n->used = true;
	if (r->hand == REPLACE_NONE) {
		n->next = n->prev = s;
		r->hand = s;
	} else { /* just behind the hand: the newest */
		struct replace_slot *h = &r->slot[r->hand];
		n->next = r->hand;
		n->prev = h->prev;
		r->slot[h->prev].next = s;
		h->prev = s;
	}
	r->n_used++;
	r->st.inserts++;
	return s;
}

int replace_touch(struct replace *r, uint32_t s)
{
	if (s >= r->n_slots || !r->slot[s].used)
		return -EINVAL;
	if (r->hand == s) {
		r->hand = r->slot[s].next; /* the oldest becomes the newest: the ring turns */
		return 0;
	}
	struct replace_slot *n = &r->slot[s];
	if (n->next == r->hand)
		return 0; /* already the newest */
	/* Out of its place, in just behind the hand. */
	r->slot[n->prev].next = n->next;
	r->slot[n->next].prev = n->prev;
	struct replace_slot *h = &r->slot[r->hand];
	n->next = r->hand;
	n->prev = h->prev;
	r->slot[h->prev].next = s;
	h->prev = s;
	r->st.touches++;
	return 0;
}

int replace_remove(struct replace *r, uint32_t s)
{
	if (s >= r->n_slots || !r->slot[s].used)
		return -EINVAL;
	struct replace_slot *n = &r->slot[s];
	if (n->next == s) {
		r->hand = REPLACE_NONE;
	} else {
		r->slot[n->prev].next = n->next;
		r->slot[n->next].prev = n->prev;
		if (r->hand == s)
			r->hand = n->next;
	}
	n->used = false;
	n->prev = REPLACE_NONE;
	n->next = r->free_head;
	r->free_head = s;
	r->n_used--;
	r->st.removes++;
	return 0;
}

/* The class index R*2+M of bits b. */
static unsigned class_of(int b)
{
	return (b & REPLACE_R ? 2u : 0u) | (b & REPLACE_M ? 1u : 0u);
}

/* The victim is `s`, of class `cls` (R*2+M as it was when the scan began). */
static int64_t chose(struct replace *r, uint32_t s, unsigned cls, bool cleared)
{
	if (cleared && r->ops->flush) {
		int e = r->ops->flush(r->ctx);
		if (e < 0)
			return e;
	}
	r->hand = s;
	r->st.victims++;
	r->st.by_class[cls & 3]++;
	return s;
}

/* R and M of slot s, R cleared if `clear`; counts what it sees. */
static int look(struct replace *r, uint32_t s, bool clear, bool *cleared)
{
	r->st.scanned++;
	int b = r->ops->bits(r->ctx, s, r->slot[s].page, clear);
	if (b < 0)
		return b;
	if (clear && (b & REPLACE_R)) {
		r->st.r_cleared++;
		*cleared = true;
	}
	return b & (REPLACE_R | REPLACE_M);
}

/* Second chance: R set -> clear it and pass on; R clear -> the victim.
 * Within one round and a step, unless the bits change under the scan. */
static int64_t victim_clock(struct replace *r)
{
	bool cleared = false;
	uint32_t s = r->hand;
	for (uint64_t step = 0; step <= 2 * (uint64_t)r->n_used; step++, s = r->slot[s].next) {
		int b = look(r, s, true, &cleared);
		if (b < 0)
			return b;
		if (!(b & REPLACE_R))
			return chose(r, s, (step >= r->n_used ? 2u : 0u) | class_of(b), cleared);
	}
	return chose(r, r->hand, 3, cleared);
}

/* The four passes described at the top of this file. */
static int64_t victim_esc(struct replace *r)
{
	bool cleared = false;
	for (unsigned pass = 0; pass < 4; pass++) {
		bool clearing = pass & 1;
		unsigned cls = (pass >= 2 ? 2 : 0) | (clearing ? 1 : 0);
		uint32_t s = r->hand;
		for (uint32_t i = 0; i < r->n_used; i++, s = r->slot[s].next) {
			int b = look(r, s, clearing, &cleared);
			if (b < 0)
				return b;
			if (b & REPLACE_R)
				continue;
			/* (0,0) in a clearing pass: the bits changed under us; still the best. */
			if (!(b & REPLACE_M) || clearing)
				return chose(r, s, (b & REPLACE_M) ? cls : cls & 2, cleared);
		}
	}
	return chose(r, r->hand, 3, cleared);
}

int64_t replace_victim(struct replace *r)
{
	if (r->hand == REPLACE_NONE)
		return -ENOENT;
	switch (r->policy) {
	case REPLACE_FIFO: {
		int b = 0;
		if (r->ops && r->ops->bits) {
			bool cleared = false;
			b = look(r, r->hand, false, &cleared);
			if (b < 0)
				return b;
		}
		return chose(r, r->hand, class_of(b), false);
	}
	case REPLACE_CLOCK:
		return victim_clock(r);
	case REPLACE_ESC:
		return victim_esc(r);
	default:
		return -EINVAL;
	}
}

/* Victim `s` of class `cls` leaves the ring; the hand moves past it. */
static void take(struct replace *r, uint32_t s, unsigned cls, uint64_t *pages, uint32_t *n)
{
	pages[(*n)++] = r->slot[s].page;
	r->st.victims++;
	r->st.by_class[cls & 3]++;
	r->hand = s;
	replace_remove(r, s);
}

int64_t replace_take(struct replace *r, uint64_t *pages, uint32_t max)
{
	uint32_t n = 0;
	bool cleared = false;
	int b = 0;
	if (r->policy != REPLACE_FIFO && r->policy != REPLACE_CLOCK && r->policy != REPLACE_ESC)
		return -EINVAL;
	if (r->policy == REPLACE_FIFO) {
		while (n < max && r->hand != REPLACE_NONE) {
			if (r->ops && r->ops->bits && (b = look(r, r->hand, false, &cleared)) < 0)
				return n ? (int64_t)n : b;
			take(r, r->hand, class_of(b), pages, &n);
		}
		return n;
	}
	if (r->policy == REPLACE_CLOCK) {
		/* Around once clearing R, then once more taking what was cleared. */
		uint64_t first_round = r->n_used, steps = 2 * (uint64_t)r->n_used + 1;
		uint32_t s = r->hand;
		for (uint64_t step = 0; n < max && r->hand != REPLACE_NONE && step < steps; step++) {
			if (step == first_round && n)
				break; /* see the ESC case: the cleared bits get their chance */
			uint32_t next = r->slot[s].next;
			/* Aged elsewhere: the first round only reads. */
			if ((b = look(r, s, !r->aged || step >= first_round, &cleared)) < 0)
				break;
			if (!(b & REPLACE_R))
				take(r, s, (step >= first_round ? 2u : 0u) | class_of(b), pages, &n);
			s = next;
		}
	} else {
		/* The four passes of victim_esc, each once around, each taking
		 * every page of its class it meets until `max` are chosen. */
		for (unsigned pass = 0; pass < 4 && n < max && r->hand != REPLACE_NONE && b >= 0; pass++) {
			/* Passes 3 and 4 take pages whose R this call just
			 * cleared: only if nothing else was found. Otherwise the
			 * caller gets fewer than it asked for, and the pages get
			 * the time to be used again (a hot set is touched within
			 * moments; taking it now would evict it in FIFO order). */
			if (pass == 2 && n)
				break;
			bool dirty_pass = pass & 1;
			/* Aged elsewhere: the second pass takes (0,1) without
			 * clearing; only the fourth, when all else failed, clears. */
			bool clearing = dirty_pass && !(r->aged && pass == 1);
			unsigned cls = (pass >= 2 ? 2 : 0) | (dirty_pass ? 1 : 0);
			uint32_t s = r->hand, around = r->n_used;
			for (uint32_t i = 0; i < around && n < max && r->hand != REPLACE_NONE; i++) {
				uint32_t next = r->slot[s].next;
				if ((b = look(r, s, clearing, &cleared)) < 0)
					break;
				if (!(b & REPLACE_R) && (!(b & REPLACE_M) || dirty_pass))
					take(r, s, (b & REPLACE_M) ? cls : cls & 2, pages, &n);
				s = next;
			}
		}
	}
	if (b < 0 && n == 0)
		return b;
	/* Bits changing under the scan can leave nothing chosen: take the
	 * hand's page, as replace_victim does. */
	if (n == 0 && r->hand != REPLACE_NONE)
		take(r, r->hand, 3, pages, &n);
	if (cleared && r->ops->flush) {
		int e = r->ops->flush(r->ctx);
		if (e < 0 && n == 0)
			return e;
	}
	return n;
}

uint32_t replace_order(const struct replace *r, uint32_t *out, uint32_t max)
{
	uint32_t k = 0, s = r->hand;
	for (uint32_t i = 0; s != REPLACE_NONE && i < r->n_used && k < max; i++, s = r->slot[s].next)
		out[k++] = s;
	return k;
}


int replace_check(const struct replace *r, char *why, size_t len)
{
	uint32_t used = 0, free = 0;
	for (uint32_t i = 0; i < r->n_slots; i++)
		used += r->slot[i].used;
	if (used != r->n_used)
		return check_fail(why, len, "%u slots used, n_used %u", used, r->n_used);
	if ((r->hand == REPLACE_NONE) != (used == 0))
		return check_fail(why, len, "hand %u with %u used", r->hand, used);
	uint32_t s = r->hand;
	for (uint32_t i = 0; i < used; i++) {
		if (s >= r->n_slots || !r->slot[s].used)
			return check_fail(why, len, "ring step %u: slot %u not in use", i, s);
		uint32_t nx = r->slot[s].next;
		if (nx >= r->n_slots || r->slot[nx].prev != s)
			return check_fail(why, len, "slot %u: next %u, whose prev is not it", s, nx);
		s = nx;
	}
	if (used && s != r->hand)
		return check_fail(why, len, "ring of %u steps ends at slot %u, not the hand %u", used, s, r->hand);
	for (s = r->free_head; s != REPLACE_NONE && free <= r->n_slots; s = r->slot[s].next, free++)
		if (s >= r->n_slots || r->slot[s].used)
			return check_fail(why, len, "free list: slot %u used or out of range", s);
	if (free != r->n_slots - used)
		return check_fail(why, len, "free list has %u slots, expected %u", free, r->n_slots - used);
	return 0;
}

/* ---------------------------------------------------------------- simulator */

struct sim {
	uint8_t *rm;        /* per slot: REPLACE_R | REPLACE_M, as an MMU would set them */
};

static int sim_bits(void *ctx, uint32_t slot, uint64_t page, bool clear_r)
{
	struct sim *sm = ctx;
	(void)page;
	int b = sm->rm[slot];
	if (clear_r)
		sm->rm[slot] &= (uint8_t)~REPLACE_R;
	return b;
}

static const struct replace_ops sim_ops = { .bits = sim_bits, .flush = NULL };

#define ALIGN8(x) (((x) + 7) & ~(size_t)7)

size_t replace_sim_scratch_size(uint32_t n_refs, uint32_t n_pages, uint32_t frames)
{
	return ALIGN8((size_t)frames * sizeof(struct replace_slot)) +
	       ALIGN8((size_t)n_pages * 4) + ALIGN8((size_t)n_refs * 4) +
	       ALIGN8((size_t)frames * 4) + ALIGN8(frames);
}

/* OPT: the resident page used again last, or never (key: its next use; the
 * oldest among those never used again). LRU: the page used longest ago
 * (key: its last use). */
static uint32_t key_victim(const struct replace *r, const uint32_t *key, bool largest)
{
	uint32_t best = r->hand, s = r->hand;
	for (uint32_t i = 0; i < r->n_used; i++, s = r->slot[s].next)
		if (largest ? key[s] > key[best] : key[s] < key[best])
			best = s;
	return best;
}

int replace_simulate(enum replace_policy policy, const struct replace_ref *refs, uint32_t n_refs,
		     uint32_t n_pages, uint32_t frames, void *scratch, size_t scratch_len,
		     struct replace_result *out)
{
	return replace_simulate_steps(policy, refs, n_refs, n_pages, frames, scratch, scratch_len, out,
				      NULL, NULL);
}

int replace_simulate_steps(enum replace_policy policy, const struct replace_ref *refs, uint32_t n_refs,
			   uint32_t n_pages, uint32_t frames, void *scratch, size_t scratch_len,
			   struct replace_result *out,
			   void (*step)(void *ctx, const struct replace_sim_step *st), void *ctx)
{
	if ((unsigned)policy >= REPLACE_POLICIES || frames == 0 || frames == REPLACE_NONE || !out ||
	    (n_refs && !refs) || !scratch || ((uintptr_t)scratch & 7) ||
	    scratch_len < replace_sim_scratch_size(n_refs, n_pages, frames))
		return -EINVAL;
	for (uint32_t i = 0; i < n_refs; i++)
		if (refs[i].page >= n_pages)
			return -EINVAL;
	uint8_t *p = scratch;
	struct replace_slot *slots = (void *)p;
	p += ALIGN8((size_t)frames * sizeof(struct replace_slot));
	uint32_t *where = (void *)p;     /* page -> slot, NONE if not resident */
	p += ALIGN8((size_t)n_pages * 4);
	uint32_t *next_use = (void *)p;  /* ref i -> index of the page's next ref, NONE if never */
	p += ALIGN8((size_t)n_refs * 4);
	uint32_t *key = (void *)p;       /* OPT: slot -> next use; LRU: slot -> last use */
	p += ALIGN8((size_t)frames * 4);
	struct sim sm = { .rm = p };

	struct replace r;
	bool oracle = policy == REPLACE_OPT || policy == REPLACE_LRU; /* the sim picks, the ring only holds */
	int e = replace_init(&r, oracle ? REPLACE_FIFO : policy, &sim_ops, &sm, slots, frames);
	if (e < 0)
		return e;
	for (uint32_t pg = 0; pg < n_pages; pg++)
		where[pg] = REPLACE_NONE;
	if (policy == REPLACE_OPT) { /* backwards, `where` holding each page's next ref */
		for (uint32_t i = n_refs; i-- > 0;) {
			next_use[i] = where[refs[i].page];
			where[refs[i].page] = i;
		}
		for (uint32_t pg = 0; pg < n_pages; pg++)
			where[pg] = REPLACE_NONE;
	}

	memset(out, 0, sizeof(*out));
	for (uint32_t i = 0; i < n_refs; i++) {
		uint32_t pg = refs[i].page, s = where[pg];
		struct replace_sim_step st = { .ref = i, .page = pg, .hit = s != REPLACE_NONE,
					       .victim = REPLACE_NONE, .ring = &r, .rm = sm.rm };
		if (s == REPLACE_NONE) {
			out->faults++;
			if (r.n_used == frames) {
				int64_t v = oracle ? (int64_t)key_victim(&r, key, policy == REPLACE_OPT)
						   : replace_victim(&r);
				if (v < 0)
					return (int)v;
				st.victim = (uint32_t)r.slot[v].page;
				st.writeback = sm.rm[v] & REPLACE_M;
				if (st.writeback)
					out->writebacks++;
				where[r.slot[v].page] = REPLACE_NONE;
				if ((e = replace_remove(&r, (uint32_t)v)) < 0)
					return e;
			}
			int64_t n = replace_insert(&r, pg);
			if (n < 0)
				return (int)n;
			s = (uint32_t)n;
			where[pg] = s;
			sm.rm[s] = 0;
		}
		sm.rm[s] |= REPLACE_R | (refs[i].write ? REPLACE_M : 0);
		if (oracle)
			key[s] = policy == REPLACE_OPT ? next_use[i] : i;
		if (step) {
			st.frame = s;
			step(ctx, &st);
		}
	}
	out->refs = n_refs;
	out->st = r.st;
	return 0;
}
