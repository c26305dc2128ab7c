"""Fixtures for tests that boot blimp under real QEMU.

`boot(...)` starts a guest (arguments as blimp.vm.BlimpVM: mem, machine,
boot="pvh"|"uefi", append, devices, extra_args) and closes it after the test;
a failed test gets the tail of every guest's serial log in its report.
"""
import pytest

from blimp.vm import BlimpVM


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for vm in getattr(item, "blimp_vms", []):
            bad = "\n".join(vm.bad_lines)
            rep.sections.append((f"serial tail of {vm.name} ({' '.join(vm.cmd)})",
                                 vm.tail(60) + (f"\nmalformed event lines:\n{bad}" if bad else "")))


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
