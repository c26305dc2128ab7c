"""report: bench.py's raw figures turned into the table, its Markdown form and a plot.

Every cell is median (min-max) over the runs of this bench. "ratio" is how
many times better blimp is than Linux (speed / speed, or time / time the
other way round), so above 1 is blimp ahead; "% of limit" is blimp's median
against the host's median ceiling for the same work.

Two tables follow it, from host programs alone: page replacement (every
policy's faults against Belady's OPT, bench/replace_bench.c) and the swap
device ceiling (the host's O_DIRECT throughput, bench/swap_ceiling.c, with
blimp's own swap-out and swap-in beside it, bench/swapio.py). Then the cost
of a first-touch fault, blimp and Linux, each by its own clock, and the
cost of working-set scanning (bench/wsscan.py): blimp's aging hand against
Linux's clear_refs + smaps, per GiB resident per period. Last, the
working-set estimate's error (bench/wserror.py): blimp's `ws` against the
hot set the bench set, steady and after a move and a growth, beside the
bound (the truth itself, late by tau + a round). And any size of guest
(bench/bigmem.py, issue 17): blimp's `ready`, QEMU's RSS and the balloon's
speed at 2 GiB up to 1 TiB, each size's `ready` against the 2 GiB one's.
"""
import statistics

from blimp.units import MIB, PAGE


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def spread(values, fmt):
    """Figures of several runs as one cell, each formatted by fmt: the
    median, and (min-max) when they differ; "—" when none is known. The
    multi-guest and host-swapping experiments' tables (policy.py,
    hostswap.py)."""
    s = stats(values)
    if s is None:
        return "—"
    low, high = fmt(s["min"]), fmt(s["max"])
    if s["n"] > 1 and low != high:
        return f"{fmt(s['median'])} ({low}-{high})"
    return fmt(s["median"])


def _per_run(raw, fn):
    out = []
    for run in raw["runs"]:
        try:
            out.append(fn(run))
        except KeyError:
            pass
    return stats(out)


def build_table(raw):
    size = raw["args"]["size_mib"]
    rep = raw["args"]["report_mib"]
    lim = {k: stats(v) for k, v in raw["host_limit"].items()}
    rows = []

    def row(figure, unit, blimp, linux, better, limit=None, note=""):
        ratio = None
        if better != "none" and blimp and linux and blimp["median"] and linux["median"]:
            ratio = (blimp["median"] / linux["median"] if better == "higher"
                     else linux["median"] / blimp["median"])
        pct = 100 * blimp["median"] / limit["median"] if blimp and limit else None
        rows.append({"figure": figure, "unit": unit, "blimp": blimp, "linux": linux,
                     "ratio": ratio, "limit": limit, "pct_of_limit": pct, "note": note})

    boot = lambda name: _per_run(raw, lambda r: r["boot_s"][name] * 1000)  # noqa: E731
    row("boot to ready, PVH", "ms", boot("blimp-pvh"), boot("linux"), "lower",
        note="Linux: bzImage + initramfs to its shell")
    if any("blimp-microvm" in r["boot_s"] for r in raw["runs"]):
        row("boot to ready, PVH on microvm", "ms", boot("blimp-microvm"), None, "none",
            boot("pvh-floor-microvm"), "limit: a PVH kernel's first console line, same QEMU options")
    if any("pvh-blocks-microvm" in r["boot_s"] for r in raw["runs"]):
        row("boot to ready, PVH on microvm: the floor after 1650 blocks", "ms", boot("pvh-blocks-microvm"),
            None, "none", boot("pvh-floor-microvm"),
            "TCG translating as many blocks as blimp's boot, no other work")
    if any("blimp-uefi" in r["boot_s"] for r in raw["runs"]):
        row("boot to ready, UEFI (OVMF)", "ms", boot("blimp-uefi"), boot("linux"), "lower")

    def speed(kind, name, step):
        return _per_run(raw, lambda r: size / r[kind][name][step]["s"])

    def host_pct(kind, name, step):
        return _per_run(raw, lambda r: 100 * r[kind][name][step]["host_s"] / r[kind][name][step]["s"])

    def host_speed(kind, name, step):
        return _per_run(raw, lambda r: size / r[kind][name][step]["host_s"])

    for step, limit_key, what in (("inflate", "dontneed_4k_touched", "DONTNEED 4 KiB"),
                                  ("deflate", "willneed_4k_absent", "WILLNEED 4 KiB")):
        row(f"{step} {size} MiB vs Linux as shipped", "MiB/s", speed("balloon", "blimp-pvh", step),
            speed("balloon", "linux", step), "higher", lim[limit_key], f"limit: {what}")
        row(f"{step} {size} MiB vs Linux init_on_alloc=0", "MiB/s",
            speed("balloon", "blimp-pvh", step), speed("balloon", "linux-init_on_alloc=0", step),
            "higher", lim[limit_key], f"limit: {what}")
        row(f"{step}: QEMU's share of the time", "%", host_pct("balloon", "blimp-pvh", step),
            host_pct("balloon", "linux", step), "none",
            note="kick to last completion, traced; the rest is the guest's")
        row(f"{step}: QEMU's handling alone", "MiB/s", host_speed("balloon", "blimp-pvh", step),
            host_speed("balloon", "linux", step), "higher", lim[limit_key],
            note="size / QEMU's share: the rate with a guest that took no time")
    row(f"inflate {size} MiB, reporting on (already reported)", "MiB/s",
        speed("reporting_inflate", "blimp-pvh", "inflate"),
        speed("reporting_inflate", "linux", "inflate"), "higher", lim["dontneed_4k_touched"],
        "limit: DONTNEED 4 KiB over touched memory")
    row(f"reporting: 80 % of {rep} MiB back to the host", "s",
        _per_run(raw, lambda r: r["reporting"]["blimp-pvh"]["s"]),
        _per_run(raw, lambda r: r["reporting"]["linux"]["s"]), "lower")
    row("QEMU RSS before inflating (touched, freed)", "MiB",
        _per_run(raw, lambda r: r["balloon"]["blimp-pvh"]["rss_before_mib"]),
        _per_run(raw, lambda r: r["balloon"]["linux"]["rss_before_mib"]), "none")
    row(f"QEMU RSS after inflating {size} MiB", "MiB",
        _per_run(raw, lambda r: r["balloon"]["blimp-pvh"]["inflate"]["rss_after_mib"]),
        _per_run(raw, lambda r: r["balloon"]["linux"]["inflate"]["rss_after_mib"]), "lower")
    row("guest memory in use at idle", "MiB",
        _per_run(raw, lambda r: r["idle_bytes"]["blimp-pvh"] / MIB),
        _per_run(raw, lambda r: r["idle_bytes"]["linux"] / MIB), "lower",
        note="blimp: usable - allocator free; Linux: MemTotal - MemFree")
    pfa = raw["pfa"]
    for key, label in (("alloc_free_4k", "allocator: alloc+free 4 KiB"),
                       ("alloc_free_2m", "allocator: alloc+free 2 MiB")):
        p = pfa[key]
        row(label, "M pairs/s", {"median": p["median"] / 1e6, "min": p["min"] / 1e6,
                                 "max": p["max"] / 1e6, "n": 5}, None, "none", note="host build")
    meta = pfa["metadata"]
    one = lambda v: {"median": v, "min": v, "max": v, "n": 1}  # noqa: E731
    row("allocator metadata", "% of RAM", one(meta["percent_of_ram"]), None, "none",
        note=f"{meta['bytes_per_frame']:.3f} bytes per 4 KiB frame")
    row("kernel image (loaded)", "KiB", one(raw["image"]["loaded"] / 1024), None, "none",
        note=f"ELF file {raw['image']['file'] // 1024} KiB")
    return rows


