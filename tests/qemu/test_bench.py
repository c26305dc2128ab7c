"""The bench harness end to end, small and once (`bench.py --quick`), so that
`make bench` cannot rot: every figure of the table is produced, for both
guests, and the JSON, Markdown table and plot are written. No timing is
asserted (tests check correctness; `make bench` shows the figures). Needs
the Linux guest: skipped with the reason when it cannot be built offline.

The page-replacement figures are exact (deterministic strings), so they
are checked for what the theory says, here and without QEMU in the test
after: nothing beats OPT, and on Belady's string FIFO faults more with 4
frames than with 3 while LRU, a stack algorithm, does not."""
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
REPLACE_BENCH = os.path.join(ROOT, "build", "bench", "replace_bench")


def check_replace(rep):
    """bench/replace_bench's document: every string, every policy, OPT the
    limit, Belady's anomaly for FIFO and not for LRU."""
    assert rep["policies"] == ["fifo", "clock", "esc", "lru", "opt"]
    strings = {st["name"]: st for st in rep["strings"]}
    assert set(strings) >= {"belady", "uniform", "hotcold", "loop", "writes"}, sorted(strings)
    for st in rep["strings"]:
        assert st["runs"], st["name"]
        for run in st["runs"]:
            opt = run["opt"]["faults"]
            for p in rep["policies"]:
                r = run[p]
                assert r["faults"] >= opt and r["ratio_to_opt"] >= 1.0, (st["name"], run["frames"], p, r)
                assert r["writebacks"] <= r["faults"], (st["name"], run["frames"], p, r)
                if not st["write_pct"]:
                    assert r["writebacks"] == 0, (st["name"], p, r)
    belady = {run["frames"]: run for run in strings["belady"]["runs"]}
    assert belady[4]["fifo"]["faults"] > belady[3]["fifo"]["faults"], belady
    assert belady[4]["lru"]["faults"] <= belady[3]["lru"]["faults"], belady
    # The loop over a few more pages than frames: LRU faults on every reference.
    loop = strings["loop"]
    assert loop["runs"][0]["lru"]["faults"] == loop["refs"], loop
    # Writes: ESC, preferring clean victims, writes back less than CLOCK somewhere.
    assert any(run["esc"]["writebacks"] < run["clock"]["writebacks"] for run in strings["writes"]["runs"])


