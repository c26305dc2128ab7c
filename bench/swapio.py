"""swapio: blimp's own swap-out and swap-in throughput, for the swap ceiling
table's blimp row (report.swap_table), against the host's O_DIRECT limit
(bench/swap_ceiling.c).

A guest smaller than its workload, with a swap disk, runs a sequential scan
that writes every page it touches:

    run s size=SIZE pattern=seq write=100 count=PASSES*PAGES

The fill (every page written once) already pushes the pages that do not fit
out to swap; after it every access finds its page in swap (the scan comes
back to it only after touching everything else): a major fault, one
synchronous 4 KiB read, and the page, now dirty, is written out again when
reclaim takes it, in runs of up to 64 adjacent slots (256 KiB, one blk_write;
blk keeps up to 8 requests of the device's size in flight).

(Readahead is turned off, vm.readahead=1: a scan would otherwise read
several pages per request, and the comparison is with the host's 4 KiB
reads.) So the two directions map onto the host's two rows: swap-in is 4 KiB reads
one at a time (the host's "4 KiB" read, queue depth 1, the same), swap-out
is 256 KiB writes (the host's "256 KiB" write, at queue depth 1 where blimp
may have several requests in flight). The disk is opened by QEMU with
cache=none (O_DIRECT), as the host program opens its image: without it,
QEMU's writeback cache would answer reads from the host's page cache.

Figures, from the `swap` command before and after the workload and its
`workload_done` event:
  - device time: pages_out * 4096 / write_ms and pages_in * 4096 / read_ms,
    the time the kernel waited in blk_write/blk_read (swap.c);
  - end to end: the same bytes over the workload's whole time (its `ms`,
    guest clock), faults, copies, reclaim and the workload's own checks
    included; both directions run at once, so the two are not additive.
"""
import os

from blimp.units import MIB, PAGE
from squeeze import BLIMP_SWAP, swap_args

# (guest MiB, workload MiB, passes over it after the fill)
FULL = (128, 192, 2)      # about 14 s under TCG
QUICK = (64, 96, 1)       # about 3 s


def run_swap_io(guest, out_dir, ram_mib, size_mib, passes):
    """One measurement: {"out_mib_per_s", "in_mib_per_s", "e2e_out_mib_per_s",
    "e2e_in_mib_per_s", and the counters behind them}."""
    image = os.path.join(out_dir, f"swapio-{guest.name}-{os.getpid()}.img")
    with open(image, "wb") as f:
        f.truncate(2 * size_mib * MIB)      # sparse; room for every page twice over
    try:
        with guest.vm(ram_mib, reporting=False, extra_args=swap_args(image, cache="none"),
                      append=f"{BLIMP_SWAP} vm.readahead=1") as vm:
            vm.wait_event("ready", timeout=600)
            sw0 = vm.shell_event("swap")
            if sw0["dev"] < 0:
                vm.fail(f"{BLIMP_SWAP} given, but blimp has no swap: {sw0}")
            pages = size_mib * MIB // PAGE
            vm.shell(f"run s size={size_mib}M pattern=seq write=100 count={passes * pages}")
            done = vm.wait_event("workload_done", timeout=900, where={"name": "s"})
            sw1 = vm.shell_event("swap")
    finally:
        os.unlink(image)
    d = {k: sw1[k] - sw0[k] for k in ("pages_out", "pages_in", "writes", "reads", "write_ms",
                                      "read_ms", "write_errors", "read_errors")}
    if d["write_errors"] or d["read_errors"] or not d["write_ms"] or not d["read_ms"]:
        raise RuntimeError(f"blimp's swap I/O measurement went wrong: {d}")
    out_mib, in_mib = d["pages_out"] * PAGE / MIB, d["pages_in"] * PAGE / MIB
    return {"ram_mib": ram_mib, "size_mib": size_mib, "passes": passes, "ms": done["ms"],
            "majflt": done["majflt"], **d,
            "pages_per_write": d["pages_out"] / d["writes"],
            "out_mib_per_s": out_mib / (d["write_ms"] / 1000),
            "in_mib_per_s": in_mib / (d["read_ms"] / 1000),
            "e2e_out_mib_per_s": out_mib / (done["ms"] / 1000),
            "e2e_in_mib_per_s": in_mib / (done["ms"] / 1000)}


def ceiling_shape(measurements):
    """The runs' figures in the host's shape (report.swap_table): swap-out in
    the 256 KiB write column, swap-in in the 4 KiB read one, end to end apart."""
    if not measurements:
        return None
    m = measurements
    return {"write_256k": [x["out_mib_per_s"] for x in m],
            "read_4k": [x["in_mib_per_s"] for x in m],
            "e2e_out": [x["e2e_out_mib_per_s"] for x in m],
            "e2e_in": [x["e2e_in_mib_per_s"] for x in m],
            "pages_per_write": [x["pages_per_write"] for x in m],
            "ram_mib": m[0]["ram_mib"], "size_mib": m[0]["size_mib"], "passes": m[0]["passes"]}