def _cell(s, digits=None):
    if s is None:
        return "-"
    m = s["median"]
    d = digits if digits is not None else (0 if abs(m) >= 100 else 1 if abs(m) >= 10 else 2 if abs(m) >= 1 else 3)
    if s.get("n", 1) > 1 and s["min"] != s["max"]:
        return f"{m:.{d}f} ({s['min']:.{d}f}-{s['max']:.{d}f})"
    return f"{m:.{d}f}"


def _cells(r):
    return [f"{r['figure']} [{r['unit']}]", _cell(r["blimp"]), _cell(r["linux"]),
            f"{r['ratio']:.2f}x" if r["ratio"] else "-", _cell(r["limit"]),
            f"{r['pct_of_limit']:.0f} %" if r["pct_of_limit"] is not None else "-", r["note"]]


HEAD = ["figure", "blimp", "Linux", "ratio", "host limit", "% of limit", "note"]


def _header(raw):
    m = raw["machine"]
    a = raw["args"]
    return (f"{m['date']} on {m['host']}: {m['cpus']} x {m['cpu']}, host kernel {m['kernel']}, "
            f"{m['qemu']}, {m['accel'].upper()}; guests {a['ram_mib']} MiB, 1 vCPU, q35; "
            f"{a['runs']} run(s), median (min-max). One run of one machine: the figures are this "
            f"machine's, measured in this run.")


def _text(head, rows):
    rows = [head] + rows
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _markdown(head, rows):
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(r) + " |" for r in rows])


def _tables(raw, fmt):
    """The main table, then the host programs' own tables (runs saved before
    they existed have none), each under its title."""
    lines = [_header(raw), ""] + fmt(HEAD, [_cells(r) for r in raw["table"]])
    for title, about, head, rows in (replace_table(raw), swap_table(raw), first_touch_table(raw),
                                     wsscan_table(raw)):
        if rows:
            lines += ["", f"{title}: {about}", ""] + fmt(head, rows)
    headline = wsscan_headline(raw)
    if headline:
        lines += ["", headline]
    title, about, head, rows = wserror_table(raw)
    if rows:
        lines += ["", f"{title}: {about}", ""] + fmt(head, rows)
        lines += ["", wserror_headline(raw)]
    lines += bigmem_lines(raw, fmt)
    return lines


def format_table(raw):
    return "\n".join(_tables(raw, _text))


def format_markdown(raw):
    return "\n".join(_tables(raw, _markdown)) + "\n"


# ------------------------------------------------------------------ page replacement
REPLACE_TITLE = "page replacement: faults vs Belady's OPT"


def replace_table(raw):
    """bench/replace_bench's figures: a row per reference string and frame
    count, a column per policy with its faults and their ratio to OPT's;
    write-backs where the string writes. The note names the policies that
    fault more with these frames than with the string's previous, smaller
    count (Belady's anomaly: OPT and LRU, stack algorithms, never do)."""
    rep = raw.get("replace")
    if not rep:
        return REPLACE_TITLE, "", [], []
    pols = rep["policies"]
    head = ["string", "frames"] + [p.upper() for p in pols] + ["write-backs " + "/".join(
        p.upper() for p in pols), "note"]
    rows = []
    for st in rep["strings"]:
        prev = None
        for run in st["runs"]:
            cells = [st["name"], str(run["frames"])]
            for p in pols:
                r = run[p]
                cells.append(str(r["faults"]) if p == "opt"
                             else f"{r['faults']} ({r['ratio_to_opt']:.2f}x)")
            cells.append("/".join(str(run[p]["writebacks"]) for p in pols)
                         if st["write_pct"] else "-")
            worse = [p.upper() for p in pols if prev and run[p]["faults"] > prev[p]["faults"]]
            cells.append(f"anomaly: {', '.join(worse)} fault more than with {prev['frames']}"
                         if worse else (st["what"] if prev is None else ""))
            rows.append(cells)
            prev = run
    about = (f"{len(rep['strings'])} reference strings (fixed seeds), faults and ratio to OPT "
             f"(the optimum: every ratio >= 1, checked); host build of kernel/replace.c")
    return REPLACE_TITLE, about, head, rows


