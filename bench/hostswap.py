#!/usr/bin/python3
"""hostswap: the same guest and workload under the same host memory budget,
enforced by host swapping, by the balloon, or by both (issue 16;
docs/hostswap.md; tools/blimp/hostswap.py does the host side).

    PYTHONPATH=tools /usr/bin/python3 bench/hostswap.py [--out DIR] [--scenario busy|idle|all]
        [--guest blimp|linux|all] [--cases file,host,...] [--report JSON] [--sweep MIB,MIB,...]
    make experiment

A run boots blimp (512 MiB, a 512 MiB swap disk it swaps to, the balloon
with reporting off and the working-set guard off, as in bench/squeeze.py)
with QEMU in a memory cgroup, sets up a scenario, lets the workload run
`warm_s` s, and then takes `reclaim_mib` of host memory away from it at t0:

  host          guest RAM is a shared file on a loop device over /work's disk;
                the cgroup's limit drops to usage(t0) - reclaim: the host
                kernel writes guest pages to the file and faults them back.
  balloon       QEMU's usual anonymous RAM (the host has no swap: nothing of
                it can reach a disk); QMP `balloon` asks for resident(t0) -
                reclaim, and the guest reclaims and swaps by itself.
  both          file-backed RAM, the balloon's target and the limit at once:
                the host swaps what the guest is about to give or swap
                itself (double paging).
  balloon-file  file-backed RAM, the balloon alone: what the balloon gets
                back from a file (docs/hostswap.md: not the dirty pages).

and then runs `after_s` s more under that budget. One more case is the
control:

  file          file-backed RAM and no budget at all: what the flusher writes
                anyway (a shared file's dirty pages are written back every
                5 s once its inode has been dirty 30 s), to subtract.

The Linux reference guest (bench/guests.py, when build/bench/linux is
built) runs both scenarios too, as pressmem (bench/linux/pressmem.c: the
same accesses), its init swapping on the same disk, touching and freeing
with `touch N` and reading the clean cache with `cacheread N`; its figures
come from pressmem's per-second lines and /proc/vmstat (pgmajfault,
pswpout, pswpin).

Scenarios:
  busy  `run p size=384M pattern=hotcold hot=64M hotpct=90 write=30`, the
        squeeze's workload; 160 MiB taken.
  idle  the seeds' case: the guest touched 384 MiB and freed it, then read
        128 MiB into its page cache (clean: a read-only disk, `cache read`)
        and runs a small workload (32 MiB, 8 MiB hot), both in frames it had
        freed: about 220 MiB free, 128 MiB clean cache; 288 MiB taken.
        The balloon takes the free memory and drops the cache with no I/O;
        the host cannot tell them from the workload's pages.

Figures per case (from t0 to the end unless said): the workload's accesses/s
before t0, from t0 to the budget, and after; time to the budget (usage <=
budget: the limit's write returning, or polled); memory reclaimed (usage at
t0 minus at the budget); bytes the host wrote and read for guest memory (the
loop device's sectors; the flusher also writes before t0, shown as "before");
QEMU's major faults; the guest's swap bytes out and in (its `swap` event) and
its major faults (`vm`); I/O amplification: host bytes written per byte
reclaimed, and host plus guest bytes written per byte reclaimed.
Results go to OUT/hostswap.json and OUT/hostswap.md (the table).
"""
import argparse
import json
import math
import os
import sys
import time

from blimp import hostswap
from blimp.units import MIB, PAGE
from blimp.vm import BUILD
from guests import LINUX_GUEST_JSON, Blimp, Linux
from report import spread
from squeeze import (PressFollower, _host_time, _wait_workload, _workload_events, phase_rates,
                     swap_args, vmstat)

CASES = ("file", "host", "balloon", "both", "balloon-file")
FILE_BACKED = {"file": True, "host": True, "balloon": False, "both": True, "balloon-file": True}
BASE_APPEND = "vm.swap=0 balloon.ws_guard=off"

