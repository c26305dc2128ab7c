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

The Linux guest is driven through its init's console commands
(bench/linux/init.sh): `press ARGS` starts pressmem in the background, its
per-second lines on the console, `presswait` gives its exit status, `vmstat`
prints /proc/vmstat; its init runs mkswap and swapon on the disk and says so
in the ready event's "swap_bytes".

blimp (_squeeze_blimp) boots with the disk as its first virtio-blk device
and `vm.swap=0`, and runs the same workload in the kernel:
`run p size=384M pattern=hotcold hot=64M hotpct=90 write=30 seed=1`
(kernel/workload.c; fill=1, its default, writes every page once first, like
pressmem's first pass). Its figures come from events, not console text:

  - the fill is over at the first `workload` event with accesses > 0; the
    squeeze comes warm_s seconds (of the guest's clock, t_ms) after it and
    `stop p` ends the workload `seconds` after it;
  - accesses/s: the `workload` events (once a second: accesses, t_ms) play
    pressmem's per-second lines, placed before or after the squeeze by the
    host time their line arrived;
  - major faults: the `vm` command's majflt; bytes to and from swap: the
    `swap` command's pages_out and pages_in * 4096 (wr_bytes cross-checks);
  - errors: `workload_corrupt` and `workload_error` events (a page that came
    back from swap wrong, or could not be read back).

run_squeeze(guest, out_dir) returns the same dict for both (see the end of
_squeeze_linux); bench.py keeps it per run under the guest's family,
"blimp" and "linux". For blimp, "pressmem" holds the workload's last event
(`workload_stop`) and the final `swap` event, "exit_status" the workload's
error (0), "error_lines" the offending events as JSON.
"""
import json
import os
import re
import threading
import time

from blimp.units import MIB, PAGE

SWAP_DRIVE = "sw"
PRESS_LINE = re.compile(r"^pressmem t=(\d+) accesses=(\d+)$")
VMSTAT_KEYS = ("pgmajfault", "pswpout", "pswpin", "nr_anon_pages")

DEFAULTS = {"ram_mib": 512, "size_mib": 384, "hot_mib": 64, "hot_pct": 90, "write_pct": 30,
            "target_mib": 256, "swap_mib": 512, "warm_s": 6, "seconds": 30, "seed": 1}


# The first virtio-blk device is the swap area; the working-set guard off,
# as Linux has none: both guests are squeezed to the same size.
BLIMP_SWAP = "vm.swap=0 balloon.ws_guard=off"
WORKLOAD = "p"


def swap_args(image, cache=None):
    """QEMU arguments for the swap disk; cache="none" makes QEMU use O_DIRECT
    (the swap ceiling, bench/swapio.py), the default is QEMU's writeback."""
    opts = f",cache={cache}" if cache else ""
    return ["-drive", f"if=none,id={SWAP_DRIVE},file={image},format=raw{opts}",
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


def phase_rates(ticks, t0, t1):
    """Accesses/s before the QMP command (t0), during the squeeze (last tick
    before it to first after the target, t1) and after, from (host time,
    guest seconds, accesses) ticks: the same cut for both guests."""
    before = [t for t in ticks if t[0] < t0]
    after = [t for t in ticks if t[0] >= t1]
    first_after = after[0] if after else None
    return {
        "before": rate(before[0] if before else None, before[-1] if before else None),
        "during": rate(before[-1] if before else None, first_after),
        "after": rate(first_after, after[-1] if after else None),
    }


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
        blimp = guest.family == "blimp"
        with guest.vm(p["ram_mib"], reporting=False, extra_args=swap_args(image),
                      append=BLIMP_SWAP if blimp else "") as vm:
            return (_squeeze_blimp if blimp else _squeeze_linux)(vm, p)
    finally:
        os.unlink(image)


def _squeeze_linux(vm, p):
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
        # What the workload holds once squeezed, near its end: anonymous
        # pages (pressmem's, and a few of the shell's) two seconds before it
        # stops — the room its cold pages had.
        follow.wait(lambda: len(follow.ticks) >= p["seconds"] - 2 or follow.result is not None,
                    p["seconds"] + 600, f"{p['seconds'] - 2} s of pressmem accesses")
        held = vmstat(vm)["nr_anon_pages"]
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

    def delta(a, b, key):
        return b[key] - a[key]

    result = follow.result
    return {
        "params": p,
        "swap_bytes": ready["swap_bytes"],
        "squeeze_s": t1 - t0,
        "reached_while_running": running_at_target,
        "accesses_per_s": phase_rates(ticks, t0, t1),
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
        "held_pages": held,
        "ticks": [(round(t - t0, 3), s, a) for t, s, a in ticks],
    }


# ------------------------------------------------------------------ blimp
def _workload_events(vm, name, since_ms=0):
    """The `workload` events of workload `name` from guest time since_ms on."""
    return [e for e in vm.events_named("workload") if e["name"] == name and e["t_ms"] >= since_ms]


def _trouble(vm, name):
    """Events that say workload `name` lost or mixed up a page, or stopped on
    an error: they are its errors (must be none)."""
    with vm.cond:
        return [e for e in vm.events if (e["ev"] == "workload_corrupt" and e.get("name") == name)
                or (e["ev"] == "workload_error" and e.get("name") == name)]


def _wait_workload(vm, name, predicate, timeout, what):
    """The first `workload` event of `name` satisfying predicate; fails at
    once if the workload ended on an error instead."""
    def find():
        for e in vm.events:
            if e["ev"] in ("workload_error", "workload_done", "workload_stop") and e.get("name") == name:
                return e
            if e["ev"] == "workload" and e["name"] == name and predicate(e):
                return e
        return None
    ev = vm.wait_for(find, timeout, what)
    if ev["ev"] != "workload":
        vm.fail(f"workload {name} ended ({ev['ev']}, error {ev.get('error')}) while waiting for {what}")
    return ev


def _host_time(vm, ev):
    """When the event's line reached the host, on time.monotonic()'s clock."""
    return vm.start_time + ev["_host_time"]


def _clean(ev):
    return {k: v for k, v in ev.items() if not k.startswith("_")}


def _squeeze_blimp(vm, p):
    vm.wait_event("ready", timeout=600)
    sw_boot = vm.shell_event("swap")
    if sw_boot["dev"] < 0 or not sw_boot["slots"]:
        vm.fail(f"{BLIMP_SWAP} given, but blimp has no swap: {sw_boot}")
    vm.shell(f"run {WORKLOAD} size={p['size_mib']}M pattern=hotcold hot={p['hot_mib']}M "
             f"hotpct={p['hot_pct']} write={p['write_pct']} seed={p['seed']}")
    filled = _wait_workload(vm, WORKLOAD, lambda e: e["accesses"] > 0, 300,
                            "the end of the fill (accesses > 0)")
    start_ms = filled["t_ms"]
    # Events come once a second, a few ms late each: 100 ms of slack.
    _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= start_ms + p["warm_s"] * 1000 - 100,
                   p["warm_s"] + 120, f"{p['warm_s']} s of accesses")
    rss_before = vm.rss()
    vm0, sw0, wr0 = vm.shell_event("vm"), vm.shell_event("swap"), swap_written(vm)
    target = p["target_mib"] * MIB
    t0 = time.monotonic()
    vm.qmp.execute("balloon", value=target)
    vm.wait_actual(target, timeout=600, why="the squeeze", period=0.05)
    t1 = time.monotonic()
    with vm.cond:
        running_at_target = not any(e["ev"] in ("workload_error", "workload_done", "workload_stop")
                                    and e.get("name") == WORKLOAD for e in vm.events)
    vm1, sw1, wr1 = vm.shell_event("vm"), vm.shell_event("swap"), swap_written(vm)
    rss_squeezed = vm.rss()
    # Resident pages two seconds before the end (the last workload event
    # then), as for Linux: the room its cold pages had.
    held = _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= start_ms + (p["seconds"] - 2) * 1000 - 100,
                          p["seconds"] + 600, f"{p['seconds'] - 2} s of accesses")["resident"]
    _wait_workload(vm, WORKLOAD, lambda e: e["t_ms"] >= start_ms + p["seconds"] * 1000 - 100,
                   p["seconds"] + 600, f"{p['seconds']} s of accesses")
    stop_ev, _ = vm.shell(f"stop {WORKLOAD}", timeout=120)
    stopped = vm.events_named("workload_stop")[-1]
    vm2, sw2, wr2 = vm.shell_event("vm"), vm.shell_event("swap"), swap_written(vm)

    ticks = [(_host_time(vm, e), (e["t_ms"] - start_ms) / 1000, e["accesses"])
             for e in _workload_events(vm, WORKLOAD, start_ms)]
    trouble = _trouble(vm, WORKLOAD)
    return {
        "params": p,
        "swap_bytes": sw_boot["slots"] * PAGE,
        "squeeze_s": t1 - t0,
        "reached_while_running": running_at_target,
        "accesses_per_s": phase_rates(ticks, t0, t1),
        "majflt": {"squeeze": vm1["majflt"] - vm0["majflt"], "total": vm2["majflt"] - vm0["majflt"]},
        "swap_out_bytes": {"squeeze": (sw1["pages_out"] - sw0["pages_out"]) * PAGE,
                           "total": (sw2["pages_out"] - sw0["pages_out"]) * PAGE},
        "swap_in_bytes": {"total": (sw2["pages_in"] - sw0["pages_in"]) * PAGE},
        "swap_drive_wr_bytes": {"squeeze": wr1 - wr0, "total": wr2 - wr0},
        "errors": len(trouble),
        "error_lines": [json.dumps(_clean(e)) for e in trouble],
        "exit_status": stopped["error"],
        "pressmem": {"workload": _clean(stopped), "swap": _clean(sw2), "vm": _clean(vm2),
                     "stop_rc": stop_ev.get("rc")},
        "rss_mib": {"before": rss_before >> 20, "squeezed": rss_squeezed >> 20},
        "held_pages": held,
        "ticks": [(round(t - t0, 3), s, a) for t, s, a in ticks],
    }
