"""tools/scenario.py --predict: a student's `expect` line put after a given
line of a scenario, reported right or wrong with the measured value, the
run going on (docs/exercises.md). No QEMU: the placement is parse-time, and
the verdict is checked against a stand-in for the VM's QMP answers."""
import pathlib

import pytest

from blimp import scenario

ROOT = pathlib.Path(__file__).resolve().parents[2]
RESERVE = str(ROOT / "tools" / "scenarios" / "reserve-floor.scn")


def placed(predictions):
    steps = scenario.add_predictions(scenario.parse(RESERVE), RESERVE, predictions)
    return [(w.split(":")[-1] if not w.startswith("prediction") else w, v, a) for w, v, a in steps]


def test_a_prediction_runs_after_the_line_it_names_and_in_the_order_given():
    steps = placed(["4:expect actual-above 64M", "4:expect pfa-ok", "expect actual 256M"])
    whats = [s[0] for s in steps]
    at = whats.index("4")
    assert whats[at + 1].startswith("prediction 1") and steps[at + 1][2] == ["actual-above", "64M"]
    assert whats[at + 2].startswith("prediction 2") and steps[at + 2][2] == ["pfa-ok"]
    assert whats[at + 3] == "5"
    assert whats[-1].startswith("prediction 3")  # no N: at the end


def test_a_prediction_after_a_comment_or_blank_line_goes_after_the_step_before_it(tmp_path):
    path = tmp_path / "s.scn"
    path.write_text("boot mem=256M\n# a comment\n\nhost balloon 128M\n")
    steps = scenario.add_predictions(scenario.parse(str(path)), str(path), ["3:expect pfa-ok"])
    assert [s[1] for s in steps] == ["boot", "expect", "host"]


@pytest.mark.parametrize("text,says", [
    ("1:expect pfa-ok", "before the 'boot' step"), ("99:expect pfa-ok", "has no line 99"),
    ("4:wait actual 1M", "a prediction is an 'expect' step"), ("4:expect actual-above lots", "'lots' is not a size"),
    ("4:expect nonsense", "expected 'expect actual")])
def test_a_bad_prediction_is_refused_before_anything_runs(text, says):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.add_predictions(scenario.parse(RESERVE), RESERVE, [text])
    assert says in str(e.value) and "prediction 1" in str(e.value)


class FakeQMP:
    def __init__(self, actual):
        self.actual = actual

    def execute(self, cmd, **kw):
        assert cmd == "query-balloon"
        return {"actual": self.actual}


class FakeVM:
    def __init__(self, actual):
        self.qmp = FakeQMP(actual)


def test_a_wrong_prediction_says_what_was_measured_and_does_not_stop_the_run(capsys):
    steps = scenario.add_predictions(scenario.parse(RESERVE), RESERVE,
                                     ["4:expect actual-above 128M", "4:expect actual-below 140M"])
    runner = scenario.Runner(steps)
    runner.vm = FakeVM(132 << 20)
    preds = [s for s in steps if s[0].startswith("prediction")]
    assert runner.step(*preds[0]).endswith("right: actual 132 MiB, expected above 128 MiB")
    assert runner.step(*preds[1]).endswith("right: actual 132 MiB, expected below 140 MiB")
    runner.vm = FakeVM(120 << 20)
    assert runner.step(*preds[0]).endswith("WRONG: actual 120 MiB, expected above 128 MiB")
    # A file's own expect line still stops the run.
    runner.vm = FakeVM(60 << 20)
    own = next(s for s in steps if s[1] == "expect" and not s[0].startswith("prediction"))
    with pytest.raises(scenario.ScenarioError, match="expectation failed: actual 60 MiB, expected above 64 MiB"):
        runner.step(*own)
    runner.summary()
    out = capsys.readouterr().out
    assert "predictions: 2 of 3 right" in out
    assert "WRONG: prediction 1 ('4:expect actual-above 128M'): actual 120 MiB, expected above 128 MiB" in out
