"""Host tests of the policy tool (tools/blimp/policy): each policy on
synthetic windows, the manager's clamps and budget, nonsense statistics and
a guest that disappears. No QEMU; the whole file runs in well under a second.
"""
import logging
import math
import os
import random

import pytest

from blimp.policy import Decision, GuestView, HostView, Sample, make_policy, parse_size
from blimp.policy.__main__ import parse_guest
from blimp.policy.backend import Backend, GuestGone
from blimp.policy.base import slope
from blimp.policy.manager import Manager
from blimp.policy.sample import make_sample
from blimp.units import GIB, MIB

MAX = 512 * MIB


def stats(free=None, avail=None, majflt=0, swap_in=0, caches=0, stamp=None, **extra):
    s = {"stat-free-memory": free, "stat-available-memory": -1 if avail is None else avail,
         "stat-major-faults": majflt, "stat-swap-in": swap_in, "stat-disk-caches": caches,
         "stat-swap-out": 0, "stat-minor-faults": 0, "stat-total-memory": -1}
    s.update(extra)
    return {"stats": s, "last-update": stamp}


def view(samples, target=None, max_bytes=MAX, floor=64 * MIB, name="g"):
    return GuestView(name, max_bytes, floor, target, samples)


def window_of(frees, majflts=None, swap_ins=None, actual=MAX, dt=1.0, ws_avail=None, swap_outs=None):
    """Samples one `dt` apart with the given free bytes and cumulative counters."""
    n = len(frees)
    majflts = majflts or [0] * n
    swap_ins = swap_ins or [0] * n
    swap_outs = swap_outs or [0] * n
    return [Sample(t=i * dt, actual=actual, free=f, majflt=m, swap_in=s, swap_out=o, ws_avail=ws_avail)
            for i, (f, m, s, o) in enumerate(zip(frees, majflts, swap_ins, swap_outs))]


HOST_OK = HostView(budget=2 * GIB, rss=512 * MIB, committed=1 * GIB)


# ------------------------------------------------------------- samples
@pytest.mark.parametrize("value,complaint", [
    (-5, "negative"), (MAX + 1, "larger"), ("lots", "not a number"), (float("nan"), "not a number"),
    (float("inf"), "not a number"), (True, "not a number"), ([1], "not a number"),
])
def test_a_nonsense_memory_figure_is_dropped_and_named(value, complaint):
    s = make_sample(0.0, stats(free=value), MAX)
    assert s.free is None
    assert any("stat-free-memory" in p and complaint in p for p in s.problems), s.problems


def test_absent_figures_are_none_without_complaint():
    s = make_sample(0.0, {"stats": {"stat-free-memory": -1}}, MAX)
    assert s.free is None and s.avail is None and s.majflt is None and s.problems == []


@pytest.mark.parametrize("raw", [None, "x", 7, [], {"stats": "no"}, {"stats": None}])
def test_a_stats_answer_that_is_not_an_object_gives_an_empty_sample(raw):
    s = make_sample(0.0, raw, MAX, actual=MAX)
    assert s.free is None and s.actual == MAX
    if raw is not None and raw != {"stats": None}:
        assert s.problems


def test_parse_size():
    assert parse_size("1G") == GIB and parse_size("512M") == 512 * MIB
    assert parse_size("1536MiB") == 1536 * MIB and parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("big")


def test_slope_and_rates():
    assert slope([(0, 0), (1, 2), (2, 4)]) == pytest.approx(2.0)
    assert slope([(0, 5)]) == 0.0
    g = view(window_of([0] * 4, majflts=[0, 10, 5, 25]))
    # The counter went backwards between 1 and 2: no rate there.
    assert g.rates("majflt") == [(1.0, 10.0), (3.0, 20.0)]


