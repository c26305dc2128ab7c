"""mom: the default balloon rules of oVirt's MOM, written from their
description (not from its code):

  - host pressure: the host's free memory (the budget less what the guests'
    QEMUs hold, QEMU's own memory set aside: HostView.used) below 20 % of
    the budget. Each guest shrinks toward keeping
    20 % of its memory free (used / 0.8), by at most 5 % of its maximum per
    step; under 5 % free (critical) by at most 10 %. A guest already at or
    below that size is left where it is.
  - no pressure: each guest grows back toward its maximum, at most 5 % of
    its maximum per step.
"""
from .base import Decision, Policy, mib


class Mom(Policy):
    name = "mom"

    def __init__(self, pressure=0.20, critical=0.05, keep_free=0.20, step=0.05, critical_step=0.10):
        self.pressure, self.critical = pressure, critical
        self.keep_free, self.step, self.critical_step = keep_free, step, critical_step

    def decide(self, host, guests):
        hf = host.free_fraction
        out = {}
        for g in guests:
            base, last = g.base, g.last
            if hf >= self.pressure:
                new = min(g.max_bytes, base + int(self.step * g.max_bytes))
                out[g.name] = Decision(new, f"host free {hf:.0%} >= {self.pressure:.0%}: grow "
                                       f"{mib(base)} -> {mib(new)}")
                continue
            if last is None or last.free is None:
                out[g.name] = Decision(base, f"host free {hf:.0%} but no free figure: hold {mib(base)}")
                continue
            actual = g.actual
            used = max(0, actual - last.free)
            ideal = int(used / (1 - self.keep_free))
            frac = self.critical_step if hf < self.critical else self.step
            floor = min(base, actual) - int(frac * g.max_bytes)
            if max(ideal, g.floor) >= min(base, actual):
                out[g.name] = Decision(base, f"host free {hf:.0%}, guest keeps <= {self.keep_free:.0%} "
                                       f"free already: hold {mib(base)}", need=ideal)
                continue
            new = max(ideal, floor, g.floor)
            kind = "critical" if hf < self.critical else "pressure"
            out[g.name] = Decision(new, f"host {kind} (free {hf:.0%}): shrink toward "
                                   f"{mib(ideal)} (used {mib(used)} + {self.keep_free:.0%} free), "
                                   f"{mib(base)} -> {mib(new)}", need=ideal)
        return out