SCENARIOS = {
    "busy": {"ram_mib": 512, "swap_mib": 512, "reclaim_mib": 160, "warm_s": 5, "after_s": 10,
             "run": "run p size=384M pattern=hotcold hot=64M hotpct=90 write=30 seed=1",
             "size_mib": 384, "hot_mib": 64, "hot_pct": 90, "write_pct": 30,   # pressmem's
             "freed_mib": 0, "cache_mib": 0},
    "idle": {"ram_mib": 512, "swap_mib": 512, "reclaim_mib": 288, "warm_s": 5, "after_s": 10,
             "run": "run p size=32M pattern=hotcold hot=8M hotpct=90 write=30 seed=1",
             "size_mib": 32, "hot_mib": 8, "hot_pct": 90, "write_pct": 30,     # pressmem's
             "freed_mib": 384, "cache_mib": 128},
}
WORKLOAD = "p"
SLACK = 8 * MIB


def _sparse(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MIB)


def _cache_image(path, mib):
    """A read-only disk for the page cache: each 4 KiB page starts with its number."""
    with open(path, "wb") as f:
        filler = bytes(range(256)) * (PAGE // 256)
        for p in range(mib * MIB // PAGE):
            f.write(p.to_bytes(8, "little") + filler[8:])


def _wait_balloon(vm, target, t0, timeout):
    """Seconds from t0 until query-balloon shows the target, or None."""
    try:
        vm.wait_actual(target, timeout=timeout, why="the balloon's target", period=0.05)
    except Exception:
        return None
    return time.monotonic() - t0


class BlimpSide:
    """The scenario in blimp's shell; figures from its events."""
    name = "blimp"

    def guest(self):
        return Blimp()

    def append(self, p):
        return BASE_APPEND + (" vm.cache=1" if p["cache_mib"] else "")

    def start(self, vm, p):
        vm.wait_event("ready", timeout=120)
        if p["freed_mib"]:
            vm.shell(f"alloc {p['freed_mib']}M", timeout=300)
            vm.shell("free all", timeout=300)
        if p["cache_mib"]:
            vm.shell(f"cache read 0 {p['cache_mib'] * MIB // PAGE}", timeout=300)
        vm.shell(p["run"])
        filled = _wait_workload(vm, WORKLOAD, lambda e: e["accesses"] > 0, 300, "the end of the fill")
        self.start_ms = filled["t_ms"]
        _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= self.start_ms + p["warm_s"] * 1000 - 100,
                       p["warm_s"] + 120, f"{p['warm_s']} s of accesses")

    def figures(self, vm):
        v, s = vm.shell_event("vm"), vm.shell_event("swap")
        return {"majflt": v["majflt"], "swap_out": s["pages_out"] * PAGE, "swap_in": s["pages_in"] * PAGE}

    def wait_until(self, vm, t, timeout):
        _wait_workload(vm, WORKLOAD, lambda e: _host_time(vm, e) >= t, timeout, "the end of the run")

    def finish(self, vm):
        vm.shell(f"stop {WORKLOAD}", timeout=120)
        return len([e for e in vm.events if e["ev"] in ("workload_corrupt", "workload_error", "vm_lost")])

    def ticks(self, vm):
        return [(_host_time(vm, e), (e["t_ms"] - self.start_ms) / 1000, e["accesses"])
                for e in _workload_events(vm, WORKLOAD, self.start_ms)]


class LinuxSide:
    """A scenario in the Linux reference guest: pressmem, the same accesses
    (bench/linux/pressmem.c), its init swapping on the same disk. The idle
    scenario's touch-and-free is init's `touch N` (touchmem: map, write
    every page, unmap), its clean cache `cacheread N` (dd from the
    read-only disk into the block device's page cache)."""
    name = "linux"

    def guest(self):
        return Linux()

    def append(self, p):
        return ""

    def start(self, vm, p):
        ready = vm.wait_event("ready", timeout=600)
        if not ready.get("swap_bytes"):
            vm.fail("the Linux guest has no swap: the swap disk was not used")
        if p["freed_mib"]:
            vm.shell(f"touch {p['freed_mib']}", timeout=600)
        if p["cache_mib"]:
            vm.shell(f"cacheread {p['cache_mib']}", timeout=600)
            cached = _meminfo_kib(vm, "Buffers") + _meminfo_kib(vm, "Cached")
            if cached * 1024 < p["cache_mib"] * MIB * 0.9:
                vm.fail(f"cacheread {p['cache_mib']}: only {cached} KiB in the page cache")
        self.follow = PressFollower(vm)
        seconds = p["warm_s"] + p["after_s"] + 40     # room for the time to the budget
        vm.shell(f"press {p['size_mib']} {p['hot_mib']} {p['hot_pct']} {p['write_pct']} {seconds} 1")
        self.follow.wait(lambda: len(self.follow.ticks) >= p["warm_s"], 300,
                         f"{p['warm_s']} s of pressmem accesses")

    def figures(self, vm):
        v = vmstat(vm)
        return {"majflt": v["pgmajfault"], "swap_out": v["pswpout"] * PAGE, "swap_in": v["pswpin"] * PAGE}

    def wait_until(self, vm, t, timeout):
        self.follow.wait(lambda: self.follow.ticks and self.follow.ticks[-1][0] >= t, timeout,
                         "the end of the run")

    def finish(self, vm):
        vm.shell("presswait", timeout=300, expect_rc=None)
        try:
            self.follow.wait(lambda: self.follow.result is not None, 10, "pressmem's JSON line")
            return self.follow.result["errors"]
        except Exception:
            return -1     # pressmem died (the OOM killer, say): no count
        finally:
            self.follow.close()

    def ticks(self, vm):
        return list(self.follow.ticks)


def _meminfo_kib(vm, key):
    """One /proc/meminfo figure of the Linux guest, in KiB."""
    _, out = vm.shell("meminfo")
    for line in out:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    vm.fail(f"no {key} in the guest's /proc/meminfo")


SIDES = {"blimp": BlimpSide, "linux": LinuxSide}


def run_case(case, scenario, out_dir, guest="blimp", **overrides):
    p = dict(SCENARIOS[scenario], **overrides)
    side = SIDES[guest]()
    file_backed = FILE_BACKED[case]
    tag = f"{scenario}-{case}-{os.getpid()}"
    swap_img = os.path.join(out_dir, f"swap-{tag}.img")
    cache_img = os.path.join(out_dir, f"cache-{tag}.img")
    _sparse(swap_img, p["swap_mib"])
    extra = swap_args(swap_img, cache="none")   # O_DIRECT: the guest's swap is not host page cache
    if p["cache_mib"]:
        _cache_image(cache_img, p["cache_mib"])
        extra += ["-drive", f"if=none,id=c0,file={cache_img},format=raw,readonly=on,cache=none",
                  "-device", "virtio-blk-pci,drive=c0"]
    mem = p["ram_mib"] * MIB
    try:
        with hostswap.HostSwap(directory=out_dir) as hs:
            vm = side.guest().vm(p["ram_mib"], reporting=False, extra_args=extra, append=side.append(p))
            hs.prepare(vm, file_backed=file_backed)
            with vm:
                return _run(vm, hs, side, case, p, mem)
    finally:
        for path in (swap_img, cache_img):
            if os.path.exists(path):
                os.unlink(path)


def _run(vm, hs, side, case, p, mem):
    pid = vm.proc.pid
    booted = hs.counters(pid)
    side.start(vm, p)

    g0, c0 = side.figures(vm), hs.counters(pid)
    resident0 = hs.guest_resident(pid, mem)
    reclaim = p["reclaim_mib"] * MIB
    budget = c0["memcg_usage"] - reclaim
    if resident0 - reclaim < 64 * MIB:
        vm.fail(f"{p['reclaim_mib']} MiB cannot be taken from {resident0 / MIB:.0f} MiB resident")
    # The balloon aims SLACK under the budget: QEMU's own memory moves a
    # little, and anonymous memory has nowhere to go if the budget is missed.
    target = (resident0 - reclaim - SLACK) // MIB * MIB
    t0 = time.monotonic()
    budget_s = balloon_s = None
    if case == "file":
        pass
    elif case != "host":
        vm.qmp.execute("balloon", value=target)
    if case in ("host", "both"):
        budget_s = hs.set_limit(budget, timeout=120)
    elif case != "file":
        # The balloon first; then the same limit, which the host now reaches
        # without writing a guest page if the balloon gave the memory back
        # (QEMU's 4 KiB discards leave partly unmapped huge pages charged
        # until reclaim splits them: usage alone does not fall at once).
        balloon_s = _wait_balloon(vm, target, t0, 120)
        if balloon_s is not None:
            try:
                budget_s = balloon_s + hs.set_limit(budget, timeout=60)
            except RuntimeError as e:
                print(f"hostswap: {case}: the limit was not reached: {e}", file=sys.stderr)
    t1 = time.monotonic()
    c1 = hs.counters(pid)
    if case == "balloon":
        # Here the limit only measured: the balloon keeps the budget. Left in
        # place, it is a wall anonymous memory cannot page behind: the Linux
        # guest's balloon migrates pages (the new frame is touched, the old
        # one given back after) and the cgroup's OOM killer ended QEMU.
        # usage.end says whether the budget held without it.
        hs.set_limit(None)
    if case == "both":
        balloon_s = _wait_balloon(vm, target, t0, 120)
    side.wait_until(vm, t1 + p["after_s"], p["after_s"] + 300)
    g2, c2 = side.figures(vm), hs.counters(pid)
    errors = side.finish(vm)
    host = hostswap.diff(c0, c2)
    reclaimed = c0["memcg_usage"] - c1["memcg_usage"]
    host_w, guest_w = host["disk_write_bytes"], g2["swap_out"] - g0["swap_out"]
    return {
        "case": case, "guest": side.name, "params": p, "file_backed": FILE_BACKED[case],
        "budget": budget, "target": target if case not in ("host", "file") else None,
        "usage": {"t0": c0["memcg_usage"], "budget": c1["memcg_usage"], "end": c2["memcg_usage"]},
        "guest_resident_t0": resident0,
        "budget_s": budget_s, "balloon_s": balloon_s,
        "reclaimed": reclaimed,
        "accesses_per_s": phase_rates(side.ticks(vm), t0, t1),
        "host_write": host_w, "host_read": host["disk_read_bytes"],
        "host_write_before": c0["disk_write_bytes"] - booted["disk_write_bytes"],
        "host_majflt": host.get("proc_majflt"), "memcg_pgmajfault": host.get("memcg_pgmajfault"),
        "guest_swap_out": guest_w, "guest_swap_in": g2["swap_in"] - g0["swap_in"],
        "guest_majflt": g2["majflt"] - g0["majflt"],
        "amp_host": host_w / reclaimed if reclaimed >= 16 * MIB else None,
        "amp_total": (host_w + guest_w) / reclaimed if reclaimed >= 16 * MIB else None,
        "errors": errors,
        "counters": {"t0": c0, "budget": c1, "end": c2},
    }


# ------------------------------------------------------------------ the table
def _mib(b):
    return "—" if b is None else f"{b / MIB:.0f}"


def _k(x):
    return "—" if x is None else f"{x / 1000:.0f}k"


def _s(x):
    return "never" if x is None else f"{x:.2f}"


def _ratio(a, b):
    return a / b if a is not None and b else None


def _x(x):
    return "—" if x is None else f"{x:.2f}"


def _never(x):
    return "never" if x == math.inf else f"{x:.2f}"


def _budget_s(r):
    """Time to the budget: None (no budget) for the control, inf when never reached."""
    if r["case"] == "file":
        return None
    return math.inf if r["budget_s"] is None else r["budget_s"]


def _balloon_s(r):
    if r["case"] in ("host", "file"):
        return None
    return math.inf if r["balloon_s"] is None else r["balloon_s"]


def _int(x):
    return f"{x:.0f}"


# One row of the table: its name and the figures it shows (getter, format),
# joined by " / "; each figure over the runs is the median (min-max).
ROWS = [
    ("accesses/s before", [(lambda r: r["accesses_per_s"]["before"], _k)]),
    ("accesses/s to the budget", [(lambda r: r["accesses_per_s"]["during"], _k)]),
    ("accesses/s after", [(lambda r: r["accesses_per_s"]["after"], _k)]),
    ("accesses after / before",
     [(lambda r: _ratio(r["accesses_per_s"]["after"], r["accesses_per_s"]["before"]), _x)]),
    ("time to the budget (s)", [(_budget_s, _never)]),
    ("balloon at its target (s)", [(_balloon_s, _never)]),
    ("memory reclaimed (MiB)", [(lambda r: r["reclaimed"], _mib)]),
    ("usage at the end / budget (MiB)", [(lambda r: r["usage"]["end"], _mib), (lambda r: r["budget"], _mib)]),
    ("host wrote for guest RAM (MiB)", [(lambda r: r["host_write"], _mib)]),
    ("  ...and before t0, flusher (MiB)", [(lambda r: r["host_write_before"], _mib)]),
    ("host read for guest RAM (MiB)", [(lambda r: r["host_read"], _mib)]),
    ("QEMU major faults", [(lambda r: r["host_majflt"], _int)]),
    ("guest swap written (MiB)", [(lambda r: r["guest_swap_out"], _mib)]),
    ("guest swap read (MiB)", [(lambda r: r["guest_swap_in"], _mib)]),
    ("guest major faults", [(lambda r: r["guest_majflt"], _int)]),
    ("host bytes written / byte reclaimed", [(lambda r: r["amp_host"], _x)]),
    ("all bytes written / byte reclaimed", [(lambda r: r["amp_total"], _x)]),
    ("errors (pages lost or wrong)", [(lambda r: r["errors"], _int)]),
]


def _runs(entry):
    """A case's runs: a list (a hostswap.json from before --runs held one dict)."""
    return entry if isinstance(entry, list) else [entry]


def table(results):
    """One markdown table per scenario and guest, the cases side by side;
    each cell the median (min-max) of the runs that did not fail."""
    out = []
    for key, cases_runs in results.items():
        scenario, _, guest = key.partition("-")
        p = SCENARIOS[scenario]
        run = p["run"] if guest != "linux" else (
            f"Linux guest, pressmem {p['size_mib']} {p['hot_mib']} {p['hot_pct']} {p['write_pct']} (the same accesses)")
        out.append(f"**{key}**: {run}"
                   + ((f", after touch {p['freed_mib']} (touchmem: touched and freed)" if guest == "linux"
                       else f", after alloc {p['freed_mib']}M + free all") if p["freed_mib"] else "")
                   + (f" and {p['cache_mib']} MiB of clean page cache" if p["cache_mib"] else "")
                   + f"; {p['reclaim_mib']} MiB taken from a {p['ram_mib']} MiB guest\n")
        cases = [c for c in CASES if c in cases_runs]
        good = {c: [r for r in _runs(cases_runs[c]) if "failed" not in r] for c in cases}
        bad = {c: len(_runs(cases_runs[c])) - len(good[c]) for c in cases}
        out.append("| | " + " | ".join(cases) + " |")
        out.append("|---|" + "---|" * len(cases))
        out.append("| runs (failed) | " + " | ".join(f"{len(good[c])} ({bad[c]})" for c in cases) + " |")
        for name, figs in ROWS:
            out.append(f"| {name} | " + " | ".join(
                " / ".join(spread([get(r) for r in good[c]], fmt) for get, fmt in figs) if good[c] else "failed"
                for c in cases) + " |")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ the sweep
def sweep(out_dir, amounts, guest="blimp", cases=("host", "balloon"), scenario="busy"):
    """Waldspurger's figure (OSDI 2002, ballooning against paging): the
    workload's throughput against memory taken, one line per way of taking
    it. Throughput is accesses/s after the budget over accesses/s before it
    in the same run: TCG's speed moves with the host's other load, the ratio
    much less."""
    points = {c: [] for c in cases}
    for mib in amounts:
        for case in cases:
            try:
                r = run_case(case, scenario, out_dir, guest=guest, reclaim_mib=mib)
            except Exception as e:
                print(f"hostswap: sweep {guest} {case} {mib} MiB failed: {e}", file=sys.stderr, flush=True)
                continue
            rel = _ratio(r["accesses_per_s"]["after"], r["accesses_per_s"]["before"])
            points[case].append({"reclaim_mib": mib, "reclaimed": r["reclaimed"], "relative": rel,
                                 "after": r["accesses_per_s"]["after"],
                                 "before": r["accesses_per_s"]["before"],
                                 "host_write": r["host_write"], "guest_swap_out": r["guest_swap_out"],
                                 "budget_s": r["budget_s"]})
            print(f"hostswap: sweep {guest} {case} {mib} MiB: throughput x{_x(rel)}, host wrote "
                  f"{_mib(r['host_write'])} MiB, guest {_mib(r['guest_swap_out'])} MiB", flush=True)
    return points


def plot(points, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    style = {"host": ("host swapping (cgroup limit, file-backed RAM)", "s-", "tab:red"),
             "balloon": ("balloon (guest reclaim and swap)", "o-", "tab:blue"),
             "both": ("both (double paging)", "^-", "tab:purple")}
    if "host" in points or "balloon" in points:
        points = {"blimp": points}          # a sweep.json from before guests were keyed
    for guest, cases in points.items():
        for case, pts in cases.items():
            label, marker, color = style.get(case, (case, "x-", None))
            if guest != "blimp":
                marker = marker.replace("-", "--")
            xs = [0] + [p["reclaim_mib"] for p in pts]
            ys = [1.0] + [p["relative"] or 0 for p in pts]   # no progress line: 0
            ax.plot(xs, ys, marker, color=color, label=f"{guest}: {label}",
                    markerfacecolor=color if guest == "blimp" else "white")
    ax.set_xlabel("memory taken from the running guest (MiB)")
    ax.set_ylabel("accesses/s after / before")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(BUILD, "hostswap"))
    ap.add_argument("--scenario", choices=list(SCENARIOS) + ["all"], default="all")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--guest", choices=["blimp", "linux", "all"], default="all",
                    help="the Linux reference guest runs both scenarios too (when it is built)")
    ap.add_argument("--runs", type=int, default=1,
                    help="runs of each case, interleaved (one of each case, then again); "
                    "the table's cells are median (min-max)")
    ap.add_argument("--report", help="print the table of a saved hostswap.json and stop")
    ap.add_argument("--sweep", help="MiB,MiB,...: the throughput-against-memory-taken figure "
                    "for host swapping and the balloon instead of the table")
    ap.add_argument("--plot", default=os.path.join(BUILD, "hostswap", "hostswap.png"),
                    help="where --sweep draws its figure")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    saved_sweeps = args.sweep.split(",") if args.sweep else []
    if saved_sweeps and all(os.path.exists(f) for f in saved_sweeps):
        # Draw saved sweeps again, one figure: their guests side by side.
        points, title = {}, None
        for path in saved_sweeps:
            with open(path) as f:
                saved = json.load(f)
            pts = saved["points"]
            points.update({"blimp": pts} if "host" in pts or "balloon" in pts else pts)
            title = title or saved["title"]
        if len(points) > 1:
            p = SCENARIOS["busy"]
            title = (f"{' and '.join(points)}, {p['ram_mib']} MiB, {p['size_mib']} MiB workload, "
                     f"{p['hot_mib']} MiB hot\n" + title.split("\n", 1)[-1])
        plot(points, args.plot, title)
        return 0
    if args.report:
        with open(args.report) as f:
            print(table(json.load(f)["results"]))
        return 0
    reason = hostswap.unavailable_reason(args.out)
    if reason:
        print(f"hostswap: cannot run: {reason}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    if args.sweep:
        amounts = [int(x) for x in args.sweep.split(",")]
        guests = ["blimp", "linux"] if args.guest == "all" else [args.guest]
        if "linux" in guests and not os.path.exists(LINUX_GUEST_JSON):
            guests.remove("linux")
        points = {g: sweep(args.out, amounts, guest=g) for g in guests}
        p = SCENARIOS["busy"]
        title = (f"{' and '.join(guests)}, {p['ram_mib']} MiB, `{p['run'].split(' ', 2)[2]}`\n"
                 f"{time.strftime('%Y-%m-%d', time.gmtime())}, QEMU 7.2 TCG, Linux {os.uname().release} host")
        with open(os.path.join(args.out, "sweep.json"), "w") as f:
            json.dump({"points": points, "title": title}, f, indent=1)
        plot(points, args.plot, title)
        print(f"hostswap: {args.plot}")
        return 0
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    guests = ["blimp", "linux"] if args.guest == "all" else [args.guest]
    if "linux" in guests and not os.path.exists(LINUX_GUEST_JSON):
        print(f"hostswap: no Linux guest ({LINUX_GUEST_JSON}; make bench-linux builds it): blimp only",
              file=sys.stderr)
        guests.remove("linux")
    results = {}
    for run in range(args.runs):
        for guest in guests:
            for scenario in scenarios:
                key = scenario if guest == "blimp" else f"{scenario}-linux"
                for case in args.cases.split(","):
                    t = time.monotonic()
                    runs = results.setdefault(key, {}).setdefault(case, [])
                    label = f"{key}/{case}" + (f" run {run + 1}/{args.runs}" if args.runs > 1 else "")
                    try:
                        r = run_case(case, scenario, args.out, guest=guest)
                    except Exception as e:      # one failed case: said, and the others still run
                        print(f"hostswap: {label} failed: {e}", file=sys.stderr, flush=True)
                        runs.append({"case": case, "failed": str(e).splitlines()[0]})
                        continue
                    runs.append(r)
                    print(f"hostswap: {label}: budget in {_s(r['budget_s'])} s, host wrote "
                          f"{_mib(r['host_write'])} MiB, guest swapped out {_mib(r['guest_swap_out'])} MiB, "
                          f"accesses/s after/before {_x(_ratio(r['accesses_per_s']['after'], r['accesses_per_s']['before']))} "
                          f"({time.monotonic() - t:.0f} s)", flush=True)
    calib = hostswap.calibrate()
    with open(os.path.join(args.out, "hostswap.json"), "w") as f:
        json.dump({"results": results, "calibration": calib, "runs": args.runs,
                   "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, f, indent=1)
    text = table(results)
    with open(os.path.join(args.out, "hostswap.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"calibration ({calib['write_mib']} MiB written under a {calib['limit_mib']} MiB limit, then read):")
    for phase in ("write", "write_synced", "read"):
        d = calib[phase]
        print(f"  {phase:13s} loop device wrote {_mib(d['disk_write_bytes'])} read {_mib(d['disk_read_bytes'])} MiB;"
              f" /proc/PID/io write_bytes {_mib(d['proc_write_bytes'])} read_bytes {_mib(d['proc_read_bytes'])} MiB;"
              f" blkio write {_mib(d['blkio_write_bytes'])} read {_mib(d['blkio_read_bytes'])} MiB;"
              f" majflt {d['proc_majflt']} (memcg {d['memcg_pgmajfault']}); pgpgin {d['memcg_pgpgin']}"
              f" pgpgout {d['memcg_pgpgout']}; workingset_refault_file {d['memcg_workingset_refault_file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