# ------------------------------------------------------------- policies
def test_static_gives_named_sizes_and_shares_the_rest():
    p = make_policy("static", targets={"a": 300 * MIB})
    gs = [view([], name=n) for n in "abc"]
    d = p.decide(HostView(1 * GIB, None, 0), gs)
    assert d["a"].target == 300 * MIB
    assert d["b"].target == d["c"].target == (GIB - 300 * MIB) // 2


def test_reporting_sets_no_target():
    d = make_policy("reporting").decide(HOST_OK, [view(window_of([100 * MIB]))])
    assert d["g"].target is None and "free page reporting" in d["g"].reason


def test_mom_shrinks_under_host_pressure_by_at_most_5_percent():
    g = view(window_of([400 * MIB]))         # used 112 MiB: ideal 140 MiB
    host = HostView(GIB, rss=int(0.85 * GIB), committed=GIB)   # 15 % free
    d = make_policy("mom").decide(host, [g])["g"]
    assert d.target == MAX - int(0.05 * MAX), d.reason
    assert "pressure" in d.reason


def test_mom_shrinks_faster_when_critical_and_never_below_keeping_20_percent_free():
    host = HostView(GIB, rss=int(0.97 * GIB), committed=GIB)
    d = make_policy("mom").decide(host, [view(window_of([400 * MIB]))])["g"]
    assert d.target == MAX - int(0.10 * MAX) and "critical" in d.reason
    # Nearly at the ideal already: stops there, not a step below.
    used = 400 * MIB
    g = view(window_of([MAX - used]), target=int(used / 0.8) + 4 * MIB)
    d = make_policy("mom").decide(host, [g])["g"]
    assert d.target == int(used / 0.8)


def test_mom_holds_a_guest_with_little_free_and_grows_without_pressure():
    host = HostView(GIB, rss=int(0.9 * GIB), committed=GIB)
    g = view(window_of([20 * MIB]), target=400 * MIB, max_bytes=MAX)
    d = make_policy("mom").decide(host, [g])["g"]
    assert d.target == 400 * MIB and "hold" in d.reason
    d = make_policy("mom").decide(HOST_OK, [g])["g"]
    assert d.target == 400 * MIB + int(0.05 * MAX) and "grow" in d.reason


def test_window_grows_ahead_of_a_rising_fault_rate():
    # 0, 1, 3, 6 faults/s: below the limit of 10 now, but rising about 2/s².
    g = view(window_of([10 * MIB] * 5, majflts=[0, 0, 1, 4, 10], actual=300 * MIB), target=300 * MIB)
    d = make_policy("window").decide(HOST_OK, [g])["g"]
    assert d.target > 300 * MIB and "ahead of it" in d.reason, d.reason
    assert d.need == d.target


def test_window_does_not_grow_for_a_steady_low_fault_rate_and_holds_after_faults():
    g = view(window_of([10 * MIB] * 5, majflts=[0, 3, 6, 9, 12], actual=300 * MIB), target=300 * MIB)
    d = make_policy("window").decide(HOST_OK, [g])["g"]
    assert d.target == 300 * MIB and "faulted in the window" in d.reason, d.reason


def test_window_grows_on_swap_in_and_never_beyond_max():
    g = view(window_of([0] * 3, swap_ins=[0, 100 * MIB, 200 * MIB]), target=MAX - MIB)
    d = make_policy("window").decide(HOST_OK, [g])["g"]
    assert d.target == MAX


def test_window_grows_a_guest_that_swaps_out_with_little_free_before_it_faults():
    out = [0, 8 * MIB, 16 * MIB, 24 * MIB]
    g = view(window_of([2 * MIB] * 4, swap_outs=out, actual=100 * MIB), target=100 * MIB)
    d = make_policy("window").decide(HOST_OK, [g])["g"]
    assert d.target > 100 * MIB and "ahead of the faults" in d.reason, d.reason
    # The same swap-out with plenty free (the guest cleaning up) is not pressure.
    g = view(window_of([80 * MIB] * 4, swap_outs=out, actual=100 * MIB), target=100 * MIB)
    assert make_policy("window").decide(HOST_OK, [g])["g"].target <= 100 * MIB


