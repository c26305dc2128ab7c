"""policy: the multi-guest experiment of issue 16 — one host budget, three
guests whose workloads come and go out of phase, each policy of
tools/blimp/policy in turn, and host swapping alone as one more case.

Guests: two blimp (pvh) and the Linux reference guest (bench/linux), each
with 256 MiB (--mem-mib) and a 256 MiB swap disk (O_DIRECT: the guests'
swap is not host page cache), under a budget below their sum
(--budget-mib, 512). Schedule, in seconds from the start of a
policy's run (--seconds, 60; the thirds scale with it):

    blimp-a  |■■■■■■■■■■■■■■■■■■■■                    |   [0, 1/2)
    linux    |          ■■■■■■■■■■■■■■■■■■■■          |   [1/4, 3/4)
    blimp-b  |                    ■■■■■■■■■■■■■■■■■■■■|   [1/2, 1)

A workload is 200 MiB with a 128 MiB hot set getting 90 % of accesses, 30 %
writes: blimp's `run ... pattern=hotcold`, Linux's pressmem (the squeeze's
workload, the same definition). blimp's run is stopped at its phase's end,
its fill included; pressmem runs its fill and then half the run's seconds
of accesses, so the Linux phase lasts longer the slower its fill (the
schedule is the same for every policy; the run goes on until it ends). The manager steps once a second in this
process (blimp.policy.manager, the daemon's code), through the harness's own
QMP connections.

The case `hostswap` (tools/blimp/hostswap.py; root, a v1 memory cgroup and
loop devices, else skipped with the reason): no balloon target, no free
page reporting; the three QEMUs start in one memory cgroup, each guest's RAM
a shared file on a loop-device ext4, and the cgroup's limit is the budget
plus what the cgroup holds that is not guest RAM (its usage less the RAM
files' pages in the page cache, fincore; measured each step, the limit only
ever raised): the host kernel enforces the same budget for guest memory by
writing guest pages to their files and faulting them back. (Not RSS less
the RAM mapping: QEMU's RSS includes its binary and libraries, page cache
charged to whichever cgroup read them first, not to this one.)
What it wrote and read is the loop device's count (/sys/block/loopK/stat).

Per policy, one row: useful work (accesses after each workload's fill,
summed — blimp and Linux also apart, their speeds differ), major faults and
swap bytes (in + out) from the guests' own statistics over the run, the
host's side (bytes written to and read from the guests' RAM files: only
hostswap has any, the host having no swap; QEMU's major faults from
/proc/PID/stat), time over budget (the steps whose sum of QEMU RSS less
QEMU's own memory exceeds the budget; and those whose sum of guest sizes,
balloon `actual`, does), and QEMU's own memory at the first and the last
step (results.json also keeps the largest sum of targets). With --runs N every
policy runs N times, interleaved (run 1 of each, then run 2, ...: the host's
load moves), and each figure is the median (min-max). One picture per
policy and run: build/bench/policy/POLICY[-RUN].png; the steps as JSON lines
(.jsonl) and the manager's log, every decision with its reason (.log),
beside it.

    make bench-policy [POLICIES="window mom"] [POLICY_RUNS=3]   (PYTHONPATH=tools)
    PYTHONPATH=tools /usr/bin/python3 bench/policy.py --policies static,window,hostswap
"""
import argparse
import contextlib
import json
import logging
import os
import sys
import time

try:
    from blimp import hostswap
    from blimp.policy import Decision, Policy, make_policy
    from blimp.policy.backend import BlimpVMBackend, GuestGone
    from blimp.policy.manager import Manager, record_json
    from blimp.units import MIB
except ImportError:
    sys.exit("bench/policy.py: run with PYTHONPATH=tools (make bench-policy does)")

from guests import Blimp, Linux
from report import spread
from squeeze import swap_args as swap_disk_args

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "bench", "policy")
WORK = dict(size=200, hot=128, hotpct=90, write=30)


CASES = ("static", "reporting", "mom", "window", "ws", "hostswap")


