"""wsscan: what working-set scanning costs, blimp's aging hand against Linux's
Accessed-bit scan, per GiB of resident memory per period (issue 15).

Both guests hold the same resident size in a running workload that keeps
touching it, and both estimate its working set the same way, from the PTE
Accessed bits: read them, clear them, once a period.

blimp: the aging hand (kernel/vm_age.c) visits every resident page once a
round (vm.age_ms, default 1000 ms) and reads and clears its Accessed bit.
The workload is `run w size=SIZE pattern=uniform write=30 seed=1` (its fill
writes every page once first). Its `ws` event, once a round, gives the last
full round's pages visited (round_pages) and the guest's microseconds spent
on them (round_us, clock_ns around each tick's batch). The rounds counted
are those that began after the fill ended (the first `ws` event after the
first `workload` event with accesses > 0 is dropped: its round began while
the fill was still going on).

Linux (the reference guest, bench/linux: Debian's cloud kernel, no
CONFIG_IDLE_PAGE_TRACKING): the classic estimate, `cat /proc/PID/smaps` (the
Referenced: lines: the pages used since the last clear) and
`echo 1 > /proc/PID/clear_refs` (clears every Accessed bit of the process),
timed by the guest's own clock in its init's `wss` command, pressmem
stopped for the span (bench/linux/init.sh). pressmem holds the same size:
`pressmem SIZE 1 0 30 SECONDS 1` (no accesses to its 1 MiB hot set: uniform
over the rest, 30 % writes). The scan's cost is clear_ns minus one clock
read, plus smaps_ns minus exec_ns (a `cat` of a small file: the fork and
exec that are not the scan). The guest boots with transparent_hugepage=never
so both scan 4 KiB pages; Debian ships THP "always", under which
clear_refs and smaps see one PMD per 2 MiB (the full bench measures that as
well, as "linux-thp").

Each guest: `rounds` periods after one dropped, median; per GiB = the
period's cost * (GiB in pages / pages scanned). blimp's CPU share at its
round is round_us / (round_ms * 1000); the same for Linux if it scanned
once a second.

    run_wsscan(guest, ram_mib, size_mib, rounds, thp=False) -> dict
"""
import time
from statistics import median

from blimp.units import MIB, PAGE
from squeeze import _wait_workload

GIB_PAGES = 1024 * MIB // PAGE
# (guest MiB, resident MiB, rounds measured)
FULL = (2048, 1024, 5)
QUICK = (512, 192, 3)
WORKLOAD = "w"
PRESS_SECONDS = 36000          # longer than any run: pressmem is killed with its guest
LINUX_NO_THP = "transparent_hugepage=never"


def run_wsscan(guest, ram_mib, size_mib, rounds, thp=False):
    """One guest's scan cost: {"ms_per_gib", "pages", "periods": [...]},
    per period and as the median of `rounds` of them."""
    if guest.family == "blimp":
        with guest.vm(ram_mib, reporting=False) as vm:
            periods = _blimp(vm, size_mib, rounds)
    else:
        with guest.vm(ram_mib, reporting=False, append="" if thp else LINUX_NO_THP) as vm:
            periods = _linux(vm, size_mib, rounds)
    res = {"ram_mib": ram_mib, "size_mib": size_mib, "rounds": rounds, "periods": periods,
           "ms_per_gib": median([p["ms_per_gib"] for p in periods]),
           "ms": median([p["ms"] for p in periods]),
           "pages": median([p["pages"] for p in periods])}
    if guest.family == "blimp":
        res["round_ms"] = periods[0]["round_ms"]
        res["cpu_share"] = median([p["cpu_share"] for p in periods])
    else:
        res["thp"] = thp
        res["anon_huge_kib"] = max(p["anon_huge_kib"] for p in periods)
    return res


def _blimp(vm, size_mib, rounds):
    vm.wait_event("ready", timeout=600)
    vm.shell(f"run {WORKLOAD} size={size_mib}M pattern=uniform write=30 seed=1")
    filled = _wait_workload(vm, WORKLOAD, lambda e: e["accesses"] > 0, 600,
                            "the end of the fill (accesses > 0)")

    def after_fill():
        return [e for e in vm.events_named("ws") if e["t_ms"] > filled["t_ms"]]
    vm.wait_for(lambda: len(after_fill()) > rounds or None, 60 + 10 * rounds,
                f"{rounds + 1} `ws` events after the fill")
    periods = []
    for e in after_fill()[1:rounds + 1]:
        if not e["round_pages"]:
            vm.fail(f"a round after the fill visited no page: {e}")
        periods.append({"ms": e["round_us"] / 1000, "pages": e["round_pages"],
                        "resident": e["resident"], "round_ms": e["round_ms"],
                        "ms_per_gib": e["round_us"] / 1000 * GIB_PAGES / e["round_pages"],
                        "cpu_share": e["round_us"] / (e["round_ms"] * 1000)})
    vm.shell(f"stop {WORKLOAD}", timeout=120)
    return periods


def _linux(vm, size_mib, rounds):
    vm.wait_event("ready", timeout=600)
    ev, _ = vm.shell(f"press {size_mib} 1 0 30 {PRESS_SECONDS} 1")
    pid = ev["pid"]
    vm.wait_line("pressmem: touched", timeout=600)
    periods = []
    for i in range(rounds + 1):
        time.sleep(1)           # a period of pressmem's accesses between scans
        e = vm.shell_event(f"wss {pid}", timeout=120)
        if i == 0:
            continue            # its Referenced is the fill's; the others' a period's
        clear = e["clear_ns"] - e["clock_ns"]
        smaps = e["smaps_ns"] - e["exec_ns"]
        pages = e["rss_kib"] * 1024 // PAGE
        ms = (clear + smaps) / 1e6
        periods.append({"ms": ms, "pages": pages, "clear_ms": clear / 1e6, "smaps_ms": smaps / 1e6,
                        "referenced_pages": e["referenced_kib"] * 1024 // PAGE,
                        "anon_huge_kib": e["anon_huge_kib"], "raw": {
                            k: e[k] for k in ("clock_ns", "smaps_ns", "exec_ns", "clear_ns")},
                        "ms_per_gib": ms * GIB_PAGES / pages})
    return periods
