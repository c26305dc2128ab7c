"""manager: the loop that shares the budget.

One step():
  1. sample every guest (backend.stats/actual/rss/overhead/ws) into a
     Sample, checked (sample.py); a guest whose backend raises GuestGone is
     dropped, logged. The host's view (HostView.used) is Σ QEMU RSS less
     each QEMU's own memory (overhead: measured at every sample where the
     backend can, else the constant given to add()), so that a budget
     meant for guest memory is not spent on QEMU itself;
  2. ask the policy for a Decision per guest (base.py);
  3. make each target sane: a target that is not a finite number keeps the
     last one; one outside [floor, max] is clamped — each logged with the
     guest and the value;
  4. fit the budget: if the targets add up to more than it, cut first what
     lies above each guest's need, then above its floor, in proportion, and
     log each cut; if the floors alone exceed it, say so; then pace: a guest
     grows only into what the others' balloons have really given back, so
     the guests' sizes stay within the budget too, not just the targets;
  5. set the targets that changed (by at least `granule`) and log every
     decision with its reason.

The manager keeps a history of steps (time, targets, samples) for the tests
and the bench.
"""
import dataclasses
import json
import logging
import math
import time
from collections import deque

from blimp.units import MIB, PAGE

from .backend import GuestGone
from .base import GuestView, HostView, mib
from .sample import make_sample

log = logging.getLogger("blimp.policy")


class Guest:
    """The manager's record of one guest."""

    def __init__(self, backend, floor, window, overhead=None):
        self.backend, self.name = backend, backend.name
        self.max_bytes = backend.max_bytes()
        self.floor = min(floor, self.max_bytes)
        self.overhead = overhead   # QEMU's own memory, fixed; None: measured
        self.window = deque(maxlen=window)
        self.target = None

    def view(self):
        return GuestView(self.name, self.max_bytes, self.floor, self.target, list(self.window))