# ------------------------------------------------------------------ swap ceiling
SWAP_TITLE = "swap device ceiling (host, O_DIRECT)"
SWAP_REQUESTS = ((4, "4 KiB requests (1 page)"), (256, "256 KiB requests (cluster of 64 pages)"))


def swap_table(raw):
    """bench/swap_ceiling's figures: sequential O_DIRECT write and read of an
    image at queue depth 1, a row per request size, median (min-max) MiB/s.
    The blimp columns are blimp's own swap-out and swap-in through
    virtio-blk (bench/swapio.py), in the host's shape: {"write_256k": [MiB/s
    per run], "read_4k": [...]} -- blimp writes runs of 64 pages and reads
    one page per fault, so its other cells are "-" -- and "% of limit" is
    blimp's median against the host's. "e2e_out"/"e2e_in" (the same bytes
    over the workload's whole time) make a row of their own. None: not
    measured ("not measured yet", as in a bench.json from before)."""
    sw = raw.get("swap_ceiling")
    if not sw:
        return SWAP_TITLE, "", [], []
    head = ["request", "host write [MiB/s]", "host read [MiB/s]", "blimp swap-out [MiB/s]",
            "blimp swap-in [MiB/s]", "% of limit (out/in)"]
    if sw.get("error"):
        return SWAP_TITLE, f"not measured: {sw['error']}", head, []
    host, blimp = sw["host"], sw.get("blimp")
    rows = []
    for kib, label in SWAP_REQUESTS:
        hw, hr = stats(host[f"write_{kib}k"]), stats(host[f"read_{kib}k"])
        if blimp:
            bw, br = stats(blimp.get(f"write_{kib}k", [])), stats(blimp.get(f"read_{kib}k", []))
            pct = "/".join(f"{100 * b['median'] / h['median']:.0f} %" if b and h else "-"
                           for b, h in ((bw, hw), (br, hr)))
            rows.append([label, _cell(hw), _cell(hr), _cell(bw), _cell(br), pct])
        else:
            rows.append([label, _cell(hw), _cell(hr), "blimp: not measured yet",
                         "blimp: not measured yet", "-"])
    if blimp and blimp.get("e2e_out"):
        rows.append(["blimp end to end (workload's wall time)", "-", "-",
                     _cell(stats(blimp["e2e_out"])), _cell(stats(blimp["e2e_in"])), "-"])
    about = (f"a {sw['image_mib']} MiB image in {sw['dir']}, sequential, one request at a time, "
             f"write passes end with fdatasync; {sw['runs']} run(s), median (min-max)")
    if blimp:
        ppw = stats(blimp["pages_per_write"])
        about += (f". blimp: a {blimp['ram_mib']} MiB guest, `run s size={blimp['size_mib']}M "
                  f"pattern=seq write=100`, {blimp['passes']} pass(es) after the fill (every access "
                  f"a major fault), swap disk cache=none (O_DIRECT); device time from the `swap` "
                  f"event (pages_out/write_ms: runs of {ppw['median']:.0f} pages per write, up to 8 "
                  f"requests in flight; pages_in/read_ms: one 4 KiB read per fault), end to end "
                  f"over the workload's time, both directions at once")
    return SWAP_TITLE, about, head, rows


# ------------------------------------------------------------------ first touch
FIRST_TOUCH_TITLE = "first-touch (minor) fault"


def first_touch_table(raw):
    """ns per page of touching fresh memory once and freeing it, each guest by
    its own clock, in a fresh guest (so QEMU's first touch of the host's
    memory is in both): blimp's workload fill (a #PF, a zeroed frame mapped,
    8 words checked and written: `run ft size=N pattern=seq count=1`,
    workload_done's ms), Linux's touchmem (mmap, one byte per page, munmap)."""
    runs = [r["first_touch_ms"] for r in raw["runs"] if r.get("first_touch_ms")]
    if not runs:
        return FIRST_TOUCH_TITLE, "", [], []
    size = raw["args"]["size_mib"]
    pages = size * MIB // 4096
    names = []
    for r in runs:
        names += [n for n in r if n not in names]
    per_page = {n: stats([1e6 * r[n] / pages for r in runs if n in r]) for n in names}
    blimp = per_page.get("blimp-pvh")
    head = ["guest", "ns per first touch", "faults/s", "blimp faster by", "how"]
    how = {"blimp-pvh": "workload fill: #PF, zeroed frame, 8 words checked and written",
           "linux": "touchmem: one byte per page (init_on_alloc=1 as shipped)",
           "linux-init_on_alloc=0": "touchmem, init_on_alloc=0"}
    rows = []
    for n in names:
        st = per_page[n]
        rate = {k: 1e9 / v for k, v in st.items() if k in ("median", "min", "max")}
        rate = {"median": rate["median"], "min": rate["max"], "max": rate["min"], "n": st["n"]}
        ratio = (f"{st['median'] / blimp['median']:.2f}x" if blimp and n != "blimp-pvh" else "-")
        rows.append([n, _cell(st), _cell(rate, 0), ratio, how.get(n, "")])
    about = (f"{size} MiB ({pages} pages) touched once and freed in a fresh {raw['args']['ram_mib']} "
             f"MiB guest, by the guest's own clock, freeing included; median (min-max) of "
             f"{len(runs)} run(s). Under TCG both pay the same host costs (QEMU's first touch of "
             f"its RAM, soft-MMU refills)")
    return FIRST_TOUCH_TITLE, about, head, rows


