"""wserror: how far blimp's working-set estimate is from the truth, and how
late it follows a change (issue 15).

The truth is known because the bench sets it: a workload
`run w size=SIZE pattern=hotcold hot=H hotpct=100 write=30 seed=1` writes
every page once (its fill) and then touches only its hot set, so its
working set is H (H / 4096 pages). The estimate is the `ws` field of the
workload's once-a-second `workload` event (the aging hand's pages used in
the last tau, kernel/vm_age.c); tau is vm.ws_ms=3000, as in the tests, and
a round is vm.age_ms (the `ws` event's round_ms, 1000 by default).

For each hot size, in a fresh guest, three situations like
tools/scenarios/working-set.scn:
  - steady: from the fill's end + tau + 2 rounds, |ws - H| / H over the
    next `steady_s` seconds of events, mean and max;
  - move (`set w hotat=H`: the hot set becomes [H, 2H), disjoint): the
    old set stays in the window for tau, so the estimate overshoots to ~2H
    and comes back once the old pages age out;
  - growth (`set w hot=2H`, at the same start; it wraps past the end):
    truth 2H, the new pages are counted once the hand has seen them.
For a change: lag = from the `workload_set` event to the first `workload`
event from which every later one in the window (tau + round + WINDOW_MARGIN_S)
is within 10 % of the new truth (None: not settled in the window); peak =
the largest |ws - truth| / truth in the window. The bound to compare with:
error 0, lag tau + round for a move (the old pages leave the window at the
first visit tau after their last use), a round for a growth (the new ones
join at their next visit). blimp may take up to two rounds more: a use is
dated by the visit that saw it, a page counts while that date is <= tau old
(kernel/vm_age.c), and the counts are published at the round's end; the
events come once a second.

Linux beside it, steady state only (the classic estimate, the one
bench/wsscan.py times): pressmem holding the same size with the same hot set,
`pressmem SIZE H 100 30 SECONDS 1` (every access after its fill to pages
0..H-1, 30 % writes), in a guest with transparent_hugepage=never. Init's
`wss` reads smaps' Referenced (pages whose Accessed bit was set since the
last clear) and then clears them all (clear_refs); once after the fill to
start clean, then every tau (host sleep; the window is the guest's own
clock, the `wss` events' t_ms apart), `windows` times: |Referenced - H| / H.
Referenced counts every page of the process, so pressmem's own text, stack
and version array are in it too (tens of pages).

    run_wserror(guest, ram_mib, size_mib, hots_mib, steady_s) -> dict
    run_wserror_linux(guest, ram_mib, size_mib, hots_mib, windows) -> dict
"""
import time
from statistics import mean

from blimp.units import MIB, PAGE
from squeeze import _wait_workload
from wsscan import LINUX_NO_THP, PRESS_SECONDS

# (guest MiB, workload MiB, hot sets in MiB, steady seconds)
FULL = (1024, 512, (64, 256), 10)
QUICK = (512, 128, (32,), 5)
LINUX_WINDOWS = {"full": 5, "quick": 2}   # Linux: steady windows of tau each
TAU_MS = 3000
WORKLOAD = "w"
SETTLED = 0.10               # "within 10 % of the truth"
WINDOW_MARGIN_S = 5          # a change's window: tau + round + this


def run_wserror(guest, ram_mib, size_mib, hots_mib, steady_s):
    """blimp's estimate against the hot set it was given: {"tau_ms",
    "round_ms", "cases": [{"hot_mib", "steady", "move", "growth"}], ...},
    a fresh guest per hot size."""
    cases = []
    for hot_mib in hots_mib:
        if 2 * hot_mib > size_mib:
            raise ValueError(f"hot set {hot_mib} MiB: the move needs 2 x hot <= {size_mib} MiB")
        with guest.vm(ram_mib, reporting=False, append=f"vm.ws_ms={TAU_MS}") as vm:
            cases.append(_case(vm, size_mib, hot_mib, steady_s))
    return {"ram_mib": ram_mib, "size_mib": size_mib, "steady_s": steady_s,
            "tau_ms": cases[0]["tau_ms"], "round_ms": cases[0]["round_ms"], "cases": cases}


def _events(vm, since_ms, until_ms):
    return [e for e in vm.events_named("workload")
            if e["name"] == WORKLOAD and since_ms < e["t_ms"] <= until_ms]


def _error(e, truth):
    return abs(e["ws"] - truth) / truth