def test_window_takes_slack_but_not_free_memory_that_is_falling_fast():
    idle = view(window_of([400 * MIB] * 4))
    d = make_policy("window").decide(HOST_OK, [idle])["g"]
    assert d.target == MAX - int(0.05 * MAX) and "shrink" in d.reason
    # Free falls 50 MiB/s: in 5 s it will be 150 MiB lower; the slack is the projection's.
    falling = view(window_of([250 * MIB, 200 * MIB, 150 * MIB, 100 * MIB]))
    d = make_policy("window").decide(HOST_OK, [falling])["g"]
    assert d.target == MAX and "no slack" in d.reason, d.reason


def test_window_does_not_shrink_again_while_the_balloon_lags_behind():
    # It asked for 400 MiB; the guest is still at 512 with 100 MiB free.
    g = view(window_of([100 * MIB] * 3), target=400 * MIB)
    d = make_policy("window").decide(HOST_OK, [g])["g"]
    assert d.target == 400 * MIB and "still above the target" in d.reason, d.reason


def test_window_holds_with_no_sample_or_no_free_figure():
    d = make_policy("window").decide(HOST_OK, [view([], target=200 * MIB)])["g"]
    assert d.target == 200 * MIB and "no sample" in d.reason
    d = make_policy("window").decide(HOST_OK, [view([Sample(t=0, actual=MAX)])])["g"]
    assert d.target == MAX and "no free figure" in d.reason


def test_ws_targets_the_working_set_plus_margin():
    # 512 MiB guest, 312 MiB takeable: it needs 200, the target is 220.
    g = view(window_of([300 * MIB] * 3, ws_avail=312 * MIB), target=MAX)
    p = make_policy("ws", shrink_step=1.0)
    d = p.decide(HOST_OK, [g])["g"]
    assert d.target == 220 * MIB, d.reason
    # At most shrink_step of the max per step by default.
    d = make_policy("ws").decide(HOST_OK, [g])["g"]
    assert d.target == MAX - int(0.1 * MAX)


def test_ws_falls_back_to_window_without_a_figure_and_lets_faults_win():
    d = make_policy("ws").decide(HOST_OK, [view(window_of([400 * MIB] * 3))])["g"]
    assert "no working-set figure; window:" in d.reason and d.target < MAX
    g = view(window_of([0] * 3, majflts=[0, 100, 300], ws_avail=400 * MIB, actual=256 * MIB),
             target=256 * MIB)
    d = make_policy("ws").decide(HOST_OK, [g])["g"]
    assert d.target > 256 * MIB and "window grows" in d.reason, d.reason


# ------------------------------------------------------------- the manager
class FakeBackend(Backend):
    """A guest that answers from a script; gone=True makes it vanish."""

    def __init__(self, name, max_bytes=MAX, free=300 * MIB, majflt_per_step=0, raw=None,
                 qemu_own=0, measured=None):
        """qemu_own: QEMU's own memory, added to rss; measured: what
        overhead() answers (None: it cannot tell)."""
        self.name, self._max = name, max_bytes
        self.qemu_own, self.measured = qemu_own, measured
        self.free, self.majflt_per_step, self.raw = free, majflt_per_step, raw
        self.majflt, self._actual, self.targets, self.gone, self.n = 0, max_bytes, [], False, 0

    def _check(self):
        if self.gone:
            raise GuestGone("QMP connection closed by QEMU")

    def max_bytes(self):
        return self._max

    def stats(self):
        self._check()
        self.n += 1
        self.majflt += self.majflt_per_step
        if self.raw is not None:
            return self.raw() if callable(self.raw) else self.raw
        return stats(free=min(self.free, self._actual), majflt=self.majflt, stamp=self.n)

    def actual(self):
        self._check()
        return self._actual

    def rss(self):
        self._check()
        return self._actual + self.qemu_own

    def overhead(self):
        self._check()
        return self.measured

    def set_target(self, nbytes):
        self._check()
        self.targets.append(nbytes)
        self._actual = nbytes  # an obliging guest


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def manager(policy, budget, *backends, **kw):
    m = Manager(make_policy(policy) if isinstance(policy, str) else policy, budget,
                clock=Clock(), **kw)
    for b in backends:
        m.add(b)
    return m