# ------------------------------------------------------------------ working-set scan
WSSCAN_TITLE = "working-set scan: Accessed bits read and cleared, per GiB resident per period"


def wsscan_summary(raw):
    """The headline: {"blimp", "linux"} median ms per GiB resident per period
    over every period of every run (None when not measured)."""
    runs = [r["wsscan"] for r in raw["runs"] if r.get("wsscan")]

    def med(name):
        st = stats([p["ms_per_gib"] for r in runs if name in r for p in r[name]["periods"]])
        return st["median"] if st else None
    return {"blimp": med("blimp-pvh"), "linux": med("linux")}


def wsscan_headline(raw):
    """One sentence under the table: both guests' median per GiB, and the
    CPU share blimp's hand costs at its round (None when not measured)."""
    s = wsscan_summary(raw)
    if s["blimp"] is None or s["linux"] is None:
        return None
    runs = [r["wsscan"]["blimp-pvh"] for r in raw["runs"] if r.get("wsscan")]
    share = stats([p["cpu_share"] * 100 for f in runs for p in f["periods"]])["median"]
    per_gib_share = stats([p["cpu_share"] * 100 * wsscan_gib(p) for f in runs
                           for p in f["periods"]])["median"]
    return (f"A-bit scan per GiB resident per round: blimp {s['blimp']:.1f} ms, Linux "
            f"clear_refs+smaps {s['linux']:.1f} ms (blimp/Linux {s['blimp'] / s['linux']:.2f}x); "
            f"blimp's CPU share at vm.age_ms={runs[0]['round_ms']}: {share:.2f} % for "
            f"{runs[0]['size_mib']} MiB resident, {per_gib_share:.1f} % per GiB")


def wsscan_table(raw):
    """bench/wsscan.py's figures: a row per guest, median (min-max) over every
    measured period of every run. blimp: the aging hand's last full round
    (`ws` event round_us over round_pages); Linux: `cat smaps` (its fork and
    exec taken off) and `echo 1 > clear_refs` on pressmem, by the guest's
    clock (init's `wss`). CPU share: the period's cost over a 1 s period
    (blimp's default vm.age_ms, its measured round_ms)."""
    runs = [r["wsscan"] for r in raw["runs"] if r.get("wsscan")]
    if not runs:
        return WSSCAN_TITLE, "", [], []
    names = []
    for r in runs:
        names += [n for n in r if n not in names]
    head = ["guest", "resident [MiB]", "pages scanned", "ms per period", "ms per GiB per period",
            "of which clear / read [ms/GiB]", "CPU share at a 1 s period", "how"]
    how = {"blimp-pvh": "aging hand (kernel/vm_age.c): read+clear each PTE's A bit, "
                        "`ws` event round_us",
           "linux": "echo 1 > clear_refs + cat smaps (Referenced:), 4 KiB pages "
                    "(transparent_hugepage=never)",
           "linux-thp": "the same, THP as Debian ships it (always): "
                        "one PMD per 2 MiB where huge"}
    rows = []
    blimp = wsscan_summary(raw)["blimp"]
    for n in names:
        figs = [r[n] for r in runs if n in r]
        periods = [p for f in figs for p in f["periods"]]
        per_gib = stats([p["ms_per_gib"] for p in periods])
        if n.startswith("linux"):
            split = (f"{stats([p['clear_ms'] * wsscan_gib(p) for p in periods])['median']:.1f} / "
                     f"{stats([p['smaps_ms'] * wsscan_gib(p) for p in periods])['median']:.1f}")
            share = stats([p["ms"] / 1000 * 100 for p in periods])
            note = how.get(n, "")
            huge = max(f.get("anon_huge_kib", 0) for f in figs)
            if huge:
                note += f"; {huge >> 10} MiB in huge pages"
        else:
            split = "-"
            share = stats([p["cpu_share"] * 100 for p in periods])
            note = how.get(n, "") + f", round {figs[0]['round_ms']} ms"
        if blimp and n != "blimp-pvh" and per_gib:
            note += f"; blimp costs {blimp / per_gib['median']:.2f}x this"
        rows.append([n, str(figs[0]["size_mib"]), f"{stats([p['pages'] for p in periods])['median']:.0f}",
                     _cell(stats([p["ms"] for p in periods])), _cell(per_gib), split,
                     _cell(share) + " %", note])
    f0 = runs[0]["blimp-pvh"] if "blimp-pvh" in runs[0] else next(iter(runs[0].values()))
    about = (f"a running workload holding {f0['size_mib']} MiB in a fresh {f0['ram_mib']} MiB guest "
             f"(blimp: run w pattern=uniform write=30; Linux: pressmem, uniform, 30 % writes, "
             f"stopped while scanned), each timed by the guest's own clock; median (min-max) of "
             f"{len(runs)} run(s) x {f0['rounds']} periods. Per GiB = the period's cost x "
             f"({1024 * MIB // PAGE} / pages scanned)")
    return WSSCAN_TITLE, about, head, rows


def wsscan_gib(period):
    """The factor from a period's pages to one GiB of them."""
    return 1024 * MIB // PAGE / period["pages"]


