"""squeeze: the balloon inflated below what a running workload holds (issue 14).

The other benchmarks balloon memory the guest has freed. Here the guest is
busy: pressmem (bench/linux/pressmem.c, whose header defines the workload
exactly, so blimp can run the same accesses) holds most of the guest's RAM
and keeps touching it, and the host asks for the balloon to take more than
is free. The guest has a swap disk; how it copes is the figure:

  - time from QMP `balloon` until query-balloon's `actual` is the target;
  - the workload's accesses/s before the squeeze, during it (from pressmem's
    last per-second line before the QMP command to its first one after the
    target was reached) and after it, to its end;
  - major faults (/proc/vmstat pgmajfault) and bytes written to swap
    (pswpout * 4096), from just before the QMP command to the target and to
    the workload's end, with the swap drive's wr_bytes from QMP
    query-blockstats over the same spans as a cross-check from the host;
  - errors: pattern mismatches pressmem found (a page lost or mixed up in
    swap); must be 0.

Defaults: guest 512 MiB, workload 384 MiB of which 64 MiB hot (90 % of
accesses, 30 % writes) for 30 s, the squeeze after 6 s of it, target
256 MiB, a 512 MiB swap image (sparse, removed after). About 40 s under TCG.

A guest can be squeezed when it (1) swaps on a virtio disk it is given and
says so in its ready event's "swap_bytes", and (2) has the console commands
`press ARGS` (start pressmem ARGS in the background, its lines on the
console), `presswait` (its exit status as the cmd event's rc) and `vmstat`
(pgmajfault, pswpout and pswpin as /proc/vmstat's "NAME VALUE" lines). The
Linux guest has them (bench/linux/init.sh); blimp does not yet.

run_squeeze(guest, out_dir) returns a dict (see the end of _squeeze);
bench.py keeps it per run under the guest's family ("linux", and "blimp"
once blimp can be squeezed: until then that key is absent and the report
shows "—").
"""
import json
import os
import re
import threading
import time

from blimp.units import MIB, PAGE

SWAP_DRIVE = "sw"
PRESS_LINE = re.compile(r"^pressmem t=(\d+) accesses=(\d+)$")
VMSTAT_KEYS = ("pgmajfault", "pswpout", "pswpin")

DEFAULTS = {"ram_mib": 512, "size_mib": 384, "hot_mib": 64, "hot_pct": 90, "write_pct": 30,
            "target_mib": 256, "swap_mib": 512, "warm_s": 6, "seconds": 30, "seed": 1}


def swap_args(image):
    return ["-drive", f"if=none,id={SWAP_DRIVE},file={image},format=raw",
            "-device", f"virtio-blk-pci,drive={SWAP_DRIVE}"]


class PressFollower:
    """Stamps each pressmem line of the guest's console with the host's
    monotonic time as it arrives (a thread on the console's condition), so
    the per-second lines can be placed before, during or after the squeeze."""

    def __init__(self, vm):
        self.vm = vm
        self.seen = 0
        self.ticks = []          # (host time, guest second, accesses)
        self.result = None       # pressmem's final JSON object
        self.errors = []         # its "pressmem: error ..." lines
        self.touched_at = None
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        vm = self.vm
        with vm.cond:
            while not self.stop:
                while self.seen < len(vm.lines):
                    self._take(vm.lines[self.seen], time.monotonic())
                    self.seen += 1
                vm.cond.wait(0.2)

    def _take(self, line, now):
        m = PRESS_LINE.match(line)
        if m:
            self.ticks.append((now, int(m.group(1)), int(m.group(2))))
        elif line.startswith('{"pressmem":'):
            self.result = json.loads(line)["pressmem"]
        elif line.startswith("pressmem: error"):
            self.errors.append(line)
        elif line.startswith("pressmem: touched"):
            self.touched_at = now

    def close(self):
        self.stop = True
        with self.vm.cond:
            self.vm.cond.notify_all()
        self.thread.join(2)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.vm.fail(f"timed out after {timeout} s waiting for {what}")
            if self.vm.proc.poll() is not None:
                self.vm.fail(f"QEMU exited while waiting for {what}")
            time.sleep(0.02)


def rate(a, b):
    """Accesses per second of guest time between two ticks (or None)."""
    if a is None or b is None or b[1] <= a[1]:
        return None
    return (b[2] - a[2]) / (b[1] - a[1])


