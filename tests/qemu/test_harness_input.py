"""Host only, no QEMU: the harness's own error for a malformed event line.

Event lines are the tools' input (docs/events.md). Before issue 12, the
harness (now blimp.vm) and the device fuzzer (blimp.fuzz_device) indexed
fields unchecked: a `cmd` event without "name" raised KeyError inside
BlimpVM.shell's wait, one whose "name" was a number made the wait time out
without saying why, and a `fuzz_finding` without "kind" raised KeyError in
fuzz_device.judge. Each must be refused as a malformed line, named in the
error.
"""
import threading
import time
import types

import pytest

from blimp import events, fuzz_device, vm as blimpvm


def fake_guest(answer):
    """A BlimpVM with no QEMU behind it: whatever is typed, the "guest"
    prints the lines in `answer` (str)."""
    vm = blimpvm.BlimpVM(qmp=False, name="fake")
    vm.start_time = time.monotonic()

    class Keyboard:
        def write(self, data):
            for line in answer:
                vm._add_line(line.encode())

        def flush(self):
            pass
    vm.proc = types.SimpleNamespace(poll=lambda: None, stdin=Keyboard(), kill=lambda: None,
                                    wait=lambda timeout=None: 0, pid=0)
    vm.reader = threading.Thread(target=lambda: None)
    return vm


MALFORMED_CMD = [
    '@ev {"ev":"cmd","t_ms":1,"rc":0}',                  # no name
    '@ev {"ev":"cmd","t_ms":1,"name":7,"rc":0}',         # name not a string
    '@ev {"ev":"cmd","t_ms":1,"name":"mem"}',            # no rc
    '@ev {"ev":"cmd","t_ms":1,"name":"mem","rc":"0"}',   # rc a string
    '@ev {"ev":"cmd","t_ms":1,"name":"mem","rc":false}',  # rc a JSON boolean
    '@ev {"ev":"cmd","t_ms":true,"name":"mem","rc":0}',  # t_ms a JSON boolean
    '@ev {"ev":"cmd_error","t_ms":1}',                   # no name
    '@ev ["cmd", "mem", 0]',                             # not an object
    '@ev 42',
    '@ev null',
    '@ev "cmd"',
]


@pytest.mark.parametrize("line", MALFORMED_CMD)
def test_malformed_command_event_fails_the_shell_at_once_naming_the_line(line):
    vm = fake_guest(["mem: ...", line])
    try:
        t0 = time.monotonic()
        with pytest.raises(blimpvm.GuestError) as e:
            vm.shell("mem", timeout=20)
        assert "malformed event line" in str(e.value) and line in str(e.value)
        assert time.monotonic() - t0 < 5, "the wait should not run to its timeout"
    finally:
        vm.close()


def test_well_formed_command_event_still_ends_the_shell_command():
    vm = fake_guest(["mem: ...", '@ev {"ev":"cmd","t_ms":1,"name":"mem","rc":0}'])
    try:
        ev, out = vm.shell("mem", timeout=5)
        assert ev["rc"] == 0 and out[0] == "mem: ..."
    finally:
        vm.close()


@pytest.mark.parametrize("line,needle", [
    ('@ev {"ev":"ready","t_ms":3,"boot":"pvh"}', "'ready' event without int field 'mem_usable'"),
    ('@ev {"ev":"pfa","t_ms":3,"free":1,"check":0}', "'pfa' event without str field 'check'"),
    ('@ev {"ev":"fuzz_finding","t_ms":3,"detail":"x"}', "'fuzz_finding' event without str field 'kind'"),
    ('@ev {"ev":"fuzz_done","t_ms":3,"ops":"many","programs":1,"needs_reset_bad":0,'
     '"needs_reset_valid":0}', "'fuzz_done' event without int field 'ops'"),
])
def test_event_without_a_field_the_tools_read_is_refused(line, needle):
    with pytest.raises(events.EventFormatError) as e:
        events.parse_event(line)
    assert needle in str(e.value) and line in str(e.value)
    # Events the tools do not read fields of need only "ev" and "t_ms".
    assert events.parse_event('@ev {"ev":"balloon_done","t_ms":9}')["ev"] == "balloon_done"


@pytest.mark.parametrize("line", [
    '@ev {"ev":"fuzz_finding","t_ms":5,"detail":"16 frames"}',             # no kind
    '@ev {"ev":"fuzz_finding","t_ms":5,"kind":["pattern"],"detail":"x"}',  # kind not a string
    '@ev {"ev":"fuzz_finding","t_ms":5,"kind":"pattern"}',                 # no detail
    '@ev {"ev":"fuzz_done","t_ms":5}',
    '@ev [1, 2]',
])
def test_fuzzer_judges_a_malformed_line_as_a_guest_finding_naming_it(line):
    vm = fake_guest([])
    try:
        for text in ["fuzz: seed 1", "fz prog 1 valid", line]:
            vm._add_line(text.encode())
        finished, hang = fuzz_device.wait_run(vm, hang_s=20)
        assert (finished, hang) == (False, None), "wait_run should stop at the malformed line"
        kind, sig, detail = fuzz_device.judge(vm, finished, hang)
        assert (kind, sig) == ("guest", "malformed event line")
        assert line in detail
    finally:
        vm.close()


def test_fuzzer_still_judges_a_well_formed_finding():
    vm = fake_guest([])
    try:
        vm._add_line(b'@ev {"ev":"fuzz_finding","t_ms":5,"kind":"pattern","prog":1,"op":2,'
                     b'"valid":1,"detail":"16 arena frames"}')
        assert fuzz_device.judge(vm, True, None) == ("finding", "pattern", "16 arena frames")
    finally:
        vm.close()