# ------------------------------------------------------------------ working-set estimate
WSERROR_TITLE = "working-set estimate: blimp's `ws` against the hot set the bench set"


def _wserror_runs(raw, name="blimp-pvh"):
    """One guest's bench/wserror.py figures of every run that has them."""
    return [r["wserror"][name] for r in raw["runs"] if name in (r.get("wserror") or {})]


def _wserror_cases(raw, name="blimp-pvh"):
    """{hot MiB: [that case of every run]}, in the order measured."""
    cases = {}
    for w in _wserror_runs(raw, name):
        for c in w["cases"]:
            cases.setdefault(c["hot_mib"], []).append(c)
    return cases


def _pct(s):
    return _cell(s, 1) if s else "-"


def _lag(changes, window):
    lags = stats([c["lag_s"] for c in changes])
    unsettled = sum(c["lag_s"] is None for c in changes)
    if lags is None:
        return f"not within 10 % in {window:.0f} s"
    return _cell(lags, 1) + (f" ({unsettled} run(s) not within 10 % in {window:.0f} s)" if unsettled else "")


def wserror_table(raw):
    """bench/wserror.py's figures: per hot size a row for the steady state
    (mean and max |ws - H| / H over its seconds) and one per change (the
    move, the growth: lag to within 10 % for good, peak error on the way),
    median (min-max) over the runs, beside the bound: error 0, late by tau
    + a round after a move, by a round after a growth."""
    runs = _wserror_runs(raw)
    if not runs:
        return WSERROR_TITLE, "", [], []
    w0 = runs[0]
    linux = _wserror_cases(raw, "linux")
    tau, rnd = w0["tau_ms"] / 1000, w0["round_ms"] / 1000
    head = ["situation", "truth [pages]", "error mean [%]", "error max [%]",
            "lag to within 10 % [s]", "peak error [%]", "bound: error, lag [s]", "note"]
    rows = []
    for hot_mib, cases in _wserror_cases(raw).items():
        c0 = cases[0]
        rows.append([f"blimp steady, {hot_mib} MiB hot of {w0['size_mib']}", str(c0["hot_pages"]),
                     _pct(stats([c["steady"]["mean_pct"] for c in cases])),
                     _pct(stats([c["steady"]["max_pct"] for c in cases])), "-", "-", "0 %, -",
                     f"{c0['steady']['seconds']} s of events from the fill's end + tau + 2 rounds"])
        if hot_mib in linux:
            lc = linux[hot_mib]
            rows.append([f"Linux steady, {hot_mib} MiB hot of {w0['size_mib']}", str(lc[0]["hot_pages"]),
                         _pct(stats([c["steady"]["mean_pct"] for c in lc])),
                         _pct(stats([c["steady"]["max_pct"] for c in lc])), "-", "-", "0 %, -",
                         f"pressmem; smaps Referenced after a window of tau, then clear_refs; "
                         f"{lc[0]['steady']['windows']} windows (the process's own pages are in it)"])
        for key, label, bound, note in (
                ("move", f"blimp move: set w hotat={hot_mib}M", f"0 %, tau + round = {tau + rnd:.1f}",
                 "the old hot set stays in the window for tau: the estimate overshoots to ~2H "
                 "(peak ws {peak} pages), then falls back"),
                ("growth", f"blimp growth: set w hot={2 * hot_mib}M", f"0 %, round = {rnd:.1f}",
                 "the new pages join at their next visit: the estimate is short until then "
                 "(peak error at ws {peak} pages)")):
            ch = [c[key] for c in cases]
            peak = stats([x["peak_ws"] for x in ch])["median"]
            rows.append([label, str(ch[0]["truth_pages"]), "-", "-", _lag(ch, ch[0]["window_s"]),
                         _pct(stats([x["peak_pct"] for x in ch])), bound,
                         note.format(peak=f"{peak:.0f}")])
    about = (f"`run w size={w0['size_mib']}M pattern=hotcold hot=H hotpct=100 write=30` in a fresh "
             f"{w0['ram_mib']} MiB guest per hot size H, vm.ws_ms={w0['tau_ms']} (tau), round "
             f"{w0['round_ms']} ms; the estimate is `ws` of the once-a-second `workload` event, the "
             f"truth H/4096 pages (2H after the growth). Lag: from `set` to the first event after "
             f"which every one in {w0['cases'][0]['move']['window_s']:.0f} s is within 10 % of the "
             f"new truth. Bound: the truth itself, late by tau + a round (a round for a growth). "
             f"blimp adds up to two rounds: a use is dated by the visit that saw it (up to a round "
             f"late), a page counts while that date is <= tau old (kernel/vm_age.c), the counts are "
             f"published at the round's end; the events come once a second. Linux: pressmem SIZE H 100 30 "
             f"(the same hot set), transparent_hugepage=never, Referenced pages of smaps read every "
             f"tau and cleared (clear_refs). Median (min-max) of {len(runs)} run(s)")
    return WSERROR_TITLE, about, head, rows


def wserror_summary(raw):
    """The headline figures over every case of every run: steady mean and
    max error (%), median lag after a move and after a growth (s)."""
    cases = [c for cs in _wserror_cases(raw).values() for c in cs]
    if not cases:
        return None
    linux = [c for cs in _wserror_cases(raw, "linux").values() for c in cs]
    lag = lambda key: stats([c[key]["lag_s"] for c in cases])  # noqa: E731
    return {"steady_mean_pct": stats([c["steady"]["mean_pct"] for c in cases])["median"],
            "steady_max_pct": max(c["steady"]["max_pct"] for c in cases),
            "move_lag_s": (lag("move") or {}).get("median"),
            "growth_lag_s": (lag("growth") or {}).get("median"),
            "move_peak_pct": stats([c["move"]["peak_pct"] for c in cases])["median"],
            "tau_s": cases[0]["tau_ms"] / 1000, "round_s": cases[0]["round_ms"] / 1000,
            "linux_mean_pct": stats([c["steady"]["mean_pct"] for c in linux])["median"] if linux else None}


