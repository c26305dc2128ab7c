"""virtio-rng with a device that answers late or never (issue 12).

The device's entropy comes from a FIFO this test holds open and writes only
when it wants the device to answer (`-object rng-random` on the FIFO), so a
request can be left waiting as long as the test likes. Checked: a wait for
the device runs no other work (a line typed meanwhile is kept whole and runs
after the command, never inside it), and a buffer that timed out stays the
device's: the next request says "busy" instead of posting a second buffer,
and the late answer is discarded instead of satisfying a later request.
"""
import os
import time

import pytest

# Negative errno values as the guest's C library (newlib) numbers them.
ETIMEDOUT = -116
EBUSY = -16


@pytest.fixture
def slow_rng(tmp_path):
    """A FIFO for the rng backend, held open for writing (so QEMU's reads
    wait instead of seeing end-of-file); returns (device args, write fn)."""
    fifo = str(tmp_path / "entropy")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    args = ["-object", f"rng-random,id=slow,filename={fifo}"]

    def answer(nbytes):
        os.write(fd, bytes(range(1, nbytes + 1)))
    yield args, answer
    os.close(fd)


def boot_slow(boot, slow_rng, append=""):
    args, answer = slow_rng
    vm = boot(mem="128M", devices=["virtio-rng-pci,id=rng0,rng=slow"], extra_args=args,
              append=append)
    vm.wait_event("ready", timeout=30)
    return vm, answer


def start_waiting(vm, line):
    """Type `line` and return once the shell has taken it (its echo ended;
    a late answer's message may have come between the prompt and the echo)."""
    with vm.cond:
        start = len(vm.lines)
    vm.send(line + "\n")
    vm.wait_for(lambda: any(l.endswith(line) for l in vm.lines[start:]), 30, f"the echo of {line!r}")
    time.sleep(0.2)


def cmd_events(vm):
    return [(e["name"], e.get("rc")) for e in vm.events if e["ev"] in ("cmd", "cmd_error")]


def test_a_line_typed_while_rng_waits_is_kept_and_runs_after_it(boot, slow_rng):
    # Before the fix, rng's wait ran the shell's own work item inside the
    # command: the half line "he" went into the line being executed and was
    # thrown away with it ("lp" then ran as an unknown command), and a whole
    # line typed during the wait ran nested inside rng.
    vm, _ = boot_slow(boot, slow_rng)
    start_waiting(vm, "rng 16 1500")
    vm.send("he")
    vm.wait_event("cmd", timeout=30, where={"name": "rng"})
    vm.send("lp\n")
    vm.wait_for(lambda: len(cmd_events(vm)) >= 2, 30, "a second command")
    assert cmd_events(vm) == [("rng", ETIMEDOUT), ("help", 0)]
    assert any("poweroff" in line for line in vm.lines)


# irq=poll: the wait itself polls the console and the device (no interrupt
# brings either), and must still keep the typed line and see the answer.
@pytest.mark.parametrize("append", ["", "irq=poll"])
def test_a_command_typed_during_a_wait_runs_after_it(boot, slow_rng, append):
    vm, answer = boot_slow(boot, slow_rng, append)
    start_waiting(vm, "rng 16 1500")
    vm.send("pfa\n")
    vm.wait_event("cmd", timeout=30, where={"name": "pfa"})
    assert cmd_events(vm) == [("rng", ETIMEDOUT), ("pfa", 0)]
    # The wait ran no other work: pfa's output follows rng's failure line.
    text = "\n".join(vm.lines)
    assert text.index("error: rng:") < text.index("frames (4 KiB)")
    # And an answer that comes during a wait ends it.
    answer(16)
    vm.wait_event("rng_late", timeout=30)
    start_waiting(vm, "rng 8 10000")
    vm.send("help\n")
    answer(8)
    assert vm.wait_event("rng", timeout=30)["bytes"] == 8
    vm.wait_event("cmd", timeout=30, where={"name": "help"})
    assert cmd_events(vm)[2:] == [("rng", 0), ("help", 0)]


def test_a_late_rng_answer_is_discarded_not_given_to_the_next_request(boot, slow_rng):
    # Before the fix, a timed-out buffer stayed posted under the same token:
    # the next request posted a second one, the late answer (16 bytes)
    # completed the 8-byte request, and dead buffers filled the queue.
    vm, answer = boot_slow(boot, slow_rng)
    vm.shell("rng 16 300", expect_rc=ETIMEDOUT)
    ev, out = vm.shell("rng 8 300", expect_rc=EBUSY)
    assert any("still holds" in line for line in out), out
    answer(16)
    late = vm.wait_event("rng_late", timeout=30)
    assert late["bytes"] == 16
    start_waiting(vm, "rng 8 10000")
    answer(8)
    ev = vm.wait_event("rng", timeout=30)
    assert ev["bytes"] == 8
    vm.wait_event("cmd", timeout=30, where={"name": "rng", "rc": 0})
    # Many timeouts in a row never fill the queue: each one after the first
    # is refused (busy) without posting anything.
    vm.shell("rng 16 100", expect_rc=ETIMEDOUT)
    for _ in range(70):
        vm.shell("rng 16 1", expect_rc=EBUSY)
    answer(16)
    vm.wait_event("rng_late", timeout=30)
    start_waiting(vm, "rng 4 10000")
    answer(4)
    assert vm.wait_event("rng", timeout=30)["bytes"] == 4
