"""The policy daemon (tools/blimp/policy) on two real blimp guests.

Two guests of 256 MiB under a budget of 384 MiB, each with a swap disk and
a second QMP socket for the daemon (QEMU serves one client per socket; the
test keeps the first). The daemon runs as `python3 -m blimp.policy` with the
`window` policy, then `ws` (blimp's AVAIL as its working-set figure), one
step a second, recording each step. Both guests start idle and are
squeezed to fit the budget; then one runs a workload larger
than what it was left. Its faults must win it memory, taken from the idle
guest, while the targets never add up to more than the budget, and neither
guest crashes or loses a page. Then the idle guest's QEMU is killed: the
daemon drops it, says so and goes on. SIGTERM ends it with status 0.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_paging import MIB, assert_no_corruption, image

from blimp.vm import ROOT

BUDGET = 384 * MIB
MEM = 256 * MIB


def boot_guest(boot, tmp_path, name):
    qmp2 = str(tmp_path / f"{name}.qmp")
    vm = boot(mem="256M", devices=["virtio-blk-pci,drive=sw", "virtio-balloon-pci,id=bal0"],
              extra_args=["-drive", f"if=none,id=sw,file={image(tmp_path, name + '.img', 256)},format=raw",
                          "-qmp", f"unix:{qmp2},server=on,wait=off"],
              append="vm.swap=0")
    vm.wait_event("ready", timeout=120)
    return vm, qmp2


def read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def wait_records(path, daemon, predicate, timeout, what):
    """Poll the daemon's record file until predicate(records) is true."""
    deadline = time.monotonic() + timeout
    while True:
        recs = read_records(path)
        if predicate(recs):
            return recs
        assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}: {recs[-1:]}"
        time.sleep(0.2)


@pytest.mark.parametrize("policy", ["window", "ws"])
def test_the_policy_moves_memory_from_the_idle_guest_to_the_busy_one(boot, tmp_path, policy):
    busy, busy_qmp = boot_guest(boot, tmp_path, "busy")
    idle, idle_qmp = boot_guest(boot, tmp_path, "idle")
    record = str(tmp_path / "steps.jsonl")
    logf = open(tmp_path / "daemon.log", "w+")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tools"))
    daemon = subprocess.Popen([sys.executable, "-m", "blimp.policy", "--budget", "384M",
                               "--policy", policy, "--interval", "1", "--steps", "90",
                               "--record", record, "--guest", f"busy={busy_qmp},ws=avail",
                               "--guest", f"idle={idle_qmp},ws=avail"],
                              env=env, stdout=logf, stderr=subprocess.STDOUT)
    try:
        # Idle, both are cut to fit the budget.
        recs = wait_records(record, daemon, lambda r: len(r) >= 3, 30, "3 steps")
        start = recs[-1]["targets"]
        assert start["busy"] < MEM and start["idle"] < MEM, start
        # The busy guest runs 224 MiB, more than it was left: it swaps and faults.
        busy.shell("run w size=224M pattern=uniform write=30")
        recs = wait_records(record, daemon,
                            lambda r: r[-1]["targets"]["busy"] >= start["busy"] + 32 * MIB
                            and r[-1]["targets"]["busy"] > r[-1]["targets"]["idle"],
                            60, "the busy guest's target to rise above the idle one's")
        grown = recs[-1]
        # The idle guest really gave memory back, and nobody crashed.
        assert idle.qmp.execute("query-balloon")["actual"] <= start["idle"]
        for vm in (busy, idle):
            assert vm.proc.poll() is None
            vm.shell("mem")
        # Then the idle guest's QEMU dies: dropped, said, and the daemon goes
        # on with the other (its steps keep coming, with busy alone).
        idle.proc.kill()
        recs = wait_records(record, daemon, lambda r: list(r[-1]["targets"]) == ["busy"], 30,
                            "steps without the idle guest")
        n = len(recs)
        wait_records(record, daemon, lambda r: len(r) >= n + 2, 30, "two more steps")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        logf.seek(0)
        log = logf.read()
        logf.close()
    print(log[-3000:])
    recs = read_records(record)
    for r in recs:
        assert r["target_sum"] <= BUDGET, f"over budget: {r['targets']}"
        assert all(64 * MIB <= t <= MEM for t in r["targets"].values()), r["targets"]
    end = grown["targets"]
    assert end["idle"] < start["idle"], (start, end)
    assert "guest idle dropped:" in log, log[-2000:]
    # Why it grew: the daemon said so, with the fault figures.
    assert "guest busy: target" in log, log[-2000:]
    assert ("past the limit" if policy == "window" else "needs") in log, log[-2000:]
    assert busy.proc.poll() is None
    assert not busy.events_named("workload_error"), busy.events_named("workload_error")
    assert_no_corruption(busy)
    busy.shell("stop w")


def test_qemus_own_memory_is_rss_less_the_guest_ram_the_guest_touched(boot):
    """What the manager sets aside as QEMU's own (backend.overhead(): VmRSS
    less the Rss of QEMU's guest-RAM mapping, /proc/PID/smaps) must not
    grow when the guest touches memory: that is guest RAM, the budget's."""
    from blimp.policy.backend import BlimpVMBackend, ram_rss, rss_of
    vm = boot(mem="256M", devices=["virtio-balloon-pci,id=bal0"])
    vm.wait_event("ready", timeout=120)
    vm.name = "g"
    b = BlimpVMBackend(vm)
    ram0, own0 = ram_rss(vm.proc.pid, MEM), b.overhead()
    assert ram0 is not None and own0 is not None
    assert 0 < own0 < rss_of(vm.proc.pid), own0
    vm.shell("alloc 96M", timeout=120)
    ram1, own1 = ram_rss(vm.proc.pid, MEM), b.overhead()
    assert ram1 - ram0 >= 0.9 * 96 * MIB, (ram0, ram1)   # some frames were resident already
    assert abs(own1 - own0) < 16 * MIB, (own0, own1)     # QEMU's own moved little; the RAM did
    # The manager's host view is the guest RAM, not QEMU's own.
    from blimp.policy import make_policy
    from blimp.policy.manager import Manager
    m = Manager(make_policy("reporting"), BUDGET)
    m.add(b)
    rec = m.step()
    s = rec["samples"]["g"]
    assert rec["host_used"] == s.rss - s.overhead
    assert abs(rec["host_used"] - ram_rss(vm.proc.pid, MEM)) < 8 * MIB, rec["host_used"]