def wserror_headline(raw):
    s = wserror_summary(raw)
    fmt = lambda v: "not within 10 % (median)" if v is None else f"{v:.1f} s"  # noqa: E731
    return (f"working-set estimate vs the truth: steady error {s['steady_mean_pct']:.1f} % mean, "
            f"{s['steady_max_pct']:.1f} % max; lag after a move {fmt(s['move_lag_s'])} (bound tau "
            f"+ round = {s['tau_s'] + s['round_s']:.1f} s, peak error {s['move_peak_pct']:.0f} %), "
            f"after a growth {fmt(s['growth_lag_s'])} (bound a round = {s['round_s']:.1f} s)"
            + (f"; Linux clear_refs+smaps steady error {s['linux_mean_pct']:.1f} % mean"
               if s["linux_mean_pct"] is not None else ""))


def wserror_line(wse):
    """bench.py's line after a run: each hot size's steady error and lags
    (blimp), steady error (Linux)."""
    lag = lambda v: "not within 10 %" if v is None else f"{v:.1f} s"  # noqa: E731
    parts = [f"{c['hot_mib']} MiB steady {c['steady']['mean_pct']:.1f} % (max "
             f"{c['steady']['max_pct']:.1f} %), move lag {lag(c['move']['lag_s'])}, growth lag "
             f"{lag(c['growth']['lag_s'])}" for c in wse["blimp-pvh"]["cases"]]
    parts += [f"Linux {c['hot_mib']} MiB steady {c['steady']['mean_pct']:.1f} %"
              for c in wse.get("linux", {}).get("cases", [])]
    return "working-set estimate: " + ", ".join(parts)


def wsscan_line(ws):
    """bench.py's line after a run: the headline figures of one run."""
    parts = [f"{name} {f['ms_per_gib']:.1f} ms/GiB ({f['pages']:.0f} pages)" for name, f in ws.items()]
    return "A-bit scan per GiB resident per period: " + ", ".join(parts)


def run_line(run, size):
    parts = []
    for name, b in run["balloon"].items():
        parts.append(f"{name} inflate {size / b['inflate']['s']:.0f} MiB/s "
                     f"deflate {size / b['deflate']['s']:.0f} MiB/s")
    for name, rp in run["reporting"].items():
        parts.append(f"{name} reporting 80 % in {rp['s']:.1f} s")
    if run.get("wsscan"):
        parts.append(wsscan_line(run["wsscan"]))
    if run.get("wserror"):
        parts.append(wserror_line(run["wserror"]))
    return "; ".join(parts)