@pytest.mark.parametrize("name", ["static", "mom", "window", "ws"])
def test_the_sum_of_targets_never_exceeds_the_budget(name):
    rnd = random.Random(16)
    print("seed 16")
    bs = [FakeBackend(f"g{i}", free=rnd.randrange(0, MAX)) for i in range(3)]
    m = manager(name, GIB, *bs)
    for _ in range(30):
        for b in bs:
            b.free = rnd.randrange(0, MAX)
            b.majflt_per_step = rnd.choice([0, 0, 5, 50, 500])
        rec = m.step()
        assert rec["target_sum"] <= GIB, rec
        assert all(t % 4096 == 0 for t in rec["targets"].values()), rec["targets"]
        for n, t in rec["targets"].items():
            assert 64 * MIB <= t <= MAX, (n, t)


def test_window_moves_memory_from_the_idle_guest_to_the_faulting_one():
    busy = FakeBackend("busy", free=100 * MIB)
    idle = FakeBackend("idle", free=450 * MIB)
    m = manager("window", 800 * MIB, busy, idle)
    m.step()
    first = dict(m.history[-1]["targets"])
    busy.majflt_per_step = 200
    for _ in range(8):
        m.step()
        assert m.history[-1]["target_sum"] <= 800 * MIB
    last = m.history[-1]["targets"]
    assert last["busy"] > first["busy"] and last["idle"] < first["idle"], (first, last)


@pytest.mark.parametrize("bad", [-1 << 40, 1 << 62, "NaN", float("nan"), None, {"x": 1}])
def test_nonsense_statistics_cannot_make_an_absurd_target(bad, caplog):
    raw = stats(free=bad, avail=bad, majflt=bad, swap_in=bad, caches=bad)
    b = FakeBackend("liar", raw=raw)
    m = manager("ws", GIB, b)
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        for _ in range(4):
            m.step()
    assert all(64 * MIB <= t <= MAX for t in b.targets), b.targets
    if bad is not None:
        assert "guest liar: nonsense statistic ignored" in caplog.text
    assert "guest liar: target" in caplog.text  # every decision logged, with its reason


def test_counters_that_jump_wildly_give_at_most_the_max(caplog):
    n = [0]

    def raw():
        n[0] += 1
        return stats(free=0, majflt=(1 << 60) if n[0] % 2 else 0, swap_in=(1 << 60) * (n[0] % 2), stamp=n[0])
    b = FakeBackend("wild", raw=raw)
    m = manager("window", 4 * GIB, b)
    for _ in range(5):
        m.step()
    assert b.targets and max(b.targets) <= MAX


class BadPolicy:
    name = "bad"

    def __init__(self, value):
        self.value = value

    def decide(self, host, guests):
        return {g.name: Decision(self.value, "bad on purpose") for g in guests}


@pytest.mark.parametrize("value,expect,logged", [
    (-5, 64 * MIB, "clamped up to the floor"), (1 << 50, MAX, "clamped down to its max"),
    (float("nan"), MAX, "not a number"), ("big", MAX, "not a number"),
])
def test_a_policy_target_outside_the_bounds_is_clamped_and_logged(value, expect, logged, caplog):
    b = FakeBackend("g")
    m = manager(BadPolicy(value), 4 * GIB, b)
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
    assert m.guests["g"].target == expect
    assert logged in caplog.text and "guest g" in caplog.text and str(value)[:3] in caplog.text


