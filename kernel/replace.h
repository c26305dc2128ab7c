/*
 * replace: page-replacement policies over a set of resident pages — which
 * page gives up its frame when a new one must come in.
 *
 * The module knows nothing of page tables. The caller owns the pages and
 * their referenced (R) and modified (M) bits, and lends the module an array
 * of slots, one per frame it may fill. The slots in use form a ring in the
 * order pages came in; the hand points at the oldest:
 *
 *            hand (oldest)
 *              v
 *        +-> [ p7 ] -> [ p3 ] -> [ p9 ] -> [ p1 ] --+
 *        |                                 newest   |
 *        +------------------------------------------+
 *
 *   replace_insert  a page became resident: it joins the ring just behind
 *                   the hand (the newest).
 *   replace_remove  a page left (evicted, freed, unmapped): it leaves the ring;
 *                   if the hand was on it, the hand moves to the next.
 *   replace_victim  which page to evict: reads (and for some policies clears)
 *                   R through the ops table, returns its slot. It does not
 *                   remove it: the caller evicts, then calls replace_remove.
 *
 * Policies (docs/paging.md has the (R,M) classes and a worked example):
 *   REPLACE_FIFO   the hand's page, bits ignored.
 *   REPLACE_CLOCK  second chance: a page with R set has R cleared and is
 *                  passed over; the first page with R clear is the victim.
 *   REPLACE_ESC    enhanced second chance over the classes (R,M): (0,0), then
 *                  (0,1), (1,0), (1,1), by the four-pass scan in replace.c.
 *   REPLACE_LRU    exact least recently used: needs a time stamp per access,
 *                  which the MMU does not keep, so only the simulator runs it,
 *                  as the yardstick the clocks approximate.
 *   REPLACE_OPT    Belady's optimum: needs the future, so only the simulator
 *                  (replace_simulate) runs it.
 * replace_init refuses LRU and OPT with -EINVAL.
 *
 * In the kernel, R and M are a PTE's Accessed and Dirty bits. Clearing R is
 * a promise the caller must keep: a CPU that still holds the translation in
 * its TLB with A set does not set A in the PTE again, so the page would look
 * unused while it is hot. So the caller invalidates the translation (INVLPG,
 * a shootdown on other CPUs) of every page whose R it cleared, before that
 * page's R is read again — one flush per replace_victim call, in ops->flush,
 * is enough. M is only read here, never cleared: it is cleared by whoever
 * writes the page back.
 *
 * Errors are negative errno values; a bad call changes nothing.
 * Host-compilable (tests/unit/test_replace.c), not locked.
 */
#ifndef BLIMP_REPLACE_H
#define BLIMP_REPLACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum replace_policy {
	REPLACE_FIFO = 0,
	REPLACE_CLOCK = 1,
	REPLACE_ESC = 2,
	REPLACE_LRU = 3,
	REPLACE_OPT = 4,
	REPLACE_POLICIES = 5,
};

#define REPLACE_R 1u   /* referenced: the PTE's Accessed bit */
#define REPLACE_M 2u   /* modified: the PTE's Dirty bit */
#define REPLACE_NONE UINT32_MAX

struct replace_ops {
	/* The bits (REPLACE_R | REPLACE_M) of the page in `slot` as they were
	 * before the call; if `clear_r`, R is cleared (see the TLB rule above).
	 * A negative errno stops replace_victim with that error. */
	int (*bits)(void *ctx, uint32_t slot, uint64_t page, bool clear_r);
	/* Optional (NULL: nothing to do). Called once at the end of a
	 * replace_victim that cleared at least one R: the place to flush the
	 * TLB. A negative errno is returned by replace_victim. */
	int (*flush)(void *ctx);
};

/* A frame's slot. Owned by the caller's storage, changed only here. */
struct replace_slot {
	uint64_t page;       /* the caller's name for the page (a vpn, say) */
	uint32_t next, prev; /* the ring toward newer pages and older ones; when
			      * free, next links the free slots, prev is NONE */
	bool used;
};

struct replace_stats {
	uint64_t inserts, removes, victims, touches;
	uint64_t scanned;        /* slots looked at by replace_victim */
	uint64_t r_cleared;      /* R bits found set and cleared */
	uint64_t by_class[4];    /* victims by their (R,M) when first seen: index R*2+M */
};

struct replace {
	enum replace_policy policy;
	const struct replace_ops *ops;
	void *ctx;
	struct replace_slot *slot;
	uint32_t n_slots, n_used;
	uint32_t hand;           /* the oldest page's slot, REPLACE_NONE when empty */
	uint32_t free_head;      /* first free slot, REPLACE_NONE when full */
	/* R is cleared by the caller's own aging hand (a two-handed clock):
	 * replace_take then only reads R in the passes that would clear it
	 * (ESC's second, the clock's first round), and clears only when they
	 * found nothing. Set it after replace_init; replace_victim ignores it. */
	bool aged;
	struct replace_stats st;
};

