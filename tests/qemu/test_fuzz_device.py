"""blimp fuzzing the virtio-balloon device: fuzz mode, its oracles, replay and
the minimizer of tools/fuzz_device.py, against real QEMU; and the other
shapes of the device: packed rings on PCI, virtio-mmio version 2 (split and
packed) and legacy version 1 on microvm."""
import os
import time

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


def assert_replays_exactly(vm, log, replayed):
    """`replayed`, a guest booted with fuzz.replay, runs vm's op log line by
    line: the same ops come out, and the oracles see the same programs."""
    programs = vm.events_named("fuzz_program")
    replayed.wait_event("fuzz_device", timeout=60)
    for op in log:
        replayed.shell("fz " + op, expect_rc=None)
    assert op_lines(replayed) == log
    strip = [{k: v for k, v in e.items() if k not in ("t_ms", "_host_time")} for e in programs]
    again = [{k: v for k, v in e.items() if k not in ("t_ms", "_host_time")}
             for e in replayed.events_named("fuzz_program")]
    assert again == strip, "the oracles see the same thing in the replay"


def test_replay_runs_a_log_exactly(boot):
    vm, _ = fuzz_run(boot, seed=9, ops=150)
    log = op_lines(vm)
    assert_replays_exactly(vm, log, boot(append="fuzz.replay", devices=REPORTING))


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
    """The device fuzzer writes modern PCI and virtio-mmio registers; given a
    balloon on legacy PCI's I/O interface (disable-modern=on) the guest refuses, and the tool says
    why at once instead of waiting out the hang timeout and keeping a finding."""
    monkeypatch.setitem(fuzz_device.CONFIGS, "legacy",
                        (["virtio-balloon-pci,id=bal0,disable-modern=on"], []))
    with pytest.raises(fuzz_device.FuzzRefused, match="on legacy PCI"):
        fuzz_device.run_seed(1, 50, "legacy", hang_s=300, keep=False)
    with pytest.raises(fuzz_device.FuzzRefused, match="on legacy PCI"):
        fuzz_device.replay(["status 0"], "legacy", hang_s=300)


# ---------------------------------------------------------------- the other shapes

SHAPES = {  # configuration: (the transport the guest reports, an op only that shape has)
    "packed": ("pci", "padd"),
    "mmio": ("mmio", "mw"),
    "mmio-packed": ("mmio", "padd"),
    "mmio-legacy": ("mmio-legacy", "mw"),
}


def boot_shape(boot, config, append):
    devices, extra = fuzz_device.CONFIGS[config]
    return boot(append=append, devices=devices, extra_args=extra, machine=fuzz_device.MACHINE.get(config, "q35"))


def shape_run(boot, config, seed, ops):
    vm = boot_shape(boot, config, f"fuzz fuzz.seed={seed} fuzz.ops={ops}")
    return vm, vm.wait_event("fuzz_done", timeout=300)


@pytest.mark.parametrize("config", list(SHAPES))
def test_each_shape_is_fuzzed_cleanly_and_a_seed_gives_the_same_ops(boot, config):
    transport, own_op = SHAPES[config]
    a, done = shape_run(boot, config, seed=3, ops=300)
    assert a.events_named("fuzz_device")[0]["transport"] == transport
    log = op_lines(a)
    kinds = {op.split()[0] for op in log}
    assert own_op in kinds, sorted(kinds)
    if config == "mmio-legacy":
        assert not kinds & {"padd", "qaddr", "cw"}, sorted(kinds)  # v1: split rings, QueuePFN
    # QEMU lived through it, the valid programs drew no finding, and memory
    # the device was never given kept its patterns.
    assert a.proc.poll() is None and not any(ln.startswith(("ERROR:", "Bail out!")) for ln in a.stderr_lines)
    assert done["ops"] == len(log) >= 300 and done["programs"] >= 3
    assert done["findings"] == 0 and done["pattern_errors"] == 0 and done["needs_reset_valid"] == 0
    b, _ = shape_run(boot, config, seed=3, ops=300)
    assert op_lines(b) == log


@pytest.mark.parametrize("config", ["packed", "mmio-packed", "mmio-legacy"])
def test_a_shape_log_replays_exactly(boot, config):
    vm, _ = shape_run(boot, config, seed=3, ops=150)
    log = op_lines(vm)
    assert_replays_exactly(vm, log, boot_shape(boot, config, "fuzz.replay"))


PCI_PACKED_BRINGUP = [op if op != "cw 0xc 4 0x1" else "cw 0xc 4 0x5" for op in BRINGUP]  # + RING_PACKED (bit 34)
MMIO_BRINGUP = """prog 1 valid
reset
mw 0x70 4 0x1
mw 0x70 4 0x3
mw 0x24 4 0
mw 0x20 4 0x20
mw 0x24 4 0x1
mw 0x20 4 0x1
mw 0x70 4 0xb
qsetup 0 64
qsetup 1 64
qsetup 2 64
mw 0x70 4 0xf""".splitlines()