def test_a_policy_that_raises_keeps_targets_and_the_daemon_goes_on(caplog):
    class Broken:
        name = "broken"

        def decide(self, host, guests):
            raise ZeroDivisionError("oops")
    m = manager(Broken(), GIB, FakeBackend("g"))
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
        m.step()
    assert "policy broken failed" in caplog.text and len(m.history) == 2


def test_a_guest_that_disappears_is_dropped_and_the_others_go_on(caplog):
    a, b = FakeBackend("a", free=400 * MIB), FakeBackend("b", free=400 * MIB)
    m = manager("window", GIB, a, b)
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
        a.gone = True
        m.step()
        m.step()
    assert list(m.guests) == ["b"]
    assert "guest a dropped: QMP connection closed by QEMU" in caplog.text
    assert len(b.targets) >= 2


def test_a_guest_gone_while_its_target_is_set_is_dropped():
    a = FakeBackend("a")
    m = manager("static", 256 * MIB, a, FakeBackend("b"))
    a.set_target = lambda n: (_ for _ in ()).throw(GuestGone("socket closed"))
    m.step()
    assert list(m.guests) == ["b"]


def test_floors_above_the_budget_are_logged(caplog):
    m = manager("static", 100 * MIB, FakeBackend("a"), FakeBackend("b"))
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
    assert "over budget by" in caplog.text and "floors" in caplog.text


def test_reporting_logs_when_the_maxima_exceed_the_budget(caplog):
    m = manager("reporting", 600 * MIB, FakeBackend("a"), FakeBackend("b"))
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
    assert "over budget" in caplog.text
    assert all(not g.backend.targets for g in m.guests.values())


def test_the_budget_cut_spares_a_guest_below_its_need():
    # busy needs all it has; idle needs 60 MiB + 10 %: the cut comes from idle.
    busy, idle = FakeBackend("busy", free=0), FakeBackend("idle", free=450 * MIB)
    m = manager("window", 800 * MIB, busy, idle)
    rec = m.step()
    assert rec["targets"]["busy"] == MAX and rec["targets"]["idle"] == 800 * MIB - MAX


def test_a_stale_sample_does_not_enter_the_window():
    b = FakeBackend("g", raw=stats(free=100 * MIB, stamp=5))
    m = manager("window", GIB, b)
    for _ in range(3):
        m.step()
    assert len(m.guests["g"].window) == 1


def test_cli_guest_option():
    assert parse_guest("a=/tmp/a.sock,ws=avail,floor=128M") == \
        ("a", "/tmp/a.sock", {"ws": "avail", "floor": 128 * MIB})
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        parse_guest("nopath")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_guest("a=/x,colour=red")
    assert math.isfinite(parse_size("1.5G"))


def test_cli_overhead_option():
    assert parse_guest("a=libvirt:dom,overhead=40M") == ("a", "libvirt:dom", {"overhead": 40 * MIB})


# ------------------------------------------------------------- QEMU's own memory
def test_the_host_view_sets_qemus_own_memory_aside():
    assert HostView(GIB, rss=600 * MIB, committed=700 * MIB, overhead=100 * MIB).used == 500 * MIB
    assert HostView(GIB, rss=None, committed=700 * MIB, overhead=100 * MIB).used == 700 * MIB


def _mom_under_overhead(**add):
    """Two 256 MiB guests with 100 MiB free each, all their memory resident
    in the host (rss = size + 40 MiB of QEMU's own), under a 640 MiB budget:
    80 % of it is guest memory, 92.5 % is RSS. One step of mom; returns the
    record."""
    measured = add.pop("measured", None)
    bs = [FakeBackend(f"g{i}", max_bytes=256 * MIB, free=100 * MIB, qemu_own=40 * MIB,
                      measured=measured) for i in range(2)]
    m = Manager(make_policy("mom"), 640 * MIB, clock=Clock())
    for b in bs:
        m.add(b, **add)
    return m.step()


