"""bigmem: blimp's boot and balloon at any size of guest (issue 17).

The goal: `ready` within 10 ms of the 2 GiB guest's at any size up to
1 TiB, and the balloon as fast on a 1 TiB guest as on a small one. For each
size (2, 64, 256 GiB and 1 TiB; 2 and 64 in --quick) this boots blimp
`boots` times and takes, from each boot:
  - `ready`: its t_ms (the guest's clock since boot), and the host's
    seconds from QEMU's start to the line (blimp.vm's _host_time);
  - QEMU's resident memory right after `ready` (/proc, VmRSS): what the
    guest wrote at boot (an unreserved backend is only address space
    until then);
  - an inflate of 1 GiB and a deflate back, timed by the guest itself:
    `balloon_done`'s ms (from the new target to the balloon holding it),
    and by the host, QMP `balloon` to query-balloon showing the target;
and from the first boot only (they cost a lot on today's kernel):
  - `pfa`: metadata bytes per frame, and its invariant check;
  - an inflate of a quarter of the guest (the large share; 256 GiB at 1 TiB).

A size this host cannot hold (blimp.vm.host_room) is left out, with the
reason kept in the figures. Above 16 GiB blimp.vm gives the guest its RAM
from an unreserved backend (and phys-bits for 1 TiB) by itself.

Two layouts of 1 TiB: QEMU's own with qemu64 (an AMD CPU), which moves all
RAM above 4 GiB to 1 TiB (past the HyperTransport hole: guest frames from
1 TiB to 2046 GiB, a 1 TiB gap below them), and "flat" (`1024flat`: the
same CPU calling itself Intel, blimp.vm.flat_cpu_args), where it stays in
one piece from 4 GiB. The gap shows in the metadata per frame.
"""
import time

from blimp.units import GIB
from blimp.vm import flat_cpu_args, host_room

FULL = {"sizes_gib": ("2", "64", "256", "1024", "1024flat"), "boots": 3}
QUICK = {"sizes_gib": ("2", "64"), "boots": 1}
FLAT = "flat"               # a size's suffix: RAM in one piece (flat_cpu_args)
BASE_GIB = 2                # the figure every other size is held against
GOAL_MS = 10                # ready within this of the base's (issue 17)
SMALL_GIB = 1               # the small inflate, every boot
LARGE_SHARE = 4             # the large inflate: RAM / this, first boot only
TIMEOUT = 900               # generous: today's kernel inflates ~7 GiB/s under TCG


def step(vm, before, after):
    """One timed balloon step from holding `before` bytes to `after`: the
    guest's ms (balloon_done) and the host's s (QMP to query-balloon)."""
    t0 = time.monotonic()
    done = vm.balloon_hold(after, timeout=TIMEOUT)
    moved = abs(after - before) / GIB
    return {"gib": moved, "guest_ms": done["ms"], "host_s": round(time.monotonic() - t0, 4),
            "gib_per_s": moved / (done["ms"] / 1000) if done["ms"] else None}


def parse_size(text):
    """"256" -> (256, "qemu"); "1024flat" -> (1024, "flat"). ValueError if neither."""
    text = str(text)
    layout = FLAT if text.endswith(FLAT) else "qemu"
    gib = int(text[:-len(FLAT)] if layout == FLAT else text)
    if gib < 1:
        raise ValueError(f"{text!r}: a guest size is at least 1 GiB")
    return gib, layout


def one_boot(blimp, gib, layout, first):
    ram = gib * GIB
    extra = flat_cpu_args(f"{gib}G") if layout == FLAT else []
    with blimp.vm(gib * 1024, reporting=False, extra_args=extra) as vm:
        ready = vm.wait_event("ready", timeout=TIMEOUT)
        res = {"ready_ms": ready["t_ms"], "ready_host_s": round(ready["_host_time"], 4),
               "rss_mib": vm.rss() >> 20, "mem_usable": ready["mem_usable"],
               "mem_above_4g": ready["mem_above_4g"]}
        if ready["mem_usable"] < ram - (64 << 20):
            vm.fail(f"a {gib} GiB guest sees {ready['mem_usable']} bytes usable")
        if first:
            pfa = vm.shell_event("pfa", timeout=TIMEOUT)
            if pfa["check"] != "ok":
                vm.fail(f"pfa's invariant check at {gib} GiB: {pfa['check']}")
            res["pfa"] = {k: pfa[k] for k in ("managed", "meta_bytes",
                                               "meta_millibytes_per_frame", "check")}
        small = SMALL_GIB * GIB
        res["inflate_small"] = step(vm, 0, small)
        res["deflate_small"] = step(vm, small, 0)
        if first:
            large = ram // LARGE_SHARE
            res["inflate_large"] = step(vm, 0, large)
        return res


def _speed(r):
    return f"{r['gib_per_s']:.1f} GiB/s" if r["gib_per_s"] else f"{r['guest_ms']} ms"


def run_bigmem(blimp, sizes_gib, boots, log=print):
    """{"sizes": [{gib, layout, boots: [...]} or {gib, layout, skipped: reason}], ...};
    sizes_gib as parse_size reads them ("2", "1024flat")."""
    out = {"boots": boots, "base_gib": BASE_GIB, "goal_ms": GOAL_MS, "small_gib": SMALL_GIB,
           "large_share": LARGE_SHARE, "sizes": []}
    for text in sizes_gib:
        gib, layout = parse_size(text)
        name = f"{gib} GiB" + (f" ({layout})" if layout != "qemu" else "")
        why = host_room(f"{gib}G")
        if why:
            log(f"   {name}: not run: {why}")
            out["sizes"].append({"gib": gib, "layout": layout, "skipped": why})
            continue
        t0 = time.monotonic()
        runs = [one_boot(blimp, gib, layout, first=b == 0) for b in range(boots)]
        out["sizes"].append({"gib": gib, "layout": layout, "boots": runs,
                             "wall_s": round(time.monotonic() - t0, 1)})
        log(f"   {name}: ready " + "/".join(str(r["ready_ms"]) for r in runs) + " ms, inflate "
            f"1 GiB {_speed(runs[0]['inflate_small'])}, 1/{LARGE_SHARE} of RAM "
            f"{_speed(runs[0]['inflate_large'])}, RSS {runs[0]['rss_mib']} MiB "
            f"({time.monotonic() - t0:.0f} s)", flush=True)
    return out