@pytest.mark.parametrize("config", ["packed", "mmio-packed"])
def test_packed_buffers_complete_through_several_wraps_of_a_small_ring(boot, config):
    vm = boot_shape(boot, config, "fuzz.replay")
    vm.wait_event("fuzz_device", timeout=60)
    bringup = PCI_PACKED_BRINGUP if config == "packed" else \
        [op if op != "mw 0x20 4 0x1" else "mw 0x20 4 0x5" for op in MMIO_BRINGUP]
    bringup = [op if op != "qsetup 0 64" else "qsetup 0 3" for op in bringup]
    ops = []
    # A ring of 3: buffer k goes to slot k % 3 with the wrap counter of its
    # pass (1, 0, 1, ...), and frees its id for the next.
    for k in range(8):
        ops += [f"padd 0 at={k % 3} id={k % 2} wrap={1 - (k // 3) % 2} r:pfns=a{0x100 + 16 * k:#x}+16",
                "kick 0", "wait 0 500"]
    outs = replay_ops(vm, bringup + ops + ["check"])
    text = "\n".join("\n".join(o) for o in outs)
    assert "refused" not in text, text
    [prog] = vm.events_named("fuzz_program")
    assert prog["used"] == 8 and prog["bad_used"] == 0 and prog["exposed"] == 8 * 16, prog
    assert prog["status"] == 0x0f and not vm.events_named("fuzz_finding"), prog
    vm.shell("fz")
    assert vm.events_named("fuzz_done")[-1]["needs_reset_valid"] == 0


def test_mmio_register_writes_that_would_misplace_a_ring_are_refused(boot):
    vm = boot_shape(boot, "mmio", "fuzz.replay")
    vm.wait_event("fuzz_device", timeout=60)
    misuse = ["mw 0x30 4 0x7", "mw 0x44 4 0x1",               # a queue with no addresses: refused
              "qaddr 7 0 0x4000 0x5000", "mw 0x38 4 0x40", "mw 0x44 4 0x1",  # with them: allowed
              "mw 0x84 4 0",                                  # an address register: qaddr's only
              "qaddr 0 0x9001 0 0",                           # beyond the ring memory
              "mw 0x38 4 0x10000", "mw 0x44 4 0x1",           # a size past the ring memory
              "mw 0x70 1 0", "mw 0x30 4 0", "mw 0x44 4 0x1",  # after a possible reset: no addresses
              "mr 0x50 4", "mw 0x14 2 0x1", "mw 0x10 4 0xffffffff",  # write-only read, odd width, read-only
              "add 0 d=0 r:pfns=a0x100+8", "kick 0", "wait 0 200", "check"]
    outs = replay_ops(vm, MMIO_BRINGUP + misuse)
    said = ["\n".join(o) for o in outs[len(MMIO_BRINGUP):]]
    refused = [op for op, out in zip(misuse, said) if "refused" in out]
    assert refused == ["mw 0x44 4 0x1", "mw 0x84 4 0", "qaddr 0 0x9001 0 0", "mw 0x44 4 0x1", "mw 0x44 4 0x1"], said
    assert "QueueReady only for a selected queue" in said[1]
    assert "written only by qsetup and qaddr" in said[5]
    assert vm.proc.poll() is None


def test_legacy_mmio_ring_placement_is_checked_before_it_is_written(boot):
    vm = boot_shape(boot, "mmio-legacy", "fuzz.replay")
    vm.wait_event("fuzz_device", timeout=60)
    bringup = [op for op in MMIO_BRINGUP if op not in ("mw 0x24 4 0x1", "mw 0x20 4 0x1", "mw 0x70 4 0xb")]
    bringup[-1] = "mw 0x70 4 0x7"  # no FEATURES_OK in v1
    misuse = ["add 0 d=0 r:pfns=a0x100+8", "kick 0", "wait 0 500",
              "mw 0x30 4 0", "mw 0x3c 4 0x10000",             # the used ring 64 KiB on: refused
              "mw 0x3c 4 0x2000",                             # 8 KiB: still inside
              "mw 0x38 4 0x10000",                            # 65536 entries: refused
              "mw 0x28 4 0x3", "mw 0x40 4 0x1",               # a page of 3 bytes: no QueuePFN
              "mw 0x40 2 0", "check"]                         # half a register: refused
    outs = replay_ops(vm, bringup + misuse)
    said = ["\n".join(o) for o in outs[len(bringup):]]
    refused = [op for op, out in zip(misuse, said) if "refused" in out]
    assert refused == ["mw 0x3c 4 0x10000", "mw 0x38 4 0x10000", "mw 0x40 4 0x1", "mw 0x40 2 0"], said
    assert "would leave the ring memory" in said[4] and "no power of two" in said[8]
    [prog] = vm.events_named("fuzz_program")
    assert prog["used"] == 1 and prog["bad_used"] == 0, prog
    assert vm.proc.poll() is None


