"""bench: blimp against a Linux guest on the same QEMU, and against the host's limit.

Run by `make bench` (after bench/linux/build_guest.py has built the Linux
guest from Debian's packages). Every figure is measured here, in this run,
on this machine; nothing is assumed or kept from elsewhere.

Method (issue 8):
  - each guest figure is the median of --runs runs, with min and max;
  - the guests are alternated within each run (blimp, Linux, Linux with
    init_on_alloc=0, blimp, ...), so a slow phase of the host (a VM itself,
    whose discards slow down several-fold at times) hits all of them;
  - an inflate or deflate is timed from QMP `balloon` to `query-balloon`
    showing the target (BALLOON_CHANGE events are rate-limited to 1/s);
  - during each balloon step the trace points virtio_queue_notify and
    virtio_notify are on (QMP trace-event-set-state, log in a file): from a
    kick to the device's last completion before the next kick, the vCPU
    thread is doing QEMU's work (under TCG guest and host never overlap on
    one vCPU); the rest of the step is the guest's share;
  - QEMU's RSS is read from /proc before and after, and sampled during the
    inflate and reporting steps for the plot;
  - the squeeze (bench/squeeze.py, issue 14): the balloon inflated below
    what a running workload holds, the guest swapping to a virtio disk; its
    own table, both guests running the same workload (blimp in the kernel,
    `run p pattern=hotcold ...`, Linux pressmem). Full bench only (about
    75 s a run for both): --quick, which make test runs, leaves it out.

    /usr/bin/python3 bench/bench.py [--runs 5] [--size-mib 1536]
        [--report-mib 1024] [--ram-mib 2048] [--swap-mib 256] [--out build/bench] [--quick]
    /usr/bin/python3 bench/bench.py --squeeze-only [--runs 1] [--out DIR]
    /usr/bin/python3 bench/bench.py --microvm-only [--runs 5] [--ram-mib 2048]
    /usr/bin/python3 bench/bench.py --report build/bench/bench.json

--quick (used by make test): one run, small sizes, UEFI boot skipped; the
same code paths, no figure asserted.

Besides the guests, two host programs print tables of their own after the
main one: bench/replace_bench (page-replacement policies against Belady's
OPT, the same figures every run) and bench/swap_ceiling (the host's
O_DIRECT throughput for a --swap-mib swap image in --out, deleted after),
with blimp's own swap-out and swap-in beside it (bench/swapio.py: a 128 MiB
guest scanning 192 MiB, every access a major fault; 64/96 MiB in --quick).
A last table gives the cost of a first-touch (minor) fault: blimp's
workload writing every page of size_mib once, Linux's touchmem the same,
each in a fresh guest of ram_mib, by the guest's own clock.
And the cost of working-set scanning (bench/wsscan.py, issue 15): blimp's
aging hand reading and clearing the Accessed bits of a running workload's
pages once a round, against Linux's clear_refs plus smaps read (the classic
estimate) on pressmem holding the same size, both by the guest's own clock,
per GiB resident per period (1024 MiB in a 2048 MiB guest; 192 MiB in a
512 MiB one in --quick).
And any size of guest (bench/bigmem.py, issue 17): blimp booted at 2, 64,
256 GiB and 1 TiB, 1 TiB also with its RAM in one piece (2 and 64 in
--quick; a size the host cannot hold is left
out, saying why), `ready` by the guest's clock against the 2 GiB one's,
QEMU's RSS after boot, inflate speed for 1 GiB and a quarter of the guest,
metadata per frame; --bigmem-boots boots a size (median), once per bench.
--bigmem-only measures that group alone (make bench-bigmem, about a minute
and a half on today's kernel):

    /usr/bin/python3 bench/bench.py --bigmem-only [--bigmem-sizes 2,64,256,1024,1024flat]
        [--bigmem-boots 3] [--out DIR]
And the working-set estimate's error (bench/wserror.py, issue 15): blimp's
`ws` against the hot set the bench gave its workload, which is the truth:
steady (64 and 256 MiB hot of 512 MiB in a 1024 MiB guest; 32 of 128 in a
512 MiB one in --quick), and the lag after the hot set moves and grows,
beside the bound (tau + a round; vm.ws_ms=3000); Linux's clear_refs +
smaps Referenced over a window of tau on pressmem's same hot set, steady.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

# This script's folder (guests, report) is on sys.path already; the host
# package (tools/blimp) is added here, the one sys.path.insert of the tree:
# bench.py is run directly, by make bench and by hand.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from blimp.units import MIB  # noqa: E402
from blimp.vm import KERNEL, BlimpVM  # noqa: E402
from blimp.vm import qemu_version_line  # noqa: E402
from guests import ROOT, Blimp, Linux  # noqa: E402
import bigmem  # noqa: E402
import report  # noqa: E402
from squeeze import run_squeeze  # noqa: E402
import swapio  # noqa: E402
import wserror  # noqa: E402
import wsscan  # noqa: E402

TRACE_POINTS = ("virtio_queue_notify", "virtio_notify")


# ------------------------------------------------------------------ tracing
def trace(vm, on):
    for name in TRACE_POINTS:
        vm.qmp.execute("trace-event-set-state", name=name, enable=on)


TRACE_LINE = re.compile(r"^\d+@(\d+\.\d+):(virtio_queue_notify|virtio_notify) (.*)$")


def host_share_s(trace_log, start_offset):
    """Seconds the vCPU thread spent in QEMU's queue handling since start_offset
    of the trace log: from each kick to the last completion before the next."""
    with open(trace_log, "rb") as f:
        f.seek(start_offset)
        text = f.read().decode("utf-8", "replace")
    host = 0.0
    kick = last_done = None
    for line in text.splitlines():
        m = TRACE_LINE.match(line)
        if not m:
            continue
        t = float(m.group(1))
        if m.group(2) == "virtio_queue_notify":
            if kick is not None and last_done is not None:
                host += last_done - kick
            kick, last_done = t, None
        elif kick is not None:
            last_done = t
    if kick is not None and last_done is not None:
        host += last_done - kick
    return host


def trace_offset(trace_log):
    return os.path.getsize(trace_log) if os.path.exists(trace_log) else 0


# ------------------------------------------------------------------ steps
class RssSampler:
    """The per-poll callback of BlimpVM.wait_actual/wait_rss_below: records
    QEMU's RSS into `samples` (seconds since t0, MiB) at most every `every`
    s, and once more when the wait is over, whose time it keeps (`done_at`)."""

    def __init__(self, vm, samples, t0, every):
        self.vm, self.samples, self.t0, self.every = vm, samples, t0, every
        self.last = self.done_at = None

    def __call__(self, done):
        now = time.monotonic()
        if done or self.last is None or now - self.last >= self.every:
            self.samples.append((round(now - self.t0, 3), self.vm.rss() >> 20))
            self.last = now
        if done:
            self.done_at = now


def wait_actual(vm, want, samples, t0, timeout=900):
    """Poll query-balloon until `actual` is `want`; returns when it was."""
    sampler = RssSampler(vm, samples, t0, every=0.05)
    vm.wait_actual(want, timeout, period=0.002, on_poll=sampler)
    return sampler.done_at


def wait_rss_below(vm, goal_bytes, samples, t0, timeout):
    """Wait until QEMU's RSS is at most goal_bytes; returns when it was."""
    sampler = RssSampler(vm, samples, t0, every=0)
    vm.wait_rss_below(goal_bytes, timeout, period=0.01, on_poll=sampler)
    return sampler.done_at


