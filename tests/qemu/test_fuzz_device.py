"""blimp fuzzing the virtio-balloon device: fuzz mode, its oracles, replay and
the minimizer of tools/fuzz_device.py, against real QEMU."""
import os

import pytest

from blimp import fuzz_device
from blimp.vm import qemu_version

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
REPORTING = fuzz_device.CONFIGS["reporting"][0]

BRINGUP = """prog 1 valid
reset
cw 0x14 1 0x1
cw 0x14 1 0x3
cw 0x8 4 0
cw 0xc 4 0x20
cw 0x8 4 0x1
cw 0xc 4 0x1
cw 0x14 1 0xb
qsetup 0 64
qsetup 1 64
qsetup 2 64
cw 0x14 1 0xf""".splitlines()


def fuzz_run(boot, seed, ops, bad=70):
    vm = boot(append=f"fuzz fuzz.seed={seed} fuzz.ops={ops} fuzz.bad={bad}", devices=REPORTING)
    done = vm.wait_event("fuzz_done", timeout=300)
    return vm, done


def op_lines(vm):
    return [ln[3:] for ln in vm.lines if ln.startswith("fz ")]


def test_fuzz_mode_prints_seed_first_and_every_op(boot):
    vm, done = fuzz_run(boot, seed=5, ops=300)
    first_op = next(i for i, ln in enumerate(vm.lines) if ln.startswith("fz "))
    seed_line = next(i for i, ln in enumerate(vm.lines) if ln.startswith("fuzz: seed 5"))
    assert seed_line < first_op
    ops = op_lines(vm)
    assert done["ops"] == len(ops) >= 300
    assert done["programs"] >= 3 and ops[0].startswith("prog 1 ")
    # Malformed programs drive the device into NEEDS_RESET (read back from its
    # status); valid ones never do, and memory it was not given keeps its patterns.
    assert done["needs_reset_bad"] > 0
    assert done["needs_reset_valid"] == 0 and done["pattern_errors"] == 0 and done["findings"] == 0
    assert not vm.events_named("fuzz_finding")
    assert vm.events_named("ready"), "the kernel stays up and reaches ready in fuzz mode"


def test_same_seed_same_programs(boot):
    a, _ = fuzz_run(boot, seed=11, ops=200)
    b, _ = fuzz_run(boot, seed=11, ops=200)
    c, _ = fuzz_run(boot, seed=12, ops=200)
    assert op_lines(a) == op_lines(b)
    assert op_lines(a) != op_lines(c)


def test_replay_runs_a_log_exactly(boot):
    vm, _ = fuzz_run(boot, seed=9, ops=150)
    log = op_lines(vm)
    programs = vm.events_named("fuzz_program")
    replayed = boot(append="fuzz.replay", devices=REPORTING)
    replayed.wait_event("fuzz_device", timeout=60)
    for op in log:
        replayed.shell("fz " + op, expect_rc=None)
    assert op_lines(replayed) == log
    strip = [{k: v for k, v in e.items() if k not in ("t_ms", "_host_time")} for e in programs]
    again = [{k: v for k, v in e.items() if k not in ("t_ms", "_host_time")}
             for e in replayed.events_named("fuzz_program")]
    assert again == strip, "the oracles see the same thing in the replay"


def replay_ops(vm, ops):
    outs = []
    for op in ops:
        _, out = vm.shell("fz " + op, expect_rc=None)
        outs.append(out)
    return outs


def test_pattern_oracle_sees_memory_the_host_discarded(boot):
    vm = boot(append="fuzz.replay", devices=REPORTING)
    vm.wait_event("fuzz_device", timeout=60)
    # `hide` inflates 16 arena frames without the executor counting them as
    # given to the device: the host discards them, and the check must notice.
    replay_ops(vm, BRINGUP + ["add 0 d=0 hide r:pfns=a0x100+16", "kick 0", "wait 0 200", "check"])
    # `check` runs inside its shell command: its events are already in.
    [f] = vm.events_named("fuzz_finding")
    assert f["kind"] == "pattern" and f["detail"].startswith("16 arena frames")
    [prog] = vm.events_named("fuzz_program")
    assert prog["pattern_errors"] == 16 and prog["valid"] == 1


