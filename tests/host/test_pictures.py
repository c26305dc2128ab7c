"""The pictures in docs/ are drawn by scenarios; this fails when one was
drawn from another version of its scenario than the one shipped.

tools/blimp/scenario.py writes a fingerprint of the scenario's steps into
each PNG it draws (a tEXt chunk "Comment: blimp-steps:HASH"); `make pictures`
draws them all again. Host-only: reads the files, runs no QEMU.
"""
import os
import pathlib
import struct

import pytest

from blimp import scenario

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCENARIOS = ROOT / "tools" / "scenarios"
# A picture named after its scenario, but for the tour's (the README shows it).
SCENARIO_OF = {"timeline.png": "tour.scn"}


def png_text(path):
    """The PNG's tEXt chunks as a dict (keyword: text)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    out, i = {}, 8
    while i + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"tEXt":
            key, _, text = data[i + 8:i + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        i += 12 + length
    return out


def pictures():
    """(picture, its scenario) for every docs/*.png a scenario draws."""
    pairs = []
    for png in sorted(DOCS.glob("*.png")):
        scn = SCENARIOS / SCENARIO_OF.get(png.name, png.stem + ".scn")
        if scn.exists():
            pairs.append((png, scn))
    return pairs


def test_the_tour_and_the_pressure_scenarios_have_pictures():
    names = {p.name for p, _ in pictures()}
    assert {"timeline.png", "working-set.png", "thrashing.png", "pff.png", "swap-storm.png"} <= names, names


@pytest.mark.parametrize("png,scn", pictures(), ids=lambda x: os.path.basename(str(x)))
def test_a_shipped_picture_was_drawn_from_its_current_scenario(png, scn):
    want = scenario.steps_fingerprint(scenario.parse(str(scn)))
    got = png_text(png).get("Comment", "")
    assert got == f"blimp-steps:{want}", (
        f"docs/{png.name} was not drawn from the current {scn.relative_to(ROOT)} "
        f"(picture: {got or 'no fingerprint'}, scenario: blimp-steps:{want}); "
        "draw it again with `make pictures`")


def test_every_teaching_figure_is_drawn_by_its_current_code():
    import figures  # tools/figures.py: the pytest path has tools/
    stale = []
    for name, fn in figures.FIGURES.items():
        png = DOCS / name
        want = f"blimp-figure:{figures.fingerprint(fn)}"
        got = png_text(png).get("Comment", "no fingerprint") if png.exists() else "missing"
        if got != want:
            stale.append(f"docs/{name} ({got}, code: {want})")
    assert not stale, "figures older than tools/figures.py: " + "; ".join(stale) + "; draw them with `make pictures`"