/* Set up over `slots[n_slots]` (caller storage, any contents). 0, or -EINVAL
 * (no slots, policy unknown, LRU or OPT, ops or ops->bits missing for a policy that
 * reads bits). FIFO may run with ops NULL. */
int replace_init(struct replace *r, enum replace_policy policy, const struct replace_ops *ops,
		 void *ctx, struct replace_slot *slots, uint32_t n_slots);

/* `page` became resident: its slot (>= 0), the newest in the ring, or
 * -ENOSPC (every slot used). */
int64_t replace_insert(struct replace *r, uint64_t page);

/* The page in `slot` was found used: it becomes the newest in the ring,
 * the last the hand will reach (an aging hand calls this as it clears R,
 * so the ring's order approaches least-recently-used). 0, or -EINVAL. */
int replace_touch(struct replace *r, uint32_t slot);

/* The page in `slot` is no longer resident. 0, or -EINVAL (no such slot in use). */
int replace_remove(struct replace *r, uint32_t slot);

/* The slot of the page to evict (>= 0), still in the ring; the hand is left
 * on it, so removing it moves the hand past. -ENOENT if nothing is resident,
 * or the error of an ops callback. */
int64_t replace_victim(struct replace *r);

/*
 * Up to `max` victims at once, taken out of the ring (no replace_remove
 * needed): their pages into pages[], how many (0 when nothing is resident),
 * or the error of an ops callback if none was taken. The choice is
 * replace_victim's, class by class, but each pass goes around once and
 * takes every page of its class it meets: replace_victim, on a ring with no
 * page of class (0,0), walks the whole ring for every single victim, which
 * for a kernel freeing hundreds of pages out of a ring of hundreds of
 * thousands is seconds instead of microseconds. With max == 1 it chooses
 * exactly what replace_victim does. It may return fewer than `max` while
 * pages are resident: the passes that would take pages whose R it has
 * just cleared (ESC's third and fourth, the clock's second round) run only
 * when nothing was found before them, so a caller should let the pages be
 * used a while before it asks again. FIFO, CLOCK and ESC; -EINVAL
 * otherwise.
 */
int64_t replace_take(struct replace *r, uint64_t *pages, uint32_t max);

/* Slots in ring order from the hand, into out[max]: how many were written. */
uint32_t replace_order(const struct replace *r, uint32_t *out, uint32_t max);

/* The ring is a consistent cycle through exactly the used slots, counts
 * agree. 0, or -EFAULT with `why`. */
int replace_check(const struct replace *r, char *why, size_t why_len);

const char *replace_policy_name(enum replace_policy p);
/* The policy named `name` ("fifo", "clock", "esc", "lru", "opt"), or -EINVAL. */
int replace_policy_parse(const char *name);

/* ---- the simulator: a reference string run through a policy ---- */

struct replace_ref {
	uint32_t page;   /* in [0, n_pages) */
	uint8_t write;   /* 1: the access sets M */
};

struct replace_result {
	uint64_t refs, faults, writebacks; /* writebacks: victims with M set */
	struct replace_stats st;           /* of the policy's ring (not for LRU, OPT) */
};

/* Bytes of scratch replace_simulate needs. */
size_t replace_sim_scratch_size(uint32_t n_refs, uint32_t n_pages, uint32_t frames);

/*
 * Run `refs[n_refs]` with `frames` frames under `policy`, starting empty.
 * A reference to a page not resident is a fault; if no frame is free the
 * policy chooses a victim, written back if its M is set. A page comes in
 * clean, and every access sets its R (and M if a write), as the MMU does.
 * `scratch` (replace_sim_scratch_size bytes, 8-aligned) is the only memory
 * used. 0 and *out, or -EINVAL (a page out of range, frames 0, scratch too
 * small or misaligned, policy unknown).
 */
int replace_simulate(enum replace_policy policy, const struct replace_ref *refs, uint32_t n_refs,
		     uint32_t n_pages, uint32_t frames, void *scratch, size_t scratch_len,
		     struct replace_result *out);

/* One reference as replace_simulate_steps ran it, for a step-by-step trace
 * (tools/sim/paging_sim.c). `ring` and `rm` show the frames after the
 * reference: frame f holds ring->slot[f].page if ring->slot[f].used, with
 * bits rm[f] (REPLACE_R | REPLACE_M); ring->hand is the oldest page's frame. */
struct replace_sim_step {
	uint32_t ref;                /* index in refs[] */
	uint32_t page;
	bool hit;
	uint32_t frame;              /* where the page is now */
	uint32_t victim;             /* the page evicted for it, REPLACE_NONE if none */
	bool writeback;              /* the victim had M set */
	const struct replace *ring;
	const uint8_t *rm;
};

/* replace_simulate, calling step(ctx, ...) after every reference (step may
 * be NULL: then it is replace_simulate). */
int replace_simulate_steps(enum replace_policy policy, const struct replace_ref *refs, uint32_t n_refs,
			   uint32_t n_pages, uint32_t frames, void *scratch, size_t scratch_len,
			   struct replace_result *out,
			   void (*step)(void *ctx, const struct replace_sim_step *st), void *ctx);

#endif
