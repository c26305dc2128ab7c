"""The bench harness end to end, small and once (`bench.py --quick`), so that
`make bench` cannot rot: every figure of the table is produced, for both
guests, and the JSON, Markdown table and plot are written. No timing is
asserted (tests check correctness; `make bench` shows the figures). Needs
the Linux guest: skipped with the reason when it cannot be built offline."""
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_quick_bench_produces_every_figure(tmp_path, linux_guest):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench.py"), "--quick",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / "bench.json") as f:
        raw = json.load(f)
    table = {r["figure"]: r for r in raw["table"]}
    both = [f for f in table if not f.startswith(("allocator", "kernel image"))]
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
