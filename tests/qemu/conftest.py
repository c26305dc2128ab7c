"""Fixtures for tests that boot blimp under real QEMU.

`boot(...)` starts a guest (arguments as blimp.vm.BlimpVM: mem, machine,
boot="pvh"|"uefi", append, devices, extra_args, debug_exit) and closes it
after the test; a failed test gets the tail of every guest's serial log in
its report, and QEMU's own stderr (kept apart from the console) if it
wrote any.

Every guest runs on blimp.vm.qemu_binary(): $BLIMP_QEMU, else the system's
QEMU; the run's header names its version.

`linux_guest` is bench/linux's guest.json, built (or found up to date) by
bench/linux/build_guest.py; the test is skipped, with the script's message,
when Debian's packages cannot be downloaded (exit status 3), so that the
rest of the QEMU tests run offline. `make qemu-test` does not build it first.
"""
import json
import os
import subprocess
import sys

import pytest

from blimp.vm import QEMU_ENV, BlimpVM, qemu_binary, qemu_version_line

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD_GUEST = os.path.join(ROOT, "bench", "linux", "build_guest.py")
LINUX_GUEST_OUT = os.path.join(ROOT, "build", "bench", "linux")
EXIT_DOWNLOAD_FAILED = 3   # build_guest.py: a package could not be downloaded


def pytest_report_header(config):
    """Which QEMU the run is on ($BLIMP_QEMU selects it: make test-qemu10)."""
    return f"QEMU: {qemu_version_line()} ({qemu_binary()}; {QEMU_ENV} selects)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for vm in getattr(item, "blimp_vms", []):
            bad = "\n".join(vm.bad_lines)
            rep.sections.append((f"serial tail of {vm.name} ({' '.join(vm.cmd)})",
                                 vm.tail(60) + (f"\nmalformed event lines:\n{bad}" if bad else "")))
            if vm.stderr_lines:
                rep.sections.append((f"QEMU's stderr of {vm.name}", vm.qemu_stderr(40)))


@pytest.fixture
def boot(request):
    vms = []
    request.node.blimp_vms = vms

    def _boot(**kwargs):
        vm = BlimpVM(name=f"guest{len(vms)}", **kwargs)
        vms.append(vm)
        return vm.start()
    yield _boot
    for vm in vms:
        vm.close()
    # No guest may have printed a line that looks like an event but is not one.
    for vm in vms:
        assert not vm.bad_lines, "\n".join(vm.bad_lines)


def run_build_guest():
    """Run bench/linux/build_guest.py into build/bench/linux; the CompletedProcess."""
    return subprocess.run([sys.executable, BUILD_GUEST, "--out", LINUX_GUEST_OUT],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)


@pytest.fixture(scope="session")
def linux_guest():
    """guest.json of a freshly built (or up to date) Linux guest."""
    done = run_build_guest()
    if done.returncode == EXIT_DOWNLOAD_FAILED:
        pytest.skip(f"Debian's packages cannot be downloaded here:\n{done.stdout}")
    if done.returncode != 0:
        pytest.fail(f"build_guest.py failed with status {done.returncode}:\n{done.stdout}")
    with open(os.path.join(LINUX_GUEST_OUT, "guest.json")) as f:
        return json.load(f)
