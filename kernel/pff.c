/*
 * pff: page-fault-frequency allotments and thrashing episodes (see pff.h).
 */
#include "pff.h"

const char *pff_move_name(enum pff_move m)
{
	return m == PFF_GROW ? "grow" : m == PFF_SHRINK ? "shrink" : "keep";
}

struct pff_result pff_update(struct pff_state *s, const struct pff_params *p, const struct pff_sample *in)
{
	struct pff_result r = { .move = PFF_KEEP, .allot_before = s->allot };
	if (in->ms == 0)
		return r;
	/* No access at all but faults: every attempt faulted. */
	r.fault_pm = in->accesses ? (unsigned)(in->majflt * 1000 / in->accesses > 1000 ? 1000 :
					       in->majflt * 1000 / in->accesses)
				  : in->majflt ? 1000 : 0;
	r.rate = in->accesses * 1000 / in->ms;
	if (s->allot == 0)
		s->allot = in->resident;

	if (r.fault_pm > p->high_pm) {
		uint64_t base = s->allot > in->resident ? s->allot : in->resident;
		uint64_t step = base / 8 > p->min_step ? base / 8 : p->min_step;
		s->allot = base + step < in->size ? base + step : in->size;
		r.move = s->allot > r.allot_before ? PFF_GROW : PFF_KEEP;
	} else if (r.fault_pm < p->low_pm && in->ws && in->ws + p->min_step <= s->allot) {
		/* (Not for a few pages: the estimate moves a little every round.) */
		s->allot = in->ws;
		r.move = PFF_SHRINK;
	}
	if (r.fault_pm < p->high_pm && r.rate > s->best_rate)
		s->best_rate = r.rate;

	bool bad = r.fault_pm >= p->thrash_pm && s->best_rate &&
		   r.rate * 100 <= s->best_rate * p->collapse_pct;
	if (bad != s->thrashing) {
		if (++s->run >= p->periods) {
			s->thrashing = bad;
			s->run = 0;
			r.thrash_start = bad;
			r.thrash_end = !bad;
		}
	} else {
		s->run = 0;
	}
	return r;
}
