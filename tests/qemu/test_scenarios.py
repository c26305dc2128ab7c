"""Every shipped scenario runs and its expectations hold; the tour draws a
real picture; a malformed scenario is refused naming its line."""
import glob
import os
import struct

import pytest

from blimp import scenario

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = sorted(glob.glob(os.path.join(HERE, "..", "..", "tools", "scenarios", "*.scn")))


@pytest.mark.parametrize("path", SCENARIOS, ids=[os.path.basename(p) for p in SCENARIOS])
def test_shipped_scenario_runs(path, tmp_path, capsys):
    runner = scenario.Runner(scenario.parse(path))
    runner.run()
    runner.summary()
    png = tmp_path / "timeline.png"
    runner.plot(str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 600 and height >= 300 and len(data) > 20000
    out = capsys.readouterr().out
    assert "QEMU RSS" in out and "step" in out


@pytest.mark.parametrize("text,needle", [
    ("boot mem=256M\nfrobnicate 3\n", ":2: unknown step 'frobnicate'"),
    ("boot mem=256M\nhost balloon lots\n", ":2: 'lots' is not a size"),
    ("guest mem\n", ":1: 'guest' before 'boot'"),
    ("boot mem=256M colour=red\n", ":1: unknown option 'colour'"),
    ("boot mem=256M\nwait actual 10M timeout=soon\n", ":2: 'soon' is not a duration"),
    ("boot mem=256M\nboot mem=128M\n", ":2: a scenario boots once"),
    ("say hello\n", "no 'boot' step"),
    ("boot device=virtio-balloon-pci\n", ":1: the balloon device needs an id"),
    ("boot device=virtio-rng-pci\n", ":1: no virtio-balloon device"),
])
def test_malformed_scenario_is_refused_naming_the_line(tmp_path, text, needle):
    p = tmp_path / "bad.scn"
    p.write_text(text)
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.parse(str(p))
    assert needle in str(e.value)
    assert str(p) in str(e.value)


def test_failed_expectation_names_the_line(tmp_path):
    # Three expectations that cannot hold on a fresh 256 MiB guest: each fails naming its line.
    p = tmp_path / "fails.scn"
    for line in ("expect rss-above 100G", "expect actual-below 256M", "expect actual-above 256M"):
        p.write_text(f"boot mem=256M\n{line}\n")
        runner = scenario.Runner(scenario.parse(str(p)))
        with pytest.raises(scenario.ScenarioError) as e:
            runner.run()
        assert f"{p}:2: expectation failed" in str(e.value), line


@pytest.mark.parametrize("line,needle", [
    ('@ev {"ev":"ready","t_ms":', "malformed event line"),
    ('@ev ["ready", 3]', "without string 'ev' and integer 't_ms'"),
    ('@ev {"ev":"ready"}', "without string 'ev' and integer 't_ms'"),
    ('@ev {"ev":1,"t_ms":2}', "without string 'ev' and integer 't_ms'"),
])
def test_malformed_event_line_is_refused_naming_it(line, needle):
    from blimp.events import EventFormatError, parse_event
    with pytest.raises(EventFormatError) as e:
        parse_event(line)
    assert needle in str(e.value) and line in str(e.value)
    assert parse_event("blimp> plain text") is None
    assert parse_event('@ev {"ev":"ok","t_ms":5,"x":1}')["x"] == 1


def test_scenario_that_ends_at_boot_still_plots_its_first_and_last_state(tmp_path):
    # reserve-floor.scn once ended 0.1 s after boot, before the sampler's
    # first 100 ms tick, and its plot failed with "nothing was sampled".
    # A scenario with no step after boot ends sooner still: before the fix it
    # failed every time.
    p = tmp_path / "instant.scn"
    p.write_text("boot mem=128M\n")
    runner = scenario.Runner(scenario.parse(str(p)))
    runner.run()
    assert len(runner.samples) >= 2, runner.samples
    first, last = runner.samples[0], runner.samples[-1]
    assert first[0] <= last[0] and first[1] > 0 and last[1] > 0
    runner.plot(str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_balloon_statistics_are_read_from_the_device_the_scenario_names(tmp_path, capsys):
    # The runner read them from /machine/peripheral/bal0 whatever the boot
    # step's id, and its sampler's `except Exception` hid the failure.
    p = tmp_path / "named.scn"
    p.write_text("boot mem=128M device=virtio-balloon-pci,id=mybal\nhost stats-poll 1\n")
    runner = scenario.Runner(scenario.parse(str(p)))
    runner.run()
    assert runner.balloon_path == "/machine/peripheral/mybal"
    assert "host: guest statistics: free" in capsys.readouterr().out
    assert any(s[3] is not None for s in runner.samples), runner.samples
