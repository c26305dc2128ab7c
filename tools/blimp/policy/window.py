"""window: a predictive policy over a sliding window of each guest's figures
(seed 000): the major-fault rate, the swap-in rate and free memory, each
with its least-squares slope over the window, projected `horizon` seconds
ahead.

  grow    when the projected fault rate or swap-in rate passes its limit,
          or the swap-out rate does while free memory is below `keep_free`
          (a fill under a tight target writes out before anything faults) —
          so a rate still low but rising fast gets memory before it is high
          ("deflate before the fault rate rises"); the step grows with how
          far past the limit the projection is, up to 3 steps.
  hold    while the guest faulted in the window at all (a quarter of the
          limit): memory just given is not taken back at once.
  shrink  when free memory, and free memory projected along the slope of
          the guest's use (its size less its free memory: what the balloon
          takes is not the guest's trend), both stay above `keep_free` of
          its size: by the smaller of that slack and `shrink_step` of its
          maximum.
  hold    otherwise, and while the balloon has not reached the last
          target (its slack is measured at the size reached).

`need` (what the budget cut spares) is the new target for a guest that
grows, and its used memory plus `keep_free` for the others.
"""
from blimp.units import KIB, MIB

from .base import Decision, Policy, mib, slope


class Window(Policy):
    name = "window"

    def __init__(self, horizon=5.0, keep_free=0.10, shrink_step=0.05, grow_step=0.10,
                 fault_hi=10.0, swapin_hi=256 * KIB, swapout_hi=1024 * KIB):
        self.horizon, self.keep_free = horizon, keep_free
        self.shrink_step, self.grow_step = shrink_step, grow_step
        self.fault_hi, self.swapin_hi, self.swapout_hi = fault_hi, swapin_hi, swapout_hi

    def _trend(self, g, attr):
        r = g.rates(attr)
        now = r[-1][1] if r else 0.0
        sl = slope(r)
        return now, sl, now + max(0.0, sl) * self.horizon, max((v for _, v in r), default=0.0)

    def decide_one(self, g):
        last, base, actual = g.last, g.base, g.actual
        if last is None:
            return Decision(base, f"no sample yet: hold {mib(base)}")
        f_now, f_sl, f_pred, f_max = self._trend(g, "majflt")
        s_now, s_sl, s_pred, s_max = self._trend(g, "swap_in")
        figures = (f"majflt {f_now:.0f}/s slope {f_sl:+.1f}/s² -> {f_pred:.0f}/s, "
                   f"swap-in {s_now / KIB:.0f}K/s -> {s_pred / KIB:.0f}K/s")
        o_now, o_sl, o_pred, o_max = self._trend(g, "swap_out")
        figures += f", swap-out {o_now / KIB:.0f}K/s"
        # Swap-out with little free memory: pages go out now that will be
        # faulted back later; it comes before the faults (a fill under a
        # tight target writes out, it does not read back).
        tight = last.free is not None and last.free < self.keep_free * actual
        out_over = o_pred / self.swapout_hi if tight else 0.0
        over = max(f_pred / self.fault_hi, s_pred / self.swapin_hi, out_over)
        if over > 1:
            amount = int(self.grow_step * g.max_bytes * min(3.0, over))
            new = min(g.max_bytes, max(base, actual) + amount)
            ahead = "" if max(f_now / self.fault_hi, s_now / self.swapin_hi) > 1 else \
                " (swapping out, little free: ahead of the faults)" if out_over > 1 else " (rising: ahead of it)"
            return Decision(new, f"{figures}: past the limit{ahead}, grow {mib(base)} -> {mib(new)}",
                            need=new)
        if last.free is None:
            return Decision(base, f"{figures}; no free figure: hold {mib(base)}")
        keep = int(self.keep_free * actual)
        need = max(0, actual - last.free) + keep
        if f_max > self.fault_hi / 4 or s_max > self.swapin_hi / 4 or (tight and o_max > self.swapout_hi / 4):
            return Decision(base, f"{figures}; faulted in the window: hold {mib(base)}",
                            need=max(need, min(base, actual)))
        # The guest's own use: its size less its free memory. Free memory
        # itself also falls when the balloon takes it, which is not a trend
        # of the guest's.
        used = [(s.t, (s.actual if s.actual is not None else g.max_bytes) - s.free)
                for s in g.window if s.free is not None]
        used_sl = slope(used)
        free_sl = -used_sl
        free_pred = last.free - max(0.0, used_sl) * self.horizon
        slack = int(min(last.free, free_pred)) - keep
        if base < actual - MIB:
            # The balloon has not reached the last target (the guest's guard
            # may refuse it): its slack is measured at `actual`, so a shrink
            # from `base` would take it twice.
            return Decision(base, f"{figures}; size {mib(actual)} still above the target: "
                            f"hold {mib(base)}", need=need)
        if slack > MIB and min(base, actual) > g.floor:
            new = max(g.floor, min(base, actual) - min(slack, int(self.shrink_step * g.max_bytes)))
            return Decision(new, f"{figures}; free {mib(last.free)} (slope {free_sl / MIB:+.1f}M/s, "
                            f"projected {mib(int(free_pred))}), slack {mib(slack)} over "
                            f"{self.keep_free:.0%}: shrink {mib(base)} -> {mib(new)}", need=need)
        return Decision(base, f"{figures}; free {mib(last.free)}, no slack over {self.keep_free:.0%}: "
                        f"hold {mib(base)}", need=need)

    def decide(self, host, guests):
        return {g.name: self.decide_one(g) for g in guests}