def test_mom_sees_no_pressure_from_qemus_own_memory_when_it_is_measured():
    rec = _mom_under_overhead(measured=40 * MIB)
    assert rec["host_overhead"] == 80 * MIB and rec["host_used"] == 512 * MIB, rec
    assert all("grow" in r for r in rec["reasons"].values()), rec["reasons"]


def test_mom_sees_no_pressure_from_qemus_own_memory_given_as_a_constant():
    rec = _mom_under_overhead(overhead=40 * MIB)     # the backend cannot measure it
    assert rec["host_used"] == 512 * MIB, rec
    assert all("grow" in r for r in rec["reasons"].values()), rec["reasons"]


def test_without_the_overhead_mom_reads_qemus_own_memory_as_pressure():
    # The same guests, nothing known of QEMU's own memory: 7.5 % host free.
    rec = _mom_under_overhead()
    assert rec["host_used"] == 592 * MIB, rec
    assert all("pressure" in r and "grow" not in r for r in rec["reasons"].values()), rec["reasons"]


def test_an_overhead_above_the_rss_is_refused_and_logged(caplog):
    caplog.set_level(logging.WARNING, logger="blimp.policy")
    rec = _mom_under_overhead(measured=10 * GIB)
    assert rec["host_overhead"] == 0, rec
    assert "overhead=" in caplog.text and "larger than QEMU's rss" in caplog.text
    with pytest.raises(ValueError):
        Manager(make_policy("mom"), GIB).add(FakeBackend("g"), overhead=-1)


def test_ram_rss_reads_the_resident_part_of_a_mapping_of_the_given_size():
    # A mapping of an odd size (no other in this process has it), 1 MiB touched.
    import mmap
    from blimp.policy.backend import ram_rss
    size = 7 * MIB + 12 * 4096
    m = mmap.mmap(-1, size)
    try:
        assert ram_rss(os.getpid(), size) == 0
        for off in range(0, MIB, 4096):
            m[off] = 1
        assert MIB <= ram_rss(os.getpid(), size) < 2 * MIB     # one THP at most beyond it
        assert ram_rss(os.getpid(), size + 4096) is None
    finally:
        m.close()
    with pytest.raises(GuestGone):
        ram_rss(2 ** 22 + 12345, size)


def test_free_memory_the_balloon_takes_is_not_a_trend_of_the_guest():
    # The balloon took 60 MiB a step; the guest's own use stayed at 40 MiB.
    w = [Sample(t=i, actual=MAX - i * 60 * MIB, free=MAX - i * 60 * MIB - 40 * MIB) for i in range(4)]
    d = make_policy("window").decide(HOST_OK, [view(w, target=MAX - 3 * 60 * MIB)])["g"]
    assert "shrink" in d.reason, d.reason


def test_a_step_record_is_one_json_line():
    import json
    from blimp.policy.manager import record_json
    m = manager("window", GIB, FakeBackend("g"))
    line = record_json(m.step(), GIB)
    r = json.loads(line)
    assert r["targets"]["g"] and r["guests"]["g"]["free"] == 300 * MIB and r["budget"] == GIB


def test_reporting_says_over_budget_once_at_warning_not_every_step(caplog):
    m = manager("reporting", 600 * MIB, FakeBackend("a"), FakeBackend("b"))
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        for _ in range(3):
            m.step()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "without a target" in warnings[0].getMessage()
    assert "floors" not in caplog.text


def test_a_qmp_error_answer_skips_the_sample_but_not_the_guest(caplog):
    from blimp.qmp import QMPError
    a = FakeBackend("a")
    m = manager("window", GIB, a)
    real = a.stats
    a.stats = lambda: (_ for _ in ()).throw(QMPError("qom-get: guest stats not available"))
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        m.step()
        a.stats = real
        m.step()
    assert list(m.guests) == ["a"] and "guest a: no sample this step" in caplog.text
    assert "Traceback" not in caplog.text