def vmstat(vm):
    _, out = vm.shell("vmstat", timeout=120)
    values = {}
    for line in out:
        f = line.split()
        if len(f) == 2 and f[0] in VMSTAT_KEYS and f[1].isdigit():
            values[f[0]] = int(f[1])
    missing = [k for k in VMSTAT_KEYS if k not in values]
    if missing:
        vm.fail(f"/proc/vmstat without {missing}")
    return values


def swap_written(vm):
    """Bytes the guest has written to the swap drive, as QEMU counts them."""
    for dev in vm.qmp.execute("query-blockstats"):
        if dev.get("device") == SWAP_DRIVE:
            return dev["stats"]["wr_bytes"]
    vm.fail(f"query-blockstats has no drive {SWAP_DRIVE!r}")


def run_squeeze(guest, out_dir, **overrides):
    p = dict(DEFAULTS, **overrides)
    if not p["hot_mib"] < p["target_mib"] < p["size_mib"] < p["ram_mib"]:
        raise ValueError(f"need hot < target < workload < RAM: {p}")
    image = os.path.join(out_dir, f"swap-{guest.name}-{os.getpid()}.img")
    with open(image, "wb") as f:
        f.truncate(p["swap_mib"] * MIB)         # sparse: only what is written takes room
    try:
        with guest.vm(p["ram_mib"], reporting=False, extra_args=swap_args(image)) as vm:
            return _squeeze(vm, p)
    finally:
        os.unlink(image)


def _squeeze(vm, p):
    ready = vm.wait_event("ready", timeout=600)
    if not ready.get("swap_bytes"):
        vm.fail("the guest has no swap: the swap disk was not used")
    follow = PressFollower(vm)
    try:
        vm.shell(f"press {p['size_mib']} {p['hot_mib']} {p['hot_pct']} {p['write_pct']} "
                 f"{p['seconds']} {p['seed']}")
        follow.wait(lambda: len(follow.ticks) >= p["warm_s"], 300,
                    f"{p['warm_s']} s of pressmem accesses")
        rss_before = vm.rss()
        stat0, wr0 = vmstat(vm), swap_written(vm)
        target = p["target_mib"] * MIB
        t0 = time.monotonic()
        vm.qmp.execute("balloon", value=target)
        vm.wait_actual(target, timeout=600, why="the squeeze", period=0.05)
        t1 = time.monotonic()
        running_at_target = follow.result is None
        stat1, wr1 = vmstat(vm), swap_written(vm)
        rss_squeezed = vm.rss()
        ev, _ = vm.shell("presswait", timeout=p["seconds"] + 600, expect_rc=None)
        try:
            follow.wait(lambda: follow.result is not None, 10, "pressmem's JSON line")
        except Exception:
            vm.fail(f"pressmem ended with status {ev.get('rc')} and without its JSON line "
                    f"(killed? by the OOM killer, say)")
        stat2, wr2 = vmstat(vm), swap_written(vm)
    finally:
        follow.close()

    ticks = follow.ticks
    before = [t for t in ticks if t[0] < t0]
    after = [t for t in ticks if t[0] >= t1]
    first_after = after[0] if after else None

    def delta(a, b, key):
        return b[key] - a[key]

    result = follow.result
    return {
        "params": p,
        "swap_bytes": ready["swap_bytes"],
        "squeeze_s": t1 - t0,
        "reached_while_running": running_at_target,
        "accesses_per_s": {
            "before": rate(before[0] if before else None, before[-1] if before else None),
            "during": rate(before[-1] if before else None, first_after),
            "after": rate(first_after, after[-1] if after else None),
        },
        "majflt": {"squeeze": delta(stat0, stat1, "pgmajfault"),
                   "total": delta(stat0, stat2, "pgmajfault")},
        "swap_out_bytes": {"squeeze": delta(stat0, stat1, "pswpout") * PAGE,
                           "total": delta(stat0, stat2, "pswpout") * PAGE},
        "swap_in_bytes": {"total": delta(stat0, stat2, "pswpin") * PAGE},
        "swap_drive_wr_bytes": {"squeeze": wr1 - wr0, "total": wr2 - wr0},
        "errors": result["errors"],
        "error_lines": follow.errors,
        "exit_status": ev.get("rc"),
        "pressmem": result,
        "rss_mib": {"before": rss_before >> 20, "squeezed": rss_squeezed >> 20},
        "ticks": [(round(t - t0, 3), s, a) for t, s, a in ticks],
    }