class HostSwapping(Policy):
    """The hostswap case: the manager samples (for the table and the
    picture) but sets no target; the memory cgroup keeps the budget."""
    name = "hostswap"

    def decide(self, host, guests):
        return {g.name: Decision(None, "no target: the host's memory cgroup swaps guest RAM to its file")
                for g in guests}


def swap_args(path, mib):
    with open(path, "wb") as f:
        f.truncate(mib * MIB)
    return swap_disk_args(path, cache="none")


def local_linux():
    """The Linux guest, its files taken from this tree's build/ when there."""
    g = Linux()
    here = os.path.dirname(os.path.abspath(os.path.join(OUT, "..", "linux", "guest.json")))
    for key in ("kernel", "initrd"):
        mine = os.path.join(here, os.path.basename(g.info[key]))
        if os.path.exists(mine):
            g.info[key] = mine
    return g


class Runner:
    """One policy's run: boot, schedule, step, collect, close."""

    def __init__(self, policy, args, out, tag=None):
        self.policy, self.args, self.out = policy, args, out
        self.tag = tag or policy     # file names: POLICY or POLICY-RUN
        self.vms, self.kinds = {}, {}
        self.hs = None               # the HostSwap of the hostswap case
        self.limit = None

    def boot(self):
        rep = self.policy == "reporting"
        a = self.args
        for name, guest in (("blimp-a", Blimp()), ("linux", local_linux()), ("blimp-b", Blimp())):
            # TCG's translation cache grows into QEMU's RSS (up to 1 GiB by
            # default, more for Linux, which runs more code): capped alike for
            # all, so RSS is mostly guest memory.
            disk = swap_args(os.path.join(self.out, f"{name}.swap"), a.swap_mib) + \
                ["-accel", f"tcg,tb-size={a.tb_mib}"]
            if guest.family == "blimp":
                vm = guest.vm(a.mem_mib, rep, extra_args=disk, append="vm.swap=0")
            else:
                vm = guest.vm(a.mem_mib, rep, extra_args=disk)
            vm.name = name
            if self.hs:
                self.hs.prepare(vm, ram=f"{name}.ram")
            self.vms[name], self.kinds[name] = vm.start(), guest.family
        for vm in self.vms.values():
            vm.wait_event("ready", timeout=180)

    def start_work(self, name, seconds):
        vm, w = self.vms[name], WORK
        if self.kinds[name] == "blimp":
            vm.shell(f"run w size={w['size']}M pattern=hotcold hot={w['hot']}M hotpct={w['hotpct']} "
                     f"write={w['write']} seed=1")
        else:
            vm.shell(f"press {w['size']} {w['hot']} {w['hotpct']} {w['write']} {int(seconds)} 1")

    def stop_work(self, name):
        """The workload's accesses after its fill, and whether it failed."""
        vm = self.vms[name]
        if self.kinds[name] == "blimp":
            vm.shell("stop w", timeout=120, expect_rc=None)
            ev = (vm.events_named("workload_stop") or vm.events_named("workload_error")
                  or vm.events_named("workload"))
            failed = bool(vm.events_named("workload_error") or vm.events_named("workload_corrupt"))
            return (ev[-1].get("accesses", 0) if ev else 0), failed
        # pressmem runs its SECONDS after its fill: ask for its end without
        # waiting (the manager must go on stepping); finished() collects it.
        vm.send("presswait\n")
        return None, None

    def finished(self, name):
        """(accesses, failed) of the Linux guest's pressmem once its JSON line
        and presswait's cmd event are in, else None."""
        vm = self.vms[name]
        done = [e for e in vm.events_named("cmd") if e["name"] == "presswait"]
        if not done:
            return None
        for line in reversed(vm.lines):
            if line.startswith('{"pressmem":'):
                r = json.loads(line)["pressmem"]
                return r["accesses"], bool(r["errors"]) or done[-1].get("rc") != 0
        return 0, True

    def run(self):
        a = self.args
        os.makedirs(self.out, exist_ok=True)
        steps_path = os.path.join(self.out, f"{self.tag}.jsonl")
        steps = open(steps_path, "w", buffering=1)
        # Every decision with its reason, in POLICY.log beside the steps.
        handler = logging.FileHandler(os.path.join(self.out, f"{self.tag}.log"), mode="w")
        handler.setFormatter(logging.Formatter("%(relativeCreated)8.0f ms %(levelname)s %(message)s"))
        plog = logging.getLogger("blimp.policy")
        plog.addHandler(handler)
        plog.setLevel(logging.INFO)
        plog.propagate = False
        budget = a.budget_mib * MIB
        policy = HostSwapping() if self.policy == "hostswap" else make_policy(self.policy)
        mgr = Manager(policy, budget,
                      on_step=lambda rec: steps.write(record_json(rec, budget) + "\n"))
        stack = contextlib.ExitStack()
        try:
            if self.policy == "hostswap":
                self.hs = stack.enter_context(hostswap.HostSwap(directory=self.out))
            self.boot()
            for name, vm in self.vms.items():
                mgr.add(BlimpVMBackend(vm, ws="avail" if self.kinds[name] == "blimp" else None))
            first = mgr.step()     # QEMU's own memory at the start, and the limit on it
            self.overhead0 = first.get("host_overhead")
            self.enforce(budget, first)
            host0 = self.host_counters()
            D = a.seconds
            plan = [(0.0, "start", "blimp-a"), (D / 4, "start", "linux"), (D / 2, "stop", "blimp-a"),
                    (D / 2, "start", "blimp-b"), (3 * D / 4, "stop", "linux"), (D, "stop", "blimp-b")]
            phases, work, failed = {}, {}, {}
            t0 = time.monotonic()
            waiting = set()   # Linux workloads asked to end, not yet ended
            while plan or waiting or time.monotonic() - t0 < D:
                now = time.monotonic() - t0
                assert now < D + 300, f"{self.policy}: workloads {waiting} never ended"
                for name in list(waiting):
                    r = self.finished(name)
                    if r is not None:
                        work[name], failed[name] = r
                        phases[name][1] = now
                        waiting.discard(name)
                while plan and plan[0][0] <= now:
                    _, what, name = plan.pop(0)
                    if what == "start":
                        self.start_work(name, D / 2)
                        phases[name] = [now, None]
                    elif self.kinds[name] == "linux":
                        self.stop_work(name)
                        waiting.add(name)
                    else:
                        work[name], failed[name] = self.stop_work(name)
                        phases[name][1] = time.monotonic() - t0
                try:
                    self.enforce(budget, mgr.step())
                except GuestGone as e:
                    print(f"{self.policy}: {e}", file=sys.stderr)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - now)))
            host = {k: v - host0[k] for k, v in self.host_counters().items()}
            return self.summary(mgr, budget, t0, phases, work, failed, host)
        finally:
            steps.close()
            plog.removeHandler(handler)
            handler.close()
            for vm in self.vms.values():
                vm.close()
            stack.close()        # the cgroup, loop device and RAM files, after QEMU
            for name in self.vms:   # the swap disks: sparse, but not worth keeping
                try:
                    os.unlink(os.path.join(self.out, f"{name}.swap"))
                except FileNotFoundError:
                    pass

    def enforce(self, budget, rec):
        """hostswap: the cgroup's limit is the budget plus what it holds
        that is not guest RAM (usage less the RAM files' cached pages), raised
        when that grows and never lowered (a lower limit would make this
        write wait in reclaim). Only guest memory is then held to the
        budget, as the policies hold it."""
        if not self.hs:
            return
        ram = sum(self.hs.ram_resident(f"{name}.ram") for name in self.vms)
        want = budget + max(0, self.hs.usage() - ram)
        if self.limit is None or want > self.limit:
            self.hs.set_limit(want)
            self.limit = want

    def host_counters(self):
        """The host's side: bytes the loop device wrote and read (hostswap
        only; the host has no swap, so a balloon case's anonymous RAM never
        reaches a disk) and the QEMUs' major faults."""
        c = {"qemu_majflt": sum(hostswap.proc_counters(vm.proc.pid).get("proc_majflt", 0)
                                for vm in self.vms.values())}
        if self.hs:
            d = self.hs.disk_counters()
            c.update(host_write=d["disk_write_bytes"], host_read=d["disk_read_bytes"])
        return c

    def summary(self, mgr, budget, t0, phases, work, failed, host):
        h = mgr.history
        over = 0.0
        for prev, rec in zip(h, h[1:]):
            rss = [s.rss for s in rec["samples"].values()]
            if None not in rss and rec["host_used"] > budget:
                over += rec["t"] - prev["t"]

        def delta(attrs):
            total = 0
            for name in self.vms:
                vals = [sum(getattr(r["samples"][name], x) or 0 for x in attrs)
                        for r in h if name in r["samples"]]
                total += max(vals) - min(vals) if vals else 0
            return total
        over_size = 0.0
        for prev, rec in zip(h, h[1:]):
            if sum((s.actual or 0) for s in rec["samples"].values()) > budget:
                over_size += rec["t"] - prev["t"]
        res = {"policy": self.policy, "over_budget_size_s": over_size, "work": work, "failed": failed, "phases": phases,
               "useful": sum(work.values()),
               "useful_blimp": sum(v for n, v in work.items() if self.kinds[n] == "blimp"),
               "useful_linux": sum(v for n, v in work.items() if self.kinds[n] == "linux"),
               "majflt": delta(["majflt"]), "swap_bytes": delta(["swap_in", "swap_out"]),
               "host_write": host.get("host_write"), "host_read": host.get("host_read"),
               "qemu_majflt": host["qemu_majflt"], "limit": self.limit, "budget": budget,
               "overhead_start": self.overhead0, "overhead_end": h[-1].get("host_overhead"),
               "over_budget_s": over, "max_target_sum": max(r.get("target_sum", 0) for r in h),
               "steps": len(h), "t0": t0}
        plot(self.policy, h, budget, phases, t0, os.path.join(self.out, f"{self.tag}.png"))
        return res