class LaggingBackend(FakeBackend):
    """A guest whose balloon inflates at most `lag` bytes a step (deflates at once)."""

    def __init__(self, name, lag, **kw):
        super().__init__(name, **kw)
        self.lag, self.want = lag, self._actual

    def stats(self):
        if self.want < self._actual:
            self._actual = max(self.want, self._actual - self.lag)
        return super().stats()

    def set_target(self, nbytes):
        self._check()
        self.targets.append(nbytes)
        self.want = nbytes
        if nbytes > self._actual:
            self._actual = nbytes


def test_a_guest_grows_only_into_memory_the_lagging_ones_gave_back(caplog):
    busy = FakeBackend("busy", free=100 * MIB)
    idle = LaggingBackend("idle", lag=16 * MIB, free=450 * MIB)
    m = manager("window", 800 * MIB, busy, idle)
    m.step()
    busy.majflt_per_step = 500
    with caplog.at_level(logging.INFO, logger="blimp.policy"):
        for _ in range(20):
            rec = m.step()
            assert rec["target_sum"] <= 800 * MIB
            # Once the first cut has been reached, the sizes stay within too.
            if idle._actual <= idle.targets[0]:
                assert busy._actual + idle._actual <= 800 * MIB, (busy._actual, idle._actual)
    assert "their balloons lag" in caplog.text
    assert busy._actual == MAX and idle._actual <= 800 * MIB - MAX


class libvirtError(Exception):
    """Named as libvirt's, which the backend recognizes by name."""


class FakeDomain:
    def __init__(self, stats):
        self.m, self.set, self.gone = stats, [], False

    def _check(self):
        if self.gone:
            raise libvirtError("Domain not found")

    def setMemoryStatsPeriod(self, period, flags):
        self._check()

    def maxMemory(self):
        self._check()
        return 512 * 1024

    def memoryStats(self):
        self._check()
        return dict(self.m)

    def setMemoryFlags(self, kib, flags):
        self._check()
        self.set.append((kib, flags))
        self.m["actual"] = kib


def test_the_libvirt_backend_maps_libvirt_names_and_units():
    from blimp.policy.libvirt_backend import LibvirtBackend
    dom = FakeDomain({"actual": 512 * 1024, "rss": 300 * 1024, "unused": 400 * 1024,
                      "usable": 380 * 1024, "available": 500 * 1024, "major_fault": 7,
                      "swap_in": 8, "last_update": 12})
    b = LibvirtBackend("lv", domain=dom, ws="avail")
    m = manager("ws", 400 * MIB, b)
    rec = m.step()
    s = rec["samples"]["lv"]
    assert (s.free, s.avail, s.total, s.majflt, s.swap_in) == (400 * MIB, 380 * MIB, 500 * MIB, 7, 8192)
    assert s.actual == MAX and s.rss == 300 * MIB and s.ws_avail == 380 * MIB and s.problems == []
    assert dom.set and dom.set[-1][1] == 1 and dom.set[-1][0] * 1024 <= 400 * MIB
    dom.gone = True
    m.step()
    assert not m.guests


def test_the_libvirt_backend_passes_nonsense_on_to_be_refused():
    from blimp.policy.libvirt_backend import LibvirtBackend
    dom = FakeDomain({"actual": 512 * 1024, "unused": "lots", "usable": -3})
    s = manager("window", GIB, LibvirtBackend("lv", domain=dom)).step()["samples"]["lv"]
    assert s.free is None and s.avail is None and len(s.problems) == 2


def test_the_daemon_exits_1_when_no_guest_can_be_reached(caplog):
    from blimp.policy.__main__ import main
    assert main(["--budget", "1G", "--guest", "a=libvirt:no-such-domain",
                 "--libvirt-uri", "test:///nonexistent", "--steps", "1"]) == 1
