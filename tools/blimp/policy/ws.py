"""ws: targets from the guest's own working-set figure where it gives one,
the `window` policy for the guests that do not.

blimp tells what can go without hurting a working set (AVAIL,
`stat-available-memory`, and `avail` in its `ws` event: free memory, clean
cache and pages outside the working sets, less its margin and reserve;
docs/ws-reporting.md). What the guest needs is then its size less that;
the target is the need plus `margin` (a share of it, at least `min_margin`).
A shrink goes at most `shrink_step` of the maximum per step (the guest's
balloon guard refuses to go below its working set anyway); a guest whose
faults the window shows rising gets whichever target is larger.

Linux's AVAIL is MemAvailable, not a working set: the backend sets
Sample.ws_avail only for guests declared to report one (`ws=avail`).
"""
from blimp.units import MIB

from .base import Decision, Policy, mib
from .window import Window


class WorkingSet(Policy):
    name = "ws"

    def __init__(self, margin=0.10, min_margin=16 * MIB, shrink_step=0.10, **window_options):
        self.margin, self.min_margin, self.shrink_step = margin, min_margin, shrink_step
        self.window = Window(**window_options)

    def decide_one(self, g):
        w = self.window.decide_one(g)
        last = g.last
        if last is None or last.ws_avail is None:
            return Decision(w.target, f"no working-set figure; window: {w.reason}", w.need)
        actual, base = g.actual, g.base
        need = max(0, actual - last.ws_avail)
        want = need + max(self.min_margin, int(self.margin * need))
        new = min(g.max_bytes, max(g.floor, want, min(base, actual) - int(self.shrink_step * g.max_bytes)))
        ws = f", ws {mib(last.ws)}" if last.ws is not None else ""
        reason = (f"size {mib(actual)}, takeable {mib(last.ws_avail)}{ws}: needs {mib(need)}, "
                  f"+ margin -> {mib(want)}")
        if w.target is not None and w.need == w.target and w.target > new:
            return Decision(w.target, f"{reason}; but window grows: {w.reason}", w.target)
        verb = "shrink" if new < base else "grow" if new > base else "hold"
        return Decision(new, f"{reason}: {verb} {mib(base)} -> {mib(new)}", need=want)

    def decide(self, host, guests):
        return {g.name: self.decide_one(g) for g in guests}