def test_frames_given_to_the_device_are_not_findings(boot):
    vm = boot(append="fuzz.replay", devices=REPORTING)
    vm.wait_event("fuzz_device", timeout=60)
    replay_ops(vm, BRINGUP + ["add 0 d=0 r:pfns=a0x100+16", "kick 0", "wait 0 200",
                              "add 1 d=1 r:pfns=a0x200+16", "kick 1", "wait 1 200", "check"])
    [prog] = vm.events_named("fuzz_program")
    assert prog["pattern_errors"] == 0 and prog["exposed"] == 16 and prog["used"] == 2
    assert not vm.events_named("fuzz_finding")


def test_needs_reset_in_a_valid_program_is_a_finding(boot):
    vm = boot(append="fuzz.replay", devices=REPORTING)
    vm.wait_event("fuzz_device", timeout=60)
    # A descriptor chain that loops: QEMU marks the device broken.
    replay_ops(vm, BRINGUP + ["add 0 d=3,4 loop r:pfns=a0+1 r:pfns=a1+1", "kick 0", "wait 0 100", "check"])
    [f] = vm.events_named("fuzz_finding")
    assert f["kind"] == "needs_reset_valid"
    assert vm.events_named("fuzz_program")[0]["status"] & 0x40


def test_executor_refuses_what_could_reach_kernel_memory(boot):
    vm = boot(append="fuzz.replay", devices=REPORTING)
    vm.wait_event("fuzz_device", timeout=60)
    outs = replay_ops(vm, BRINGUP + ["add 0 d=0 r:pfns=p0x300+1", "cw 0x20 8 0", "add 0 d=0 w:range=a0+0x3000000",
                                     "qsetup 0 4096", "bogus 1", "add 0 d=0,1 r:zero=4"])
    text = "\n".join("\n".join(o) for o in outs[len(BRINGUP):])
    assert "run p0x300+1 names RAM the guest uses" in text
    assert "ring addresses are written only by qsetup" in text
    assert "leaves the arena" in text
    assert "beyond the ring memory" in text
    assert 'fz: unknown op at "bogus"' in text
    assert "a direct chain needs one descriptor per segment" in text
    ev, _ = vm.shell("fz")
    assert ev["rc"] == 0
    assert vm.events_named("fuzz_done")[-1]["refused"] == 4


def test_minimizer_cuts_a_log_to_what_reproduces(tmp_path):
    noise = ["dr 0 4", "add 1 d=5 r:pfns=a0x400+2", "kick 1", "wait 1 50", "dr 0x4 4", "cr 0x14 1"]
    ops = BRINGUP + noise + ["add 0 d=0 hide r:pfns=a0x100+4", "kick 0", "wait 0 200"] + noise + ["check"]
    small, kind, sig, tests = fuzz_device.minimize(ops, "reporting", log=lambda *a: None)
    assert (kind, sig) == ("finding", "pattern")
    assert len(small) < len(ops) / 3
    assert "check" in small and any("hide" in op for op in small)
    assert fuzz_device.replay(small, "reporting")[:2] == ("finding", "pattern")


QEMU_1_LOG = os.path.join(ROOT, "tests", "fuzz", "findings", "qemu-1-hint-kick.log")


def test_kept_qemu_1_reproducer_still_reproduces():
    # On 7.2 and on 10.0.2 alike: kicking the hint queue makes the iothread
    # raise INTx without the big lock (docs/findings.md, QEMU-1). 7.2 says
    # qemu_mutex_iothread_locked(), 10.0 bql_locked().
    assert fuzz_device.log_config(QEMU_1_LOG) == "hint"
    kind, sig, _ = fuzz_device.replay(fuzz_device.read_log(QEMU_1_LOG), "hint")
    assert kind == "crash" and "tcg_handle_interrupt" in sig, f"{kind}: {sig}"



def test_a_legacy_balloon_is_refused_with_the_reason_not_taken_for_a_hang(monkeypatch):
    """The device fuzzer writes modern PCI registers; given a balloon on the
    legacy interface (disable-modern=on) the guest refuses, and the tool says
    why at once instead of waiting out the hang timeout and keeping a finding."""
    monkeypatch.setitem(fuzz_device.CONFIGS, "legacy",
                        (["virtio-balloon-pci,id=bal0,disable-modern=on"], []))
    with pytest.raises(fuzz_device.FuzzRefused, match="not on modern PCI"):
        fuzz_device.run_seed(1, 50, "legacy", hang_s=300, keep=False)
    with pytest.raises(fuzz_device.FuzzRefused, match="not on modern PCI"):
        fuzz_device.replay(["status 0"], "legacy", hang_s=300)
