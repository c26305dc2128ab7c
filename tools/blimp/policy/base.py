"""base: what a policy sees and what it answers.

A policy is one object with decide(host, guests) -> {name: Decision}. It sees
each guest as a GuestView (its bounds, the target last set, and a window of
its recent Samples, oldest first) and the host as a HostView (the budget and
what the guests' QEMUs hold). It answers, per guest, a target in bytes (None:
set none, leave the balloon alone) and a reason in words. It need not clamp
or fit the budget: the manager does both and logs what it changed. A policy
keeps no state of its own beyond its parameters; everything it knows is in
the window, so a policy can be tested with a synthetic window alone.

`need` in a Decision is what the policy thinks the guest cannot lose without
harm (None: its target). When the targets exceed the budget the manager cuts
first from what lies above each guest's need.
"""
from dataclasses import dataclass
from typing import Optional

from blimp.units import MIB


@dataclass
class Decision:
    target: Optional[int]
    reason: str
    need: Optional[int] = None


@dataclass
class HostView:
    budget: int
    rss: Optional[int]       # sum of the guests' QEMU RSS, None if any unknown
    committed: int           # sum of the guests' sizes now (balloon actual)
    overhead: int = 0        # of rss, QEMU's own memory (not guest RAM)

    @property
    def used(self):
        """What the guests' memory holds of the host: RSS less QEMU's own
        where known, else their sizes. The budget is for guest memory;
        QEMU's own (35-90 MiB a QEMU under TCG, docs/policy.md) would
        otherwise count as pressure that no balloon can relieve."""
        return max(0, self.rss - self.overhead) if self.rss is not None else self.committed

    @property
    def free_fraction(self):
        return (self.budget - self.used) / self.budget


@dataclass
class GuestView:
    name: str
    max_bytes: int           # the guest's memory (-m): the top of its target
    floor: int               # the least target the manager will set
    target: Optional[int]    # the target last set (None: none yet)
    window: list             # Samples, oldest first

    @property
    def last(self):
        return self.window[-1] if self.window else None

    @property
    def actual(self):
        """The guest's size now; its maximum while not known."""
        for s in reversed(self.window):
            if s.actual is not None:
                return s.actual
        return self.max_bytes

    @property
    def base(self):
        """Where a step starts: the target last set, else the size now."""
        return self.target if self.target is not None else self.actual

    def series(self, attr):
        """[(t, value)] of one Sample field over the window, unknowns skipped."""
        return [(s.t, getattr(s, attr)) for s in self.window if getattr(s, attr) is not None]

    def rates(self, attr):
        """[(t, per second)] of a cumulative counter between successive known
        values; a counter that went backwards (a guest reboot, a lie) gives
        no rate for that interval."""
        pts = self.series(attr)
        out = []
        for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
            if t1 > t0 and v1 >= v0:
                out.append((t1, (v1 - v0) / (t1 - t0)))
        return out


def slope(points):
    """Least-squares slope (units per second) of [(t, v)]; 0 with fewer than 2."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den


def mib(n):
    """Bytes as MiB for reasons and logs."""
    return "?" if n is None else f"{n / MIB:.0f}M"


class Policy:
    name = "?"

    def decide(self, host, guests):
        """{guest name: Decision} for every GuestView in `guests`."""
        raise NotImplementedError