def test_replace_bench_finds_opt_the_limit_and_beladys_anomaly_in_fifo_only():
    out = subprocess.run([REPLACE_BENCH], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    check_replace(json.loads(out.stdout))


def test_quick_bench_produces_every_figure(tmp_path, linux_guest):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench.py"), "--quick",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / "bench.json") as f:
        raw = json.load(f)
    table = {r["figure"]: r for r in raw["table"]}
    both = [f for f in table if not f.startswith(("allocator", "kernel image",
                                                  "boot to ready, PVH on microvm"))]
    microvm = table["boot to ready, PVH on microvm"]  # blimp beside QEMU's floor; no Linux
    assert microvm["blimp"] and microvm["limit"]
    # No order between them: one run each, and blimp's `ready` now comes
    # within the host's run-to-run noise of the floor's line.
    for side in ("blimp", "limit"):
        assert 0 < microvm[side]["min"] <= microvm[side]["median"] <= microvm[side]["max"]
    # The floor after as many blocks as blimp translates (bench/pvh_floor.S
    # with BLOCKS): its line came, so every block ran.
    blocks = table["boot to ready, PVH on microvm: the floor after 1650 blocks"]
    assert 0 < blocks["blimp"]["min"] and blocks["limit"] == microvm["limit"], blocks
    assert len(both) >= 9, sorted(table)
    for figure in both:
        row = table[figure]
        assert row["blimp"] and row["linux"], f"{figure}: a guest has no figure"
        for side in ("blimp", "linux"):
            assert row[side]["min"] <= row[side]["median"] <= row[side]["max"]
    # The balloon really moved memory in both guests: QEMU's RSS fell.
    run = raw["runs"][0]
    for name, b in run["balloon"].items():
        assert b["inflate"]["rss_after_mib"] < b["rss_before_mib"], name
        assert b["inflate"]["host_s"] <= b["inflate"]["s"], name
    for name in ("host limit", "ratio", "% of limit"):
        assert name in out.stdout
    assert (tmp_path / "table.md").read_text().count("\n|") >= len(table)
    assert (tmp_path / "rss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The host programs' tables: page replacement, and the swap ceiling with
    # blimp's own swap-out and swap-in beside it (bench/swapio.py: every
    # access after the fill a major fault, the pages written back in runs);
    # the swap images are gone.
    check_replace(raw["replace"])
    sw = raw["swap_ceiling"]
    titles = ["page replacement: faults vs Belady's OPT", "swap device ceiling (host, O_DIRECT)",
              "first-touch (minor) fault"]
    if not sw.get("error"):
        assert set(sw["host"]) == {"write_4k", "read_4k", "write_256k", "read_256k"}, sw
        assert all(v > 0 for runs in sw["host"].values() for v in runs), sw
        io = run["swap_io"]
        assert io["majflt"] >= io["passes"] * io["size_mib"] * 256 - io["ram_mib"] * 256, io
        assert io["pages_in"] == io["majflt"] and io["pages_out"] >= io["pages_in"], io
        assert io["pages_per_write"] > 1, io      # reclaim writes clustered runs
        for key in ("write_256k", "read_4k", "e2e_out", "e2e_in"):
            assert len(sw["blimp"][key]) == 1 and sw["blimp"][key][0] > 0, sw["blimp"]
        titles.append("blimp end to end")
    assert "not measured yet" not in out.stdout
    assert not list(tmp_path.glob("*.img"))
    for title in titles:
        assert title in out.stdout
        assert title in (tmp_path / "table.md").read_text()
    # The working-set scan (bench/wsscan.py): both guests scanned the pages
    # their workload holds, every period after the fill, by their own clocks.
    ws = run["wsscan"]
    assert set(ws) == {"blimp-pvh", "linux"}, sorted(ws)
    for name, f in ws.items():
        assert len(f["periods"]) == f["rounds"], (name, f)
        for p in f["periods"]:
            assert p["pages"] >= f["size_mib"] * 256 * 0.95, (name, p)
        assert f["ms_per_gib"] > 0, (name, f)
    assert ws["linux"]["anon_huge_kib"] == 0, ws["linux"]      # 4 KiB pages, as blimp's
    assert 0 < ws["blimp-pvh"]["cpu_share"] < 1 and ws["blimp-pvh"]["round_ms"] == 1000, ws["blimp-pvh"]
    for text in ("working-set scan", "A-bit scan per GiB resident per round: blimp"):
        assert text in out.stdout and text in (tmp_path / "table.md").read_text(), text
    # The working-set estimate (bench/wserror.py): every hot size measured,
    # blimp steady and after each change, Linux steady, every figure a number (a lag may be
    # None: not within 10 % in the window; no timing is asserted).
    assert set(run["wserror"]) == {"blimp-pvh", "linux"}, sorted(run["wserror"])
    wse = run["wserror"]["blimp-pvh"]
    assert wse["tau_ms"] == 3000 and wse["round_ms"] > 0 and wse["cases"], wse
    lin = run["wserror"]["linux"]
    assert [c["hot_mib"] for c in lin["cases"]] == [c["hot_mib"] for c in wse["cases"]], lin
    for c in lin["cases"]:
        assert c["steady"]["events"] == lin["windows"], c
        assert isinstance(c["steady"]["mean_pct"], float) and c["steady"]["max_pct"] >= 0, c
    for c in wse["cases"]:
        assert c["steady"]["events"] >= c["steady"]["seconds"] - 1, c["steady"]
        for key in ("mean_pct", "max_pct"):
            assert isinstance(c["steady"][key], float) and c["steady"][key] >= 0, c["steady"]
        for key in ("move", "growth"):
            ch = c[key]
            assert ch["lag_s"] is None or isinstance(ch["lag_s"], float), ch
            assert isinstance(ch["peak_pct"], float) and ch["bound_s"] > 0 and ch["ws"], ch
    for text in ("working-set estimate: blimp's `ws` against the hot set",
                 "working-set estimate vs the truth: steady error"):
        assert text in out.stdout and text in (tmp_path / "table.md").read_text(), text
    # The first-touch fault: both guests timed by their own clocks.
    assert set(run["first_touch_ms"]) == {"blimp-pvh", "linux"}, run["first_touch_ms"]
    assert all(ms > 0 for ms in run["first_touch_ms"].values()), run["first_touch_ms"]
