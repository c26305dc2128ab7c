"""balloon_bench: how fast blimp's balloon moves memory, measured from the host.

For each run: boot blimp (PVH, q35, 2 GiB), touch and free SIZE (default
1536 MiB) with reporting off, then time QMP `balloon` -> `query-balloon`
showing the target (inflate by SIZE), and back (deflate), noting QEMU's RSS;
then, with reporting on, time from the end of `free` to QEMU's RSS having
fallen by 80 % of what was freed. Prints JSON lines and a summary with
min/median/max. Figures are from this machine, this run: nothing is assumed.

    /usr/bin/python3 bench/balloon_bench.py [--runs 5] [--size-mib 1536]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from blimpvm import BlimpVM  # noqa: E402

MIB = 1 << 20
RAM_MIB = 2048


def wait_actual(vm, want, timeout=300):
    deadline = time.monotonic() + timeout
    while vm.qmp.execute("query-balloon")["actual"] != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"actual never reached {want}")
        time.sleep(0.002)
    return time.monotonic()


def inflate_deflate(size_mib):
    with BlimpVM(mem=f"{RAM_MIB}M", devices=["virtio-balloon-pci,id=bal0"],
                 append="balloon.no_reporting") as vm:
        vm.wait_event("ready", timeout=60)
        vm.shell(f"alloc {size_mib}M", timeout=600)
        vm.shell("free all", timeout=600)
        rss0 = vm.rss()
        t0 = time.monotonic()
        vm.qmp.execute("balloon", value=(RAM_MIB - size_mib) * MIB)
        t1 = wait_actual(vm, (RAM_MIB - size_mib) * MIB)
        rss1 = vm.rss()
        vm.qmp.execute("balloon", value=RAM_MIB * MIB)
        t2 = wait_actual(vm, RAM_MIB * MIB)
        return {"inflate_mib_s": size_mib / (t1 - t0), "deflate_mib_s": size_mib / (t2 - t1),
                "rss_before_mib": rss0 >> 20, "rss_after_inflate_mib": rss1 >> 20}


def reporting(size_mib):
    with BlimpVM(mem=f"{RAM_MIB}M", devices=["virtio-balloon-pci,id=bal0,free-page-reporting=on"]) as vm:
        vm.wait_event("ready", timeout=60)
        vm.shell(f"alloc {size_mib}M", timeout=600)
        touched = vm.rss()
        vm.shell("free all", timeout=600)
        t0 = time.monotonic()
        goal = touched - 0.8 * size_mib * MIB
        while vm.rss() > goal:
            if time.monotonic() - t0 > 60:
                raise RuntimeError("reporting never returned 80 %")
            time.sleep(0.005)
        return {"report_80pct_s": time.monotonic() - t0}


def summary(name, values, unit):
    return {"what": name, "unit": unit, "median": round(statistics.median(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3), "runs": len(values)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1536)
    ap.add_argument("--json", default=None, help="also write the summary here")
    args = ap.parse_args()
    rows = []
    for r in range(args.runs):
        row = inflate_deflate(args.size_mib)
        row.update(reporting(args.size_mib))
        print(json.dumps({"run": r, **row}), flush=True)
        rows.append(row)
    out = [summary("inflate", [r["inflate_mib_s"] for r in rows], "MiB/s"),
           summary("deflate", [r["deflate_mib_s"] for r in rows], "MiB/s"),
           summary("reporting_80pct", [r["report_80pct_s"] for r in rows], "s")]
    for o in out:
        print(json.dumps(o))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