def balloon_step(vm, target_bytes, trace_log):
    """One timed balloon step: seconds, host share, RSS after, RSS samples."""
    samples = []
    off = trace_offset(trace_log)
    trace(vm, True)
    t0 = time.monotonic()
    vm.qmp.execute("balloon", value=target_bytes)
    t1 = wait_actual(vm, target_bytes, samples, t0)
    trace(vm, False)
    vm.qmp.execute("query-status")  # the log holds everything up to here
    return {"s": t1 - t0, "host_s": host_share_s(trace_log, off), "rss_after_mib": vm.rss() >> 20,
            "rss_samples": samples}


def run_boot(guest, ram_mib, timeout):
    with guest.vm(ram_mib, reporting=False) as vm:
        ready = vm.wait_event("ready", timeout=timeout)
        return ready["_host_time"]


PVH_FLOOR = os.path.join(ROOT, "build", "bench", "pvh_floor.elf")
PVH_BLOCKS = os.path.join(ROOT, "build", "bench", "pvh_blocks.elf")
READY_LINE = b'@ev {"ev":"ready"'


def microvm_boot(kernel, marker, ram_mib, timeout):
    """QEMU's start to the first console line holding `marker`, on microvm
    with the balloon over mmio and a QMP socket (nobody connects): the
    same command line and the same launch for blimp and the floors, so the
    kernel is the only difference. Timed to the line read, not QEMU's exit
    (its teardown does not count)."""
    vm = BlimpVM(machine="microvm", mem=f"{ram_mib}M", devices=["virtio-balloon-device"],
                 kernel=kernel, name="microvm-boot")
    vm.qmp_path = os.path.join(vm.tmp, "qmp.sock")
    cmd = vm.command_line()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        got, t = b"", None
        while t is None:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            got += chunk
            if marker in got:
                t = time.monotonic() - t0
        if t is None:
            raise RuntimeError(f"{kernel} on microvm: no {marker!r} line; console {got[-200:]!r}, "
                               f"QEMU exited {proc.wait(timeout=timeout)}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        vm.close()
    return t


def run_boot_microvm(ram_mib, timeout):
    """blimp on microvm (no PCI, the balloon a virtio-mmio device): QEMU's
    start to `ready`."""
    return microvm_boot(KERNEL, READY_LINE, ram_mib, timeout)


def run_pvh_floor(ram_mib, timeout, kernel=PVH_FLOOR):
    """QEMU's floor on microvm: start to the one console line of a PVH
    kernel that writes it at once and exits (bench/pvh_floor.S); with
    PVH_BLOCKS, after running as many blocks as blimp's boot translates."""
    return microvm_boot(kernel, b"floor\n", ram_mib, timeout)


def microvm_only(args):
    """--microvm-only: the microvm boot row alone (issue 17): blimp, the
    floor and the floor with blimp's count of blocks alternated --runs
    times, a second or so a run; printed as median (min-max) ms, with the
    differences run by run (runs in a row share the host's load, so their
    difference spreads less than either)."""
    blimp, floor, blocks = [], [], []
    for _ in range(args.runs):
        blimp.append(1000 * run_boot_microvm(args.ram_mib, 600))
        floor.append(1000 * run_pvh_floor(args.ram_mib, 600))
        blocks.append(1000 * run_pvh_floor(args.ram_mib, 600, PVH_BLOCKS))
    for name, ms in (("blimp on microvm, start to ready", blimp), ("the PVH floor, start to its line", floor),
                     ("the floor after 1650 blocks of code", blocks),
                     ("blimp minus the floor, run by run", [b - f for b, f in zip(blimp, floor)]),
                     ("1650 blocks minus the floor", [b - f for b, f in zip(blocks, floor)])):
        s = report.stats(ms)
        print(f"{name:38s} {s['median']:6.1f} ({s['min']:.1f}-{s['max']:.1f}) ms, {s['n']} runs")


def run_inflate_deflate(guest, ram_mib, size_mib, tmp, reporting=False):
    """Touch and free size_mib, inflate by it, deflate back. With reporting on,
    wait first until reporting has returned the freed memory to the host."""
    trace_log = os.path.join(tmp, f"trace-{guest.name}-{os.getpid()}-{time.monotonic_ns()}.log")
    with guest.vm(ram_mib, reporting=reporting, trace_log=trace_log) as vm:
        vm.wait_event("ready", timeout=600)
        guest.touch_and_free(vm, size_mib)
        if reporting:
            wait_rss_below(vm, vm.rss() - 0.8 * size_mib * MIB, [], time.monotonic(), 120)
        rss0 = vm.rss() >> 20
        inflate = balloon_step(vm, (ram_mib - size_mib) * MIB, trace_log)
        deflate = balloon_step(vm, ram_mib * MIB, trace_log)
    os.unlink(trace_log)
    return {"rss_before_mib": rss0, "inflate": inflate, "deflate": deflate}


def run_reporting(guest, ram_mib, size_mib):
    """Touch size_mib, free it, time until QEMU's RSS has fallen by 80 % of it.
    blimp: from sending `free all`; Linux: from the end of the touching
    process (its exit frees the memory)."""
    with guest.vm(ram_mib, reporting=True) as vm:
        vm.wait_event("ready", timeout=600)
        if isinstance(guest, Blimp):
            free = guest.touch(vm, size_mib)
            touched = vm.rss()
            t0 = time.monotonic()
            free()
        else:
            guest.touch_and_free(vm, size_mib)
            t0 = time.monotonic()
            touched = vm.rss()
        samples = []
        t1 = wait_rss_below(vm, touched - 0.8 * size_mib * MIB, samples, t0, 300)
        return {"s": t1 - t0, "touched_rss_mib": touched >> 20, "rss_samples": samples}


def run_first_touch(guest, ram_mib, size_mib):
    """A fresh guest touches size_mib MiB, every page for the first time, and
    frees it: the guest's own milliseconds (guests.py's first_touch_ms)."""
    with guest.vm(ram_mib, reporting=False) as vm:
        vm.wait_event("ready", timeout=600)
        return guest.first_touch_ms(vm, size_mib)


def run_idle(guest, ram_mib):
    with guest.vm(ram_mib, reporting=False) as vm:
        vm.wait_event("ready", timeout=600)
        return guest.idle_used_bytes(vm)


# ------------------------------------------------------------------ host programs
def host_limit(size_mib, runs):
    exe = os.path.join(ROOT, "build", "bench", "host_limit")
    out = subprocess.run([exe, str(size_mib), str(runs)], check=True, capture_output=True, text=True)
    return {o["what"]: o["mib_per_s"] for o in map(json.loads, out.stdout.splitlines())}


def pfa_bench():
    exe = os.path.join(ROOT, "build", "bench", "pfa_bench")
    out = subprocess.run([exe], check=True, capture_output=True, text=True)
    return {o["what"]: o for o in map(json.loads, out.stdout.splitlines())}


def replace_bench():
    """Every replacement policy's faults against OPT (one JSON document). The
    program exits 1 if a policy beat OPT: check=True stops the bench then."""
    exe = os.path.join(ROOT, "build", "bench", "replace_bench")
    out = subprocess.run([exe], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


SWAP_NO_O_DIRECT = 3  # swap_ceiling: the file system refuses O_DIRECT


def swap_ceiling(out_dir, mib, runs):
    """The host's O_DIRECT throughput for a swap image of `mib` MiB in out_dir
    (the program unlinks it at once). "blimp" is the place for blimp's own
    swap-out and swap-in, in the host's shape (report.swap_table): filled from
    the runs' bench/swapio.py figures once they are in (swapio.ceiling_shape),
    None when they were not measured (no O_DIRECT here: QEMU's cache=none
    needs it too)."""
    exe = os.path.join(ROOT, "build", "bench", "swap_ceiling")
    image = os.path.join(out_dir, f"swap-ceiling-{os.getpid()}.img")
    res = {"image_mib": mib, "runs": runs, "dir": out_dir, "queue_depth": 1, "host": None,
           "blimp": None}
    out = subprocess.run([exe, image, str(mib), str(runs)], capture_output=True, text=True)
    if out.returncode == SWAP_NO_O_DIRECT:
        res["error"] = out.stderr.strip()
        return res
    if out.returncode != 0:
        raise RuntimeError(f"swap_ceiling exited {out.returncode}: {out.stderr.strip()}")
    res["host"] = {o["what"]: o["mib_per_s"] for o in map(json.loads, out.stdout.splitlines())}
    return res


def image_bytes():
    """blimp's kernel image: the ELF file and what it occupies once loaded."""
    path = os.path.join(ROOT, "build", "blimp.elf")
    out = subprocess.run(["readelf", "-lW", path], check=True, capture_output=True, text=True).stdout
    loaded = 0
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            loaded += int(f[5], 16)   # MemSiz
    return {"file": os.path.getsize(path), "loaded": loaded}


# ------------------------------------------------------------------ the squeeze
def squeeze_run(blimp, linux, out):
    """One run of the squeeze: {family: figures}, blimp then Linux."""
    return {g.family: run_squeeze(g, out) for g in (blimp, linux)}


def squeeze_only(raw, blimp, linux, args):
    for r in range(args.runs):
        squeeze = squeeze_run(blimp, linux, args.out)
        raw["runs"].append({"squeeze": squeeze})
        print(f"== squeeze {r + 1}/{args.runs}: " + report.squeeze_line(squeeze), flush=True)
    raw["squeeze_table"] = report.build_squeeze_table(raw)
    print(report.format_squeeze_table(raw))
    json_path = os.path.join(args.out, "squeeze.json")
    with open(json_path, "w") as f:
        json.dump(raw, f, indent=1)
    with open(os.path.join(args.out, "squeeze.md"), "w") as f:
        f.write(report.format_squeeze_markdown(raw))
    print(f"figures: {json_path}; table: {os.path.join(args.out, 'squeeze.md')}")


# ------------------------------------------------------------------ working-set scan
def wsscan_run(blimp, linux, quick):
    """One run of bench/wsscan.py: {guest name: figures}; Linux with 4 KiB
    pages and, in the full bench, as shipped (THP "always") too."""
    ram_mib, size_mib, rounds = wsscan.QUICK if quick else wsscan.FULL
    res = {blimp.name: wsscan.run_wsscan(blimp, ram_mib, size_mib, rounds),
           linux.name: wsscan.run_wsscan(linux, ram_mib, size_mib, rounds)}
    if not quick:
        res["linux-thp"] = wsscan.run_wsscan(linux, ram_mib, size_mib, rounds, thp=True)
    return res


def wserror_run(blimp, linux, quick):
    """One run of bench/wserror.py: {guest name: figures}; blimp steady and
    after a move and a growth, Linux (clear_refs + smaps) steady only."""
    ram_mib, size_mib, hots_mib, steady_s = wserror.QUICK if quick else wserror.FULL
    windows = wserror.LINUX_WINDOWS["quick" if quick else "full"]
    return {blimp.name: wserror.run_wserror(blimp, ram_mib, size_mib, hots_mib, steady_s),
            linux.name: wserror.run_wserror_linux(linux, ram_mib, size_mib, hots_mib, windows)}


# ------------------------------------------------------------------ any size of guest
def bigmem_only(raw, blimp, args):
    print(f"== any size of guest ({','.join(args.bigmem_sizes)} GiB, {args.bigmem_boots} boot(s) each)",
          flush=True)
    raw["bigmem"] = bigmem.run_bigmem(blimp, args.bigmem_sizes, args.bigmem_boots)
    print(report.format_bigmem_table(raw))
    json_path = os.path.join(args.out, "bigmem.json")
    with open(json_path, "w") as f:
        json.dump(raw, f, indent=1)
    with open(os.path.join(args.out, "bigmem.md"), "w") as f:
        f.write(report.format_bigmem_table(raw, report._markdown) + "\n")
    print(f"figures: {json_path}; table: {os.path.join(args.out, 'bigmem.md')}")


def gib_list(text):
    """--bigmem-sizes: GiB sizes, a "flat" suffix for RAM in one piece (bench/bigmem.py)."""
    sizes = [x for x in text.split(",") if x]
    try:
        for x in sizes:
            bigmem.parse_size(x)
    except ValueError:
        sizes = []
    if not sizes:
        raise argparse.ArgumentTypeError(f"{text!r}: expected GiB sizes such as 2,64,256,1024,1024flat")
    return sizes


# ------------------------------------------------------------------ main
def machine_description():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    qemu = qemu_version_line()
    return {"host": platform.node(), "cpu": cpu, "cpus": os.cpu_count(),
            "kernel": platform.release(), "qemu": qemu, "accel": "tcg",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1536)
    ap.add_argument("--report-mib", type=int, default=1024)
    ap.add_argument("--ram-mib", type=int, default=2048)
    ap.add_argument("--swap-mib", type=int, default=256, help="swap ceiling: the image's size")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--quick", action="store_true",
                    help="one run, small sizes, no squeeze (make test)")
    ap.add_argument("--squeeze-only", action="store_true",
                    help="measure only the squeeze (bench/squeeze.py), --runs times")
    ap.add_argument("--bigmem-only", action="store_true",
                    help="measure only the any-size-of-guest group (bench/bigmem.py)")
    ap.add_argument("--bigmem-sizes", type=gib_list, default=None,
                    help="guest sizes in GiB for that group, 'flat': RAM in one piece "
                         "(default 2,64,256,1024,1024flat; --quick 2,64)")
    ap.add_argument("--bigmem-boots", type=int, default=None,
                    help="boots a size for that group, median (default 3; --quick 1)")
    ap.add_argument("--microvm-only", action="store_true",
                    help="measure only the microvm boot row: blimp and the PVH floor, --runs times")
    ap.add_argument("--report", metavar="JSON",
                    help="measure nothing: print the table again from a bench.json")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as f:
            raw = json.load(f)
        if "host_limit" in raw:
            raw["table"] = report.build_table(raw)
            print(report.format_table(raw))
            print(report.format_markdown(raw))
        elif "bigmem" in raw:
            print(report.format_bigmem_table(raw))
        raw["squeeze_table"] = report.build_squeeze_table(raw)
        if raw["squeeze_table"]:
            print(report.format_squeeze_table(raw))
            print(report.format_squeeze_markdown(raw))
        return
    if args.microvm_only:
        microvm_only(args)
        return
    if args.quick and args.squeeze_only:
        ap.error("--quick runs no squeeze: --quick and --squeeze-only do not go together")
    if args.quick:
        args.runs, args.size_mib, args.report_mib, args.ram_mib = 1, 128, 128, 512
        args.swap_mib = 16
    if args.runs < 1 or not 0 < args.size_mib < args.ram_mib or not 0 < args.report_mib < args.ram_mib:
        ap.error("need runs >= 1 and 0 < size, report size < RAM")
    if args.swap_mib < 1:
        ap.error("need --swap-mib >= 1")
    big = bigmem.QUICK if args.quick else bigmem.FULL
    args.bigmem_sizes = args.bigmem_sizes or list(big["sizes_gib"])
    args.bigmem_boots = args.bigmem_boots or big["boots"]
    if args.bigmem_boots < 1:
        ap.error("need --bigmem-boots >= 1")
    os.makedirs(args.out, exist_ok=True)

    blimp, blimp_uefi = Blimp("pvh"), Blimp("uefi")
    raw = {"machine": machine_description(), "args": vars(args), "runs": []}
    if args.bigmem_only:   # blimp alone: no Linux guest needed
        bigmem_only(raw, blimp, args)
        return
    linux, linux_nozero = Linux(), Linux(init_on_alloc=0)
    balloon_guests = [blimp, linux, linux_nozero]
    boot_timeout = 600

    if args.squeeze_only:
        squeeze_only(raw, blimp, linux, args)
        return

    print(f"== host limits ({args.size_mib} MiB, {args.runs} runs)", flush=True)
    raw["host_limit"] = host_limit(args.size_mib, args.runs)
    print(json.dumps(raw["host_limit"]), flush=True)
    print("== allocator (host build)", flush=True)
    raw["pfa"] = pfa_bench()
    print("== page replacement (host build)", flush=True)
    raw["replace"] = replace_bench()
    print(f"== swap device ceiling ({args.swap_mib} MiB image, O_DIRECT, {args.runs} runs)",
          flush=True)
    raw["swap_ceiling"] = swap_ceiling(args.out, args.swap_mib, args.runs)
    print(json.dumps(raw["swap_ceiling"]["host"] or raw["swap_ceiling"].get("error")), flush=True)
    raw["image"] = image_bytes()

    for r in range(args.runs):
        run = {"boot_s": {}, "balloon": {}, "reporting_inflate": {}, "reporting": {}, "idle_bytes": {},
               "first_touch_ms": {}}
        boot_guests = [blimp, linux] + ([] if args.quick else [blimp_uefi])
        for g in boot_guests:
            run["boot_s"][g.name] = run_boot(g, args.ram_mib, boot_timeout)
        run["boot_s"]["blimp-microvm"] = run_boot_microvm(args.ram_mib, boot_timeout)
        run["boot_s"]["pvh-floor-microvm"] = run_pvh_floor(args.ram_mib, boot_timeout)
        run["boot_s"]["pvh-blocks-microvm"] = run_pvh_floor(args.ram_mib, boot_timeout, PVH_BLOCKS)
        for g in balloon_guests:
            run["balloon"][g.name] = run_inflate_deflate(g, args.ram_mib, args.size_mib, args.out)
        for g in (blimp, linux):
            run["reporting_inflate"][g.name] = run_inflate_deflate(g, args.ram_mib, args.size_mib,
                                                                   args.out, reporting=True)
        for g in (blimp, linux):
            run["reporting"][g.name] = run_reporting(g, args.ram_mib, args.report_mib)
        for g in (blimp, linux):
            run["idle_bytes"][g.name] = run_idle(g, args.ram_mib)
        for g in [blimp, linux] + ([] if args.quick else [linux_nozero]):
            run["first_touch_ms"][g.name] = run_first_touch(g, args.ram_mib, args.size_mib)
        if not raw["swap_ceiling"].get("error"):
            run["swap_io"] = swapio.run_swap_io(blimp, args.out,
                                                *(swapio.QUICK if args.quick else swapio.FULL))
        run["wsscan"] = wsscan_run(blimp, linux, args.quick)
        run["wserror"] = wserror_run(blimp, linux, args.quick)
        if not args.quick:
            run["squeeze"] = squeeze_run(blimp, linux, args.out)
        raw["runs"].append(run)
        print(f"== run {r + 1}/{args.runs}: " + report.run_line(run, args.size_mib), flush=True)

    print(f"== any size of guest ({','.join(args.bigmem_sizes)} GiB, {args.bigmem_boots} boot(s) each)",
          flush=True)
    raw["bigmem"] = bigmem.run_bigmem(blimp, args.bigmem_sizes, args.bigmem_boots)
    raw["swap_ceiling"]["blimp"] = swapio.ceiling_shape(
        [r["swap_io"] for r in raw["runs"] if r.get("swap_io")])
    table = report.build_table(raw)
    raw["table"] = table
    raw["squeeze_table"] = report.build_squeeze_table(raw)
    text = report.format_table(raw)
    print(text)
    if raw["squeeze_table"]:
        print()
        print(report.format_squeeze_table(raw))
    json_path = os.path.join(args.out, "bench.json")
    with open(json_path, "w") as f:
        json.dump(raw, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(report.format_markdown(raw))
        if raw["squeeze_table"]:
            f.write("\n" + report.format_squeeze_markdown(raw))
    plot = os.path.join(args.out, "rss.png")
    report.write_plot(raw, plot)
    print(f"figures: {json_path}; table: {os.path.join(args.out, 'table.md')}; plot: {plot}")


if __name__ == "__main__":
    main()