# The reproducers kept for QEMU-3..6 (docs/findings.md), and what each does
# on each QEMU: the assertion it aborts in, or None where that QEMU runs it
# cleanly. QEMU-5 and QEMU-6 are version-specific, in opposite directions.
KEPT = {
    "qemu-3-packed-indirect-zero.log": {7: "address_space_cache_init: Assertion `len > 0'",
                                        10: "address_space_cache_init: Assertion `len > 0'"},
    "qemu-4-mmio-features-after-queues.log": {7: "Assertion `cache->is_write'", 10: "Assertion `cache->is_write'"},
    "qemu-5-mmio-queue-num-while-ready.log": {7: "address_space_stw_le_cached: Assertion", 10: None},
    "qemu-6-mmio-packed-queue-num-shrink.log": {7: None, 10: "address_space_lduw_le_cached: Assertion"},
}


@pytest.mark.parametrize("name", list(KEPT))
def test_kept_shape_reproducers_do_what_findings_md_says_on_this_qemu(name):
    path = os.path.join(ROOT, "tests", "fuzz", "findings", name)
    config = fuzz_device.log_config(path)
    assert config in ("packed", "mmio", "mmio-packed"), config
    want = KEPT[name][10 if qemu_version()[0] >= 10 else 7]
    kind, sig, _ = fuzz_device.replay(fuzz_device.read_log(path), config)
    if want is None:
        assert kind == "ok", f"{kind}: {sig}"
    else:
        assert kind == "crash" and want in sig, f"{kind}: {sig}"


def test_compare_tells_the_same_assertion_from_a_different_one():
    # The same assertion at 7.2's and 10.0's source paths is one bug; QEMU-5
    # on 7.2 and QEMU-6 on 10.0, both "addr < cache->len", are two (seen on
    # one log of the shapes campaign). No QEMU is run.
    a = ("crash", "qemu-system-x86_64: ../../softmmu/physmem.c:3332: address_space_cache_init: Assertion `len > 0' failed.")
    b = ("crash", "qemu-system-x86_64: system/physmem.c:3520: address_space_cache_init: Assertion `len > 0' failed.")
    stw = ("crash", "qemu-system-x86_64: ./include/exec/memory_ldst_cached.h.inc:77: address_space_stw_le_cached: "
                    "Assertion `addr < cache->len && 2 <= cache->len - addr' failed.")
    lduw = ("crash", "qemu-system-x86_64: ./include/exec/memory_ldst_cached.h.inc:30: address_space_lduw_le_cached: "
                     "Assertion `addr < cache->len && 2 <= cache->len - addr' failed.")
    assert fuzz_device.verdict(a, b) == "both"
    assert fuzz_device.verdict(stw, lduw) == "both, but a different failure"
    assert fuzz_device.verdict(stw, ("ok", "")) == "only here"
    assert fuzz_device.verdict(("ok", ""), lduw) == "only on the other"
    assert fuzz_device.verdict(("hang", "no serial output and no QMP answer"),
                               ("guest", "no serial output while QEMU still answers QMP")) == "both"


def test_shape_flags_name_the_configurations():
    # tools/fuzz_device.py --machine/--packed/--legacy-mmio; no QEMU is run.
    shape = fuzz_device.shape_config
    assert shape("reporting") == "reporting"
    assert shape("reporting", packed=True) == "packed"
    assert shape("reporting", machine="microvm") == "mmio"
    assert shape("reporting", machine="microvm", packed=True) == "mmio-packed"
    assert shape("reporting", machine="microvm", legacy_mmio=True) == "mmio-legacy"
    for bad in ({"legacy_mmio": True}, {"machine": "microvm", "legacy_mmio": True, "packed": True},
                {"machine": "pc"}):
        with pytest.raises(ValueError):
            shape("reporting", **bad)
    assert all(fuzz_device.MACHINE.get(c, "q35") == ("microvm" if c.startswith("mmio") else "q35")
               for c in fuzz_device.CONFIGS)


class _SilentVM:
    """Enough of a BlimpVM for wait_run and judge: serial lines that stop
    (and come back after `resume_after` seconds, if given), a QEMU that runs
    on and whose QMP answers at once. No QEMU is run."""

    class _Proc:
        def poll(self):
            return None

    class _QMP:
        class sock:
            @staticmethod
            def settimeout(t):
                pass

        @staticmethod
        def execute(cmd):
            return {}

    def __init__(self, resume_after):
        self.t0, self.resume_after = time.monotonic(), resume_after
        self._lines = ["fz kick 0"]
        self.events, self.bad_lines, self.stderr_lines = [], [], []
        self.proc, self.qmp = self._Proc(), self._QMP()

    @property
    def lines(self):
        if self.resume_after is not None and time.monotonic() - self.t0 > self.resume_after:
            self._lines[1:] = ["fz wait 0 20"]
        return self._lines

    def tail(self, n):
        return "\n".join(self._lines[-n:])


def test_a_guest_silent_past_the_limit_is_told_apart_from_qemu_busy_in_its_access():
    # Silent for good: blimp is stuck. Silent past the limit, then going on
    # while QMP answers at once: QEMU was busy in the guest's device access.
    assert fuzz_device.wait_run(_SilentVM(None), hang_s=0.5) == (False, "guest")
    assert fuzz_device.wait_run(_SilentVM(1.0), hang_s=0.5) == (False, "busy")
    kind, sig, _ = fuzz_device.judge(_SilentVM(0), False, "busy")
    assert kind == "hang" and "QEMU busy" in sig