def plot(policy, history, budget, phases, t0, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = sorted({n for r in history for n in r["samples"]})
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(9, 2.2 * (len(names) + 1)), sharex=True)
    ts = [r["t"] - t0 for r in history]
    ax = axes[0]
    ax.axhline(budget / MIB, color="k", lw=1, label="budget")
    ax.plot(ts, [sum((s.rss or 0) for s in r["samples"].values()) / MIB for r in history], ":",
            label="sum of QEMU RSS")
    ax.plot(ts, [(r.get("host_used") or 0) / MIB for r in history], label="the same less QEMU's own memory")
    if any(r.get("target_sum") for r in history):
        ax.plot(ts, [r.get("target_sum", 0) / MIB for r in history], "--", label="sum of targets")
    ax.set_ylabel("MiB")
    ax.set_title(f"policy {policy}: three guests under one budget")
    ax.legend(fontsize=7, loc="lower right")
    for ax, name in zip(axes[1:], names):
        rows = [(r["t"] - t0, r["samples"][name], r["targets"].get(name)) for r in history if name in r["samples"]]
        t = [x[0] for x in rows]
        ax.plot(t, [(x[1].actual or 0) / MIB for x in rows], label="size (balloon actual)")
        if any(x[2] is not None for x in rows):
            ax.plot(t, [(x[2] or 0) / MIB for x in rows], "--", label="target")
        ax.plot(t, [(x[1].rss or 0) / MIB for x in rows], ":", label="QEMU RSS")
        ax.plot(t, [(x[1].free or 0) / MIB for x in rows], lw=0.8, label="guest free")
        if name in phases and phases[name][1] is not None:
            ax.axvspan(phases[name][0], phases[name][1], color="orange", alpha=0.15, label="workload")
        ax.set_ylabel(f"{name}\nMiB")
        ax.legend(fontsize=6, loc="lower left", ncol=5)
    axes[-1].set_xlabel("s")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _m(v):
    return f"{v / 1e6:.2f}"


