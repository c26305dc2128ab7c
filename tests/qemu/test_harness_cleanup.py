"""No QEMU outlives the harness that started it.

Before issue 12 a timed-out wait in test_fuzz_device.py left its QEMU
running, owned by nobody, 11 minutes later. Here real harnesses (the scenario
runner, the device fuzzer, pytest with the `boot` fixture, a bare script)
are started in a subprocess, made to boot QEMU, and then interrupted
(SIGINT, SIGTERM), killed (SIGKILL) or made to raise; each QEMU they started
is found by pid while they run and must be gone once they have ended.
Before the fix SIGTERM, SIGKILL and a script that raised without closing
its guest all left QEMU running.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from blimp import qmp, vm as blimpvm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TOOLS = os.path.join(ROOT, "tools")


def _stat(pid):
    """(state, ppid, start time, command name) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), fields[19], comm


def qemu_children(parent):
    """The QEMU processes whose parent is `parent`, as (pid, start time):
    the pair names a process even if its pid is reused later."""
    found = []
    for entry in os.listdir("/proc"):
        st = _stat(entry) if entry.isdigit() else None
        if st and st[1] == parent and st[3].startswith("qemu-system") and st[0] != "Z":
            found.append((int(entry), st[2]))
    return found


def alive(qemu):
    st = _stat(qemu[0])
    return st is not None and st[2] == qemu[1] and st[0] != "Z"


class Harness:
    """A harness in a subprocess; its output is collected as it comes."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.out = []
        self.reader = threading.Thread(target=lambda: self.out.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def output(self):
        return "".join(self.out)

    def wait_for_qemu(self, text=None, timeout=60):
        """Wait until the harness runs QEMU (and has printed `text`); returns its QEMU."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            qemus = qemu_children(self.proc.pid)
            if qemus and (text is None or text in self.output()):
                return qemus
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.proc.kill()
        pytest.fail(f"the harness never ran QEMU{f' and printed {text!r}' if text else ''}:\n"
                    + self.output()[-3000:])

    def end(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the harness did not end within {timeout}s:\n" + self.output()[-3000:])


def assert_gone(qemus, harness, why):
    deadline = time.monotonic() + 10  # SIGKILL of QEMU is immediate; reaping is not
    while any(alive(q) for q in qemus) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [q[0] for q in qemus if alive(q)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # do not leave it to the next test either
    assert not left, f"QEMU pid {left} still running after {why}:\n" + harness.output()[-3000:]


SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
IDS = [s.name for s in SIGNALS]


@pytest.mark.parametrize("sig", SIGNALS, ids=IDS)
def test_scenario_runner_signalled_mid_run_leaves_no_qemu(tmp_path, sig):
    scn = tmp_path / "long.scn"
    scn.write_text("boot mem=128M\nsleep 120\n")
    h = Harness([sys.executable, os.path.join(TOOLS, "scenario.py"), str(scn)])
    qemus = h.wait_for_qemu("booted")
    h.proc.send_signal(sig)
    h.end()
    assert_gone(qemus, h, f"the scenario runner got {sig.name}")


@pytest.mark.parametrize("sig", SIGNALS[:2], ids=IDS[:2])
def test_device_fuzzer_signalled_mid_run_leaves_no_qemu(sig):
    h = Harness([sys.executable, os.path.join(TOOLS, "fuzz_device.py"), "run", "--seed", "3",
                 "--ops", "1000000"])
    qemus = h.wait_for_qemu()
    time.sleep(2)  # into wait_run, the fuzzer busy in the guest
    h.proc.send_signal(sig)
    h.end()
    assert_gone(qemus, h, f"fuzz_device.py got {sig.name}")


PYTEST_CASE = '''
import os
import time

def test_boots_then_{what}(boot):
    vm = boot(mem="128M")
    vm.wait_event("ready", timeout=60)
    print("booted", flush=True)
    {action}
'''


@pytest.mark.parametrize("what,sig", [("waits", signal.SIGINT), ("waits", signal.SIGTERM), ("raises", None)])
def test_pytest_with_the_boot_fixture_leaves_no_qemu(tmp_path, what, sig):
    go = tmp_path / "go"  # the case raises once its QEMU has been seen
    action = "time.sleep(120)" if what == "waits" else \
        (f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
         '    raise RuntimeError("the test broke mid-way")')
    (tmp_path / "test_case.py").write_text(PYTEST_CASE.format(what=what, action=action))
    # The fixtures of tests/qemu, loaded as a plugin: the case gets `boot`.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, TOOLS]))
    h = Harness([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "conftest",
                 "--rootdir", str(tmp_path), str(tmp_path / "test_case.py")], env=env)
    qemus = h.wait_for_qemu("booted")
    if sig:
        h.proc.send_signal(sig)
    go.write_text("")
    rc = h.end()
    assert rc != 0, h.output()[-3000:]
    assert_gone(qemus, h, f"pytest {'got ' + sig.name if sig else 'ran a test that raised'}")


def test_script_that_raises_without_closing_its_guest_leaves_no_qemu():
    script = ("from blimp.vm import BlimpVM\n"
              "vm = BlimpVM(mem='128M').start()\n"
              "vm.wait_event('ready', timeout=60)\n"
              "print('booted', flush=True)\n"
              "import time; time.sleep(1)\n"
              "raise RuntimeError('the harness broke and never called close()')\n")
    h = Harness([sys.executable, "-c", script], env=dict(os.environ, PYTHONPATH=TOOLS))
    qemus = h.wait_for_qemu("booted")
    assert h.end() != 0
    assert "never called close()" in h.output()
    assert_gone(qemus, h, "the script raised")


def test_start_that_fails_after_qemu_started_leaves_no_qemu(monkeypatch):
    def no_answer(path, timeout=30.0):
        raise qmp.QMPError(f"could not connect to QMP socket {path} (made to fail by the test)")
    monkeypatch.setattr(qmp, "QMP", no_answer)
    vm = blimpvm.BlimpVM(mem="128M")
    try:
        with pytest.raises(qmp.QMPError):
            vm.start()
        assert vm.proc is not None, "QEMU should have been started before QMP failed"
        assert vm.proc.poll() is not None, f"QEMU pid {vm.proc.pid} still running after start() failed"
        assert not os.path.exists(vm.tmp)
    finally:
        if vm.proc and vm.proc.poll() is None:
            vm.proc.kill()  # what start() should have done