class Manager:
    def __init__(self, policy, budget, floor=64 * MIB, window=8, granule=MIB, clock=time.monotonic,
                 on_step=None):
        self.policy, self.budget, self.default_floor = policy, int(budget), floor
        self.on_step = on_step  # called with each step's record (the daemon's --record)
        self.window, self.granule, self.clock = window, granule, clock
        self.guests = {}
        self.history = []
        self._said = None  # the last over-budget message of guests without targets

    def add(self, backend, floor=None, overhead=None):
        """Manage one more guest. overhead: bytes of its QEMU's RSS that are
        QEMU's own, a constant measured once (for a backend that cannot
        measure it: libvirt); None measures it at every sample."""
        if overhead is not None and (isinstance(overhead, bool) or not isinstance(overhead, int)
                                     or overhead < 0):
            raise ValueError(f"guest {backend.name}: overhead {overhead!r} is not a size in bytes")
        g = Guest(backend, self.default_floor if floor is None else floor, self.window, overhead)
        if g.name in self.guests:
            raise ValueError(f"two guests called {g.name!r}")
        self.guests[g.name] = g
        log.info("guest %s: max %s, floor %s, QEMU's own memory %s", g.name, mib(g.max_bytes),
                 mib(g.floor), "measured each step" if overhead is None else mib(overhead) + " (given)")
        return g

    def drop(self, name, why):
        g = self.guests.pop(name, None)
        if g is not None:
            log.warning("guest %s dropped: %s", name, why)
            try:
                g.backend.close()
            except Exception:  # noqa: BLE001 - it is gone; closing is courtesy
                pass

    # ------------------------------------------------------------- sampling
    def sample(self, g):
        b = g.backend
        raw = b.stats()
        actual, rss = b.actual(), b.rss()
        overhead = b.overhead() if g.overhead is None else g.overhead
        ws, ws_avail = b.ws(raw)
        s = make_sample(self.clock(), raw, g.max_bytes, actual=actual, rss=rss, ws=ws,
                        ws_avail=ws_avail, overhead=overhead)
        for p in s.problems:
            log.warning("guest %s: nonsense statistic ignored: %s", g.name, p)
        # Only fresh guest figures go into the window: a sample whose
        # last-update has not moved would show rates of zero.
        prev = g.window[-1] if g.window else None
        if prev is not None and s.stamp is not None and s.stamp == prev.stamp:
            prev.actual, prev.rss, prev.overhead = s.actual, s.rss, s.overhead
            return prev
        g.window.append(s)
        return s

    # ------------------------------------------------------------- targets
    def sane(self, g, decision):
        """The decision's target made a number within [floor, max], or None."""
        t = decision.target
        if t is None:
            return None
        if isinstance(t, bool) or not isinstance(t, (int, float)) or \
                (isinstance(t, float) and not math.isfinite(t)):
            keep = g.target if g.target is not None else g.max_bytes
            log.warning("guest %s: policy gave target %r, not a number: keep %s", g.name, t, mib(keep))
            return keep
        t = int(t)
        if t < g.floor:
            log.warning("guest %s: target %d clamped up to the floor %s", g.name, t, mib(g.floor))
            return g.floor
        if t > g.max_bytes:
            log.warning("guest %s: target %d clamped down to its max %s", g.name, t, mib(g.max_bytes))
            return g.max_bytes
        return t

    def fit(self, targets, needs):
        """Cut targets (dict, None = no target) so that they sum to at most the
        budget: first above the needs, then above the floors; logged."""
        set_ = {n: t for n, t in targets.items() if t is not None}
        total = sum(set_.values()) + sum(self.guests[n].max_bytes for n, t in targets.items() if t is None)
        excess = total - self.budget
        if excess <= 0:
            return targets
        if len(set_) < len(targets):
            # Said at WARNING when it changes, at INFO each step after.
            msg = ("over budget: the guests without a target may use %s, their maximum, with "
                   "the targets %s, of the budget %s" %
                   (mib(sum(self.guests[n].max_bytes for n, t in targets.items() if t is None)),
                    mib(sum(set_.values())), mib(self.budget)))
            log.log(logging.INFO if msg == self._said else logging.WARNING, msg)
            self._said = msg
        out = dict(targets)
        for what, low in (("need", lambda n: max(needs.get(n) or 0, self.guests[n].floor)),
                          ("floor", lambda n: self.guests[n].floor)):
            room = {n: max(0, out[n] - low(n)) for n in set_}
            avail = sum(room.values())
            if avail <= 0 or excess <= 0:
                continue
            take = min(excess, avail)
            for n, r in room.items():
                cut = -(-take * r // avail)  # rounded up: the sum stays within
                cut = min(cut, r, excess)
                if cut > 0:
                    log.info("guest %s: budget cut %s above its %s: %s -> %s", n, mib(cut), what,
                             mib(out[n]), mib(out[n] - cut))
                    out[n] -= cut
                    excess -= cut
        if excess > 0 and set_:
            log.error("over budget by %s: the floors (and guests without targets) exceed the "
                      "budget %s", mib(excess), mib(self.budget))
        return out

    def pace(self, targets):
        """Grow guests only into memory the others have given back.

        A balloon takes time to inflate (the guest may even refuse: blimp's
        working-set guard), and deflates at once. So targets that sum to the
        budget could still let the guests' sizes exceed it, for as long as
        the shrinking ones lag. Each guest holds max(size now, target); a
        guest asked to grow gets at most its share of the budget left after
        what the others hold, in proportion to what it asked; logged."""
        if any(t is None for t in targets.values()):
            return targets   # guests without targets: nothing to pace against
        now = {n: self.guests[n].view().actual for n in targets}
        growing = {n: t - now[n] for n, t in targets.items() if t > now[n]}
        if not growing:
            return targets
        held = sum(now[n] if n in growing else max(now[n], t) for n, t in targets.items())
        room = max(0, self.budget - held)
        asked = sum(growing.values())
        if asked <= room:
            return targets
        out = dict(targets)
        for n, want in growing.items():
            give = want * room // asked
            t = now[n] + give
            t = max(t - t % PAGE, min(now[n], out[n]))
            log.info("guest %s: grows %s of the %s asked: the others still hold %s of the "
                     "budget (their balloons lag): %s -> %s", n, mib(t - now[n]), mib(want),
                     mib(held - now[n]), mib(targets[n]), mib(t))
            out[n] = t
        return out

    # ------------------------------------------------------------- a step
    def step(self):
        """One round: sample, decide, clamp, fit, set. Returns the step record."""
        samples = {}
        for name, g in list(self.guests.items()):
            try:
                samples[name] = self.sample(g)
            except GuestGone as e:
                self.drop(name, str(e))
            except Exception as e:  # noqa: BLE001 - one guest's error must not end the daemon
                # QEMU refused a command (an error answer) but is there: the
                # guest keeps its window and its target, and is asked again.
                log.warning("guest %s: no sample this step: %s", name, e)
        if not self.guests:
            log.warning("no guests left")
            rec = {"t": self.clock(), "targets": {}, "samples": {}, "reasons": {}}
            self.history.append(rec)
            return rec
        rss = [s.rss for s in samples.values()]
        host = HostView(self.budget, None if None in rss else sum(rss),
                        sum(g.view().actual for g in self.guests.values()),
                        overhead=sum(s.overhead or 0 for s in samples.values()))
        views = [g.view() for g in self.guests.values()]
        try:
            decisions = self.policy.decide(host, views)
        except Exception as e:  # noqa: BLE001 - a policy bug must not end the daemon
            log.exception("policy %s failed (%s): every target kept", self.policy.name, e)
            decisions = {}
        targets, needs, reasons = {}, {}, {}
        for name, g in self.guests.items():
            d = decisions.get(name)
            if d is None:
                keep = g.target
                reasons[name] = "the policy said nothing: keep " + mib(keep)
                targets[name] = keep
                continue
            targets[name] = self.sane(g, d)
            needs[name] = d.need if isinstance(d.need, int) and not isinstance(d.need, bool) else None
            reasons[name] = d.reason
        targets = self.fit(targets, needs)
        # Whole pages, rounded down: the balloon moves in pages and rounds a
        # target it cannot meet exactly up, which would break the budget.
        targets = {n: (None if t is None else max(t - t % PAGE, min(self.guests[n].floor, t)))
                   for n, t in targets.items()}
        targets = self.pace(targets)
        for name, t in targets.items():
            g = self.guests[name]
            log.info("guest %s: %s [%s]", name, "no target" if t is None else f"target {mib(t)}",
                     reasons[name])
            # A small rise is not worth a QMP command; a fall always is (the
            # budget may hang on it).
            if t is None or (g.target is not None and 0 <= t - g.target < self.granule):
                continue
            try:
                g.backend.set_target(t)
                g.target = t
            except GuestGone as e:
                self.drop(name, str(e))
            except Exception as e:  # noqa: BLE001
                log.warning("guest %s: target %s not set: %s", name, mib(t), e)
        set_sum = sum(g.target for g in self.guests.values() if g.target is not None)
        rec = {"t": self.clock(), "host_used": host.used, "host_overhead": host.overhead,
               "targets": {n: g.target for n, g in self.guests.items()},
               "target_sum": set_sum,
               "samples": samples, "reasons": reasons}
        self.history.append(rec)
        if self.on_step:
            self.on_step(rec)
        return rec

    def run(self, interval, stop, steps=None):
        """step() every `interval` s until stop() is true (or `steps` done)."""
        n = 0
        while not stop() and (steps is None or n < steps):
            start = self.clock()
            self.step()
            n += 1
            while not stop() and self.clock() - start < interval:
                time.sleep(min(0.1, interval))


SAMPLE_FIELDS = ("actual", "rss", "overhead", "free", "avail", "caches", "swap_in", "swap_out", "majflt",
                 "minflt", "ws", "ws_avail")


def record_json(rec, budget):
    """One step's record as a JSON line (the daemon's --record, the bench)."""
    out = {"t": rec["t"], "budget": budget, "target_sum": rec.get("target_sum", 0),
           "host_used": rec.get("host_used"), "host_overhead": rec.get("host_overhead"),
           "targets": rec["targets"], "reasons": rec["reasons"],
           "guests": {}}
    for name, s in rec["samples"].items():
        d = dataclasses.asdict(s)
        out["guests"][name] = {k: d[k] for k in SAMPLE_FIELDS}
    return json.dumps(out)
