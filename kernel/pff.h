/*
 * pff: page-fault-frequency control and thrashing detection for one
 * workload — the decisions only, from a period's figures. No kernel calls:
 * compiled into the kernel (kernel/workload.c applies the decisions) and
 * into the host's unit tests (tests/unit/test_pff.c).
 *
 * Page-fault frequency (Chu and Opderbeck, 1972) sizes a program's memory
 * by how often it faults rather than by a fixed share. Each period:
 *
 *   major faults per 1000 accesses above `high_pm`   the allotment grows:
 *                                                    what it has now, plus
 *                                                    an eighth (at least
 *                                                    min_step pages)
 *   below `low_pm`                                   it shrinks to the
 *                                                    working-set estimate
 *                                                    (if min_step or more
 *                                                    below): the rest is slack
 *   between                                          it stays
 *
 * The rate is per access, not per second: a workload that gets less CPU
 * (time slices shared, a slow host) faults less per second without
 * needing less memory. Reclaim takes from workloads above their allotment
 * first (kernel/vm.c), so memory moves from the one that does not fault to
 * the one that does.
 *
 * Thrashing (Denning, 1968): the fault rate stays high while useful work
 * collapses. A period thrashes when at least `thrash_pm` of each 1000
 * accesses were major faults and accesses per second fell to at most
 * `collapse_pct` % of the workload's best healthy period (one below
 * high_pm). `periods` such periods in a row start an episode; as many
 * without end it. Both ends are reported once, with the evidence.
 */
#ifndef BLIMP_PFF_H
#define BLIMP_PFF_H

#include <stdbool.h>
#include <stdint.h>

struct pff_params {
	unsigned high_pm, low_pm;   /* major faults per 1000 accesses: grow above, shrink below */
	unsigned thrash_pm;         /* a thrashing period faults at least this often ... */
	unsigned collapse_pct;      /* ... and runs at most this % of its best rate */
	unsigned periods;           /* periods in a row that start or end an episode */
	uint64_t min_step;          /* pages an allotment grows by at least */
};

/* The defaults, documented in docs/working-set.md. */
#define PFF_DEFAULTS { .high_pm = 20, .low_pm = 2, .thrash_pm = 100, .collapse_pct = 30, \
		       .periods = 2, .min_step = 256 }

/* One period of one workload. */
struct pff_sample {
	uint64_t accesses, majflt;  /* during the period */
	uint64_t ms;                /* its length */
	uint64_t resident, ws;      /* pages now; its working-set estimate (0: none yet) */
	uint64_t size;              /* pages it has at all: an allotment never exceeds it */
};

struct pff_state {
	uint64_t allot;             /* pages; 0 until the first period */
	uint64_t best_rate;         /* accesses per second, the best healthy period */
	unsigned run;               /* periods in a row against the current episode state */
	bool thrashing;
};

enum pff_move { PFF_KEEP, PFF_GROW, PFF_SHRINK };

struct pff_result {
	enum pff_move move;
	uint64_t allot_before;
	unsigned fault_pm;          /* this period's major faults per 1000 accesses */
	uint64_t rate;              /* accesses per second */
	bool thrash_start, thrash_end;
};

/* One period's decisions; updates *s. A period of 0 ms changes nothing. */
struct pff_result pff_update(struct pff_state *s, const struct pff_params *p, const struct pff_sample *in);

const char *pff_move_name(enum pff_move m);

#endif