def _case(vm, size_mib, hot_mib, steady_s):
    vm.wait_event("ready", timeout=600)
    hot = hot_mib * MIB // PAGE
    vm.shell(f"run {WORKLOAD} size={size_mib}M pattern=hotcold hot={hot_mib}M hotpct=100 "
             f"write=30 seed=1")
    filled = _wait_workload(vm, WORKLOAD, lambda e: e["accesses"] > 0, 600,
                            "the end of the fill (accesses > 0)")
    ws = vm.shell_event("ws")
    tau, round_ms = ws["tau_ms"], ws["round_ms"]
    if tau != TAU_MS:
        vm.fail(f"vm.ws_ms={TAU_MS} was asked, the `ws` event says tau_ms {tau}")
    start = filled["t_ms"] + tau + 2 * round_ms
    end = start + steady_s * 1000
    _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= end, steady_s + 120,
                   f"{steady_s} s of steady state")
    steady = [e for e in _events(vm, start - 1, end) if e["t_ms"] < end]
    errors = [_error(e, hot) for e in steady]
    res = {"hot_mib": hot_mib, "hot_pages": hot, "tau_ms": tau, "round_ms": round_ms,
           "steady": {"seconds": steady_s, "events": len(errors),
                      "mean_pct": 100 * mean(errors), "max_pct": 100 * max(errors),
                      "ws": [e["ws"] for e in steady]}}
    window_ms = tau + round_ms + WINDOW_MARGIN_S * 1000
    res["move"] = _change(vm, f"hotat={hot_mib}M", hot, window_ms)
    res["move"]["bound_s"] = (tau + round_ms) / 1000
    res["growth"] = _change(vm, f"hot={2 * hot_mib}M", 2 * hot, window_ms)
    res["growth"]["bound_s"] = round_ms / 1000
    vm.shell(f"stop {WORKLOAD}", timeout=120)
    return res


def _change(vm, what, truth, window_ms):
    """`set w WHAT`, then window_ms of events: the lag until the estimate is
    within SETTLED of `truth` for good, and the peak error on the way."""
    vm.shell(f"set {WORKLOAD} {what}")       # its workload_set event comes before the cmd's
    at = [e for e in vm.events_named("workload_set") if e["name"] == WORKLOAD][-1]
    if at["hot"] != truth:
        vm.fail(f"set {what}: the workload's hot set is {at['hot']} pages, the bench meant {truth}")
    _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= at["t_ms"] + window_ms,
                   window_ms // 1000 + 120, f"{window_ms} ms after `set {what}`")
    evs = _events(vm, at["t_ms"], at["t_ms"] + window_ms)
    settled = None
    for e in reversed(evs):
        if _error(e, truth) > SETTLED:
            break
        settled = e
    peak = max(evs, key=lambda e: _error(e, truth))
    return {"set": what, "truth_pages": truth, "window_s": window_ms / 1000,
            "lag_s": (settled["t_ms"] - at["t_ms"]) / 1000 if settled else None,
            "peak_pct": 100 * _error(peak, truth), "peak_ws": peak["ws"],
            "ws": [[e["t_ms"] - at["t_ms"], e["ws"]] for e in evs]}


def run_wserror_linux(guest, ram_mib, size_mib, hots_mib, windows):
    """Linux's clear_refs + smaps Referenced estimate against pressmem's hot
    set, steady state: {"tau_ms", "cases": [{"hot_mib", "steady"}]}, a fresh
    guest per hot size."""
    cases = []
    for hot_mib in hots_mib:
        with guest.vm(ram_mib, reporting=False, append=LINUX_NO_THP) as vm:
            cases.append(_linux_case(vm, size_mib, hot_mib, windows))
    return {"ram_mib": ram_mib, "size_mib": size_mib, "tau_ms": TAU_MS, "windows": windows,
            "cases": cases}


def _linux_case(vm, size_mib, hot_mib, windows):
    vm.wait_event("ready", timeout=600)
    hot = hot_mib * MIB // PAGE
    ev, _ = vm.shell(f"press {size_mib} {hot_mib} 100 30 {PRESS_SECONDS} 1")
    pid = ev["pid"]
    vm.wait_line("pressmem: touched", timeout=600)
    prev = vm.shell_event(f"wss {pid}", timeout=120)     # the fill's Referenced: cleared
    samples = []
    for _ in range(windows):
        time.sleep(TAU_MS / 1000)
        e = vm.shell_event(f"wss {pid}", timeout=120)
        samples.append({"referenced_pages": e["referenced_kib"] * 1024 // PAGE,
                        "window_ms": e["t_ms"] - prev["t_ms"], "anon_huge_kib": e["anon_huge_kib"]})
        prev = e
    errors = [abs(s["referenced_pages"] - hot) / hot for s in samples]
    return {"hot_mib": hot_mib, "hot_pages": hot,
            "steady": {"windows": windows, "events": len(errors), "mean_pct": 100 * mean(errors),
                       "max_pct": 100 * max(errors), "samples": samples}}