def write_plot(raw, path):
    """RSS over time in the first run: each guest's inflate, and reporting (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    run = raw["runs"][0]
    panels = (("QEMU RSS during the inflate (run 1)", "seconds since QMP balloon",
               [(n, b["inflate"]["rss_samples"]) for n, b in run["balloon"].items()]),
              ("QEMU RSS after the free, reporting on (run 1)", "seconds since the free",
               [(n, r["rss_samples"]) for n, r in run["reporting"].items()]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (title, xlabel, series) in zip(axes, panels):
        for name, samples in series:
            ax.plot([s[0] for s in samples], [s[1] for s in samples], label=name, lw=1.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("MiB")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ the squeeze
# bench/squeeze.py's figures, one dict per guest family per run under
# run["squeeze"]: "blimp" and "linux", the same workload in each. A family
# with no figures (a bench.json from before blimp was squeezed) shows "—"
# (not measured), never a guess.
SQUEEZE_FAMILIES = ("blimp", "linux")
NOT_MEASURED = "—"


def _accesses_from_squeeze(s):
    """Accesses from the QMP command to the workload's end, from the
    per-second ticks [seconds since the command, ..., accesses so far]."""
    ticks = s["ticks"]
    before = [t for t in ticks if t[0] <= 0]
    start = before[-1][2] if before else ticks[0][2]
    done = ticks[-1][2] - start
    if done <= 0:
        raise KeyError("no accesses after the squeeze")
    return done


def _accesses_at(s, t):
    """Accesses so far at t seconds after the QMP command, linear between
    the per-second ticks around t."""
    prev = None
    for tk in s["ticks"]:
        if tk[0] >= t:
            if prev is None or tk[0] <= prev[0]:
                return tk[2]
            return prev[2] + (t - prev[0]) / (tk[0] - prev[0]) * (tk[2] - prev[2])
        prev = tk
    return s["ticks"][-1][2]


def _accesses_after_target(s):
    done = s["ticks"][-1][2] - _accesses_at(s, s["squeeze_s"])
    if done <= 0:
        raise KeyError("no accesses after the target")
    return done


def _majflt_limit(s):
    """The fewest major faults per 1000 accesses any policy that cannot see
    the future takes with the pages the workload held: its cold accesses are
    uniform over the cold set, so a cold access finds its page with
    probability (held - hot) / cold at best (the hot set all resident)."""
    p = s["params"]
    hot, pages = p["hot_mib"] * MIB // PAGE, p["size_mib"] * MIB // PAGE
    cold_held = min(max(s["held_pages"] - hot, 0), pages - hot)
    return 1000 * (100 - p["hot_pct"]) / 100 * (1 - cold_held / (pages - hot))


def build_squeeze_table(raw):
    """The squeeze rows, or [] when this bench ran no squeeze (--quick)."""
    runs = [r["squeeze"] for r in raw["runs"] if r.get("squeeze")]
    if not runs:
        return []
    rows = []

    def row(figure, unit, fn, note="", digits=None):
        cells = {}
        for family in SQUEEZE_FAMILIES:
            values = []
            for sq in runs:
                if family in sq:
                    try:
                        values.append(fn(sq[family]))
                    except (KeyError, TypeError):
                        pass
            cells[family] = stats(values)
        rows.append({"figure": figure, "unit": unit, "note": note, "digits": digits, **cells})

    row("balloon reaches the target", "s", lambda s: s["squeeze_s"],
        "QMP balloon to query-balloon actual = target")
    for phase, note in (("before", "per-second counts (pressmem's lines, blimp's workload "
                                   "events) before the QMP command"),
                        ("during", "last line before the command to first after the target"),
                        ("after", "first line after the target to the workload's end")):
        row(f"workload accesses/s {phase} the squeeze", "k/s",
            lambda s, phase=phase: s["accesses_per_s"][phase] / 1e3, note)
    row("work lost to the squeeze", "k accesses",
        lambda s: (s["accesses_per_s"]["before"] - s["accesses_per_s"]["during"]) * s["squeeze_s"] / 1e3,
        "(before - during) x time to the target: a short squeeze at a low rate can lose less", digits=0)
    row("major faults during the squeeze", "count", lambda s: s["majflt"]["squeeze"],
        "Linux /proc/vmstat pgmajfault, blimp `vm` majflt; command to target", digits=0)
    row("major faults, squeeze to workload end", "count", lambda s: s["majflt"]["total"],
        digits=0)
    row("major faults per 1000 accesses, squeeze to end", "count",
        lambda s: 1000 * s["majflt"]["total"] / _accesses_from_squeeze(s),
        "the workloads run at different speeds: faults per unit of work", digits=1)
    row("written to swap per 1000 accesses, squeeze to end", "KiB",
        lambda s: 1000 * s["swap_out_bytes"]["total"] / 1024 / _accesses_from_squeeze(s),
        "bytes to swap per unit of work", digits=1)
    row("major faults per 1000 accesses, target to end", "count",
        lambda s: 1000 * (s["majflt"]["total"] - s["majflt"]["squeeze"]) / _accesses_after_target(s),
        "squeezed steady state; the row above mixes in the squeeze itself, when memory "
        "was still there (a slow squeeze lowers it)", digits=1)
    row("  limit for the pages the workload held", "count", _majflt_limit,
        "uniform cold accesses: 1000 x cold share x (1 - cold pages held / cold pages); held: "
        "blimp's resident, Linux's nr_anon_pages, 2 s before the end (Linux can fall a little below: "
        "pages it unmapped but has not freed yet, in its swap cache, are not counted)", digits=1)
    row("written to swap per 1000 accesses, target to end", "KiB",
        lambda s: 1000 * (s["swap_out_bytes"]["total"] - s["swap_out_bytes"]["squeeze"]) / 1024
        / _accesses_after_target(s), "bytes to swap per unit of work, squeezed", digits=1)
    row("written to swap during the squeeze", "MiB",
        lambda s: s["swap_out_bytes"]["squeeze"] / MIB, "Linux pswpout, blimp `swap` pages_out; * 4096")
    row("written to swap, squeeze to workload end", "MiB",
        lambda s: s["swap_out_bytes"]["total"] / MIB, "the same, to the end")
    row("swap drive written (QEMU), squeeze to end", "MiB",
        lambda s: s["swap_drive_wr_bytes"]["total"] / MIB, "query-blockstats wr_bytes")
    row("read back from swap, squeeze to workload end", "MiB",
        lambda s: s["swap_in_bytes"]["total"] / MIB, "Linux pswpin, blimp `swap` pages_in; * 4096")
    row("workload errors (pattern mismatches)", "count", lambda s: s["errors"],
        "must be 0 (blimp: workload_corrupt/workload_error events)",
        digits=0)
    return rows


def _squeeze_cells(r):
    cells = [f"{r['figure']} [{r['unit']}]"]
    for family in SQUEEZE_FAMILIES:
        cells.append(_cell(r[family], r.get("digits")) if r[family] else NOT_MEASURED)
    return cells + [r["note"]]


SQUEEZE_HEAD = ["squeeze figure", "blimp", "Linux", "note"]


def _squeeze_header(raw):
    params = next((sq[f]["params"] for r in raw["runs"] for sq in [r.get("squeeze") or {}]
                   for f in SQUEEZE_FAMILIES if f in sq), None)
    if params is None:
        return "squeeze: not run"
    p = params
    return (f"squeeze: guest {p['ram_mib']} MiB with a {p['swap_mib']} MiB virtio-blk swap disk; "
            f"workload {p['size_mib']} MiB, {p['hot_mib']} MiB hot ({p['hot_pct']} % of accesses, "
            f"{p['write_pct']} % writes), {p['seconds']} s after its first pass; balloon to "
            f"{p['target_mib']} MiB after {p['warm_s']} s of it (Linux: pressmem; blimp: "
            f"run p pattern=hotcold, vm.swap=0). {NOT_MEASURED}: not measured.")


def format_squeeze_table(raw):
    rows = raw.get("squeeze_table") or []
    if not rows:
        return ""
    lines = [SQUEEZE_HEAD] + [_squeeze_cells(r) for r in rows]
    widths = [max(len(r[i]) for r in lines) for i in range(len(SQUEEZE_HEAD))]
    out = [_squeeze_header(raw), ""]
    for i, r in enumerate(lines):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_squeeze_markdown(raw):
    rows = raw.get("squeeze_table") or []
    if not rows:
        return ""
    lines = [_squeeze_header(raw), "", "| " + " | ".join(SQUEEZE_HEAD) + " |",
             "|" + "---|" * len(SQUEEZE_HEAD)]
    for r in rows:
        lines.append("| " + " | ".join(_squeeze_cells(r)) + " |")
    return "\n".join(lines) + "\n"


def squeeze_line(squeeze):
    parts = []
    for family, s in squeeze.items():
        a = s["accesses_per_s"]
        during = f"{a['during'] / 1e3:.0f}k/s" if a["during"] is not None else "?"
        parts.append(f"{family} squeeze {s['squeeze_s']:.1f} s, accesses {a['before'] / 1e3:.0f}k/s"
                     f" -> {during}, {s['swap_out_bytes']['squeeze'] >> 20} MiB to swap, "
                     f"{s['errors']} errors")
    return "; ".join(parts)


# ------------------------------------------------------------------ any size of guest
BIGMEM_TITLE = "any size of guest: boot and balloon from 2 GiB to 1 TiB"


def bigmem_table(raw):
    """bench/bigmem.py's figures, a row per guest size: `ready` by the
    guest's clock (median of the boots) and its difference from the 2 GiB
    guest's, medians and fastest boots, against the goal (within 10 ms,
    judged on the fastest: a loaded host only adds); the host's seconds to `ready`;
    QEMU's RSS after boot; the balloon's speed by the guest's clock
    (balloon_done's ms) for 1 GiB in and out and a quarter of the guest in;
    the allocator's metadata per 4 KiB frame and its invariant check."""
    bm = raw.get("bigmem")
    if not bm:
        return BIGMEM_TITLE, "", [], []
    share = bm["large_share"]
    head = ["guest RAM", "ready, guest [ms]", f"vs {bm['base_gib']} GiB [ms]",
            f"goal (fastest <= +{bm['goal_ms']} ms)", "ready, host [s]", "QEMU RSS after boot [MiB]",
            f"inflate {bm['small_gib']} GiB [GiB/s]", f"deflate {bm['small_gib']} GiB [GiB/s]",
            f"inflate 1/{share} of RAM [GiB/s]", "metadata [B/frame]", "pfa check"]

    def med(boots, fn):
        return stats([fn(b) for b in boots if fn(b) is not None])

    base = next((s for s in bm["sizes"] if s["gib"] == bm["base_gib"] and "boots" in s
                 and s.get("layout", "qemu") == "qemu"), None)
    base_ms = med(base["boots"], lambda b: b["ready_ms"]) if base else None
    rows = []
    for s in bm["sizes"]:
        size = f"{s['gib'] / 1024:g} TiB" if s["gib"] >= 1024 else f"{s['gib']} GiB"
        if s.get("layout") == "flat":
            size += ", flat"
        if "boots" not in s:
            rows.append([size, f"not run: {s['skipped']}"] + ["-"] * (len(head) - 2))
            continue
        boots, first = s["boots"], s["boots"][0]
        ready = med(boots, lambda b: b["ready_ms"])
        if s is base:
            vs, goal = "(the base)", "-"
        elif base_ms is None:
            vs, goal = "-", "-"
        else:
            # The fastest boots too: a loaded host only ever adds time, so
            # the goal is judged on them; the medians' difference beside.
            diff, best = ready["median"] - base_ms["median"], ready["min"] - base_ms["min"]
            vs = f"{diff:+.0f} (fastest {best:+.0f})"
            goal = "met" if best <= bm["goal_ms"] else "not met"
        pfa = first.get("pfa", {})
        rows.append([size, _cell(ready, 0), vs, goal, _cell(med(boots, lambda b: b["ready_host_s"]), 3),
                     _cell(med(boots, lambda b: b["rss_mib"]), 0),
                     _cell(med(boots, lambda b: b["inflate_small"]["gib_per_s"]), 1),
                     _cell(med(boots, lambda b: b["deflate_small"]["gib_per_s"]), 1),
                     _cell(med([first], lambda b: b["inflate_large"]["gib_per_s"]), 1),
                     f"{pfa['meta_millibytes_per_frame'] / 1000:.3f}" if pfa else "-",
                     pfa.get("check", "-")])
    about = (f"blimp PVH on q35, 1 vCPU, balloon reporting off; above 16 GiB the RAM is an "
             f"unreserved memory-backend-ram; 1 TiB on qemu64 (AMD): QEMU moves RAM above 4 GiB to "
             f"1 TiB-2046 GiB (phys-bits 42); 'flat': the same CPU as Intel, RAM in one piece "
             f"from 4 GiB (phys-bits 41); median (min-max) of "
             f"{bm['boots']} boot(s) a size; the 1/{share} inflate and `pfa` from the first boot "
             f"only; speeds by the guest's clock (balloon_done's ms)")
    return BIGMEM_TITLE, about, head, rows


def bigmem_lines(raw, fmt):
    title, about, head, rows = bigmem_table(raw)
    return ["", f"{title}: {about}", ""] + fmt(head, rows) if rows else []


def format_bigmem_table(raw, fmt=_text):
    """The group alone (bench.py --bigmem-only), under a header of its own."""
    m = raw["machine"]
    return "\n".join([f"{m['date']} on {m['host']}: {m['cpus']} x {m['cpu']}, host kernel "
                      f"{m['kernel']}, {m['qemu']}, {m['accel'].upper()}"]
                     + bigmem_lines(raw, fmt))