def _mib(v):
    return f"{v / MIB:.0f}"


def _k(v):
    return f"{v / 1000:.0f}k" if v >= 1000 else f"{v:.0f}"


def _s(v):
    return f"{v:.0f}"


# One column: its head and the figures it shows, joined by " / ".
COLUMNS = [
    ("useful work (M accesses)", [(lambda r: r["useful"], _m)]),
    ("blimp / linux", [(lambda r: r["useful_blimp"], _m), (lambda r: r["useful_linux"], _m)]),
    ("guest major faults", [(lambda r: r["majflt"], _k)]),
    ("guest swap in+out (MiB)", [(lambda r: r["swap_bytes"], _mib)]),
    ("host wrote / read (MiB)", [(lambda r: r.get("host_write"), _mib), (lambda r: r.get("host_read"), _mib)]),
    ("QEMU major faults", [(lambda r: r.get("qemu_majflt"), _k)]),
    ("over budget (s): Σ RSS less QEMU's own / Σ size",
     [(lambda r: r["over_budget_s"], _s), (lambda r: r["over_budget_size_s"], _s)]),
    ("QEMU's own memory (MiB): start / end",
     [(lambda r: r.get("overhead_start"), _mib), (lambda r: r.get("overhead_end"), _mib)]),
]


def table(results):
    """One row per policy; `results` is {policy: [one result per run]}."""
    heads = ["policy"] + [h for h, _ in COLUMNS] + ["runs", "failed"]
    rows = []
    for policy, runs in results.items():
        row = [policy] + [" / ".join(spread([get(r) for r in runs], fmt) for get, fmt in figs)
                          for _, figs in COLUMNS]
        row.append(str(len(runs)))
        row.append(", ".join(sorted({n for r in runs for n, f in r["failed"].items() if f})) or "none")
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)] + rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", default=",".join(CASES),
                    help="policies and the case hostswap, in the order run (default all)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each, interleaved; median (min-max)")
    ap.add_argument("--budget-mib", type=int, default=512)
    ap.add_argument("--mem-mib", type=int, default=256)
    ap.add_argument("--swap-mib", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--tb-mib", type=int, default=32, help="TCG translation cache per guest")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--report", metavar="JSON", help="print the table of a saved results.json and stop")
    a = ap.parse_args(argv)
    if a.report:
        with open(a.report) as f:
            saved = json.load(f)
        # One result per policy before --runs; a list of runs since.
        print(table({p: rs if isinstance(rs, list) else [rs] for p, rs in
                     (saved.items() if isinstance(saved, dict) else ((r["policy"], r) for r in saved))}))
        return
    policies = [p for p in a.policies.split(",") if p]
    unknown = [p for p in policies if p not in CASES]
    if unknown or a.runs < 1:
        ap.error(f"unknown policies {unknown} (of {', '.join(CASES)})" if unknown else "--runs must be >= 1")
    if "hostswap" in policies:
        why = hostswap.unavailable_reason(a.out)
        if why:
            print(f"policy hostswap: skipped: {why}", flush=True)
            policies.remove("hostswap")
    os.makedirs(a.out, exist_ok=True)
    results = {p: [] for p in policies}
    for run in range(a.runs):
        for p in policies:
            print(f"policy {p}{f' run {run + 1}/{a.runs}' if a.runs > 1 else ''}: booting three guests, "
                  f"{a.seconds:.0f} s of workloads", flush=True)
            tag = p if a.runs == 1 else f"{p}-{run + 1}"
            try:
                r = Runner(p, a, a.out, tag).run()
            except Exception as e:      # one failed run is said; the others still run
                print(f"policy {p}: run failed: {e}", file=sys.stderr, flush=True)
                continue
            results[p].append(r)
            print(table({p: [r]}).splitlines()[-1], flush=True)
    results = {p: rs for p, rs in results.items() if rs}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = table(results)
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
