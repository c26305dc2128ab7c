"""blimp under libvirt (issue 16): what a libvirt user does to a guest —
setmem, dommemstat and domstats, save and restore, reset, shutdown — checked
against what blimp itself says it did.

One private libvirtd for the module (blimp.libvirt.PrivateLibvirtd: its own
mount namespace, config, state and socket, so a system libvirtd is neither
needed nor disturbed) and one domain for the tests, in file order: the
domain lives on from one test to the next, and the shutdown test is last.
The domain is tools/blimp/libvirt.py's: TCG, q35, direct kernel boot, the
balloon with stats every second, reporting and deflate-on-OOM, a swap disk.

The console is read as libvirt leaves it: its output from the log file
virtlogd writes, its input through libvirt's console stream, attached only
for a command. Nobody reads the pty in between; one test attaches a
console client that never reads at all.

Needs root and libvirt (tools/install-deps.sh); skipped otherwise.
"""
import json
import re
import subprocess
import time

import pytest

from blimp import libvirt as blimp_libvirt
from blimp.units import MIB
from blimp.vm import qemu_binary, qemu_version

PAGE = 4096
RAM_MIB = 128
LOW_MIB = 64
HELPS = 40  # `help` commands typed into a console nobody reads (2 KiB of output each)

why_not = blimp_libvirt.missing()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")


@pytest.fixture(scope="module")
def daemon():
    d = blimp_libvirt.PrivateLibvirtd()
    try:
        yield d.start()
    finally:
        d.stop()


@pytest.fixture(scope="module")
def guest(daemon):
    g = blimp_libvirt.LibvirtGuest(daemon, name="blimp-test", mem_mib=RAM_MIB, swap_mib=256)
    try:
        g.start()
        g.wait_event("ready", timeout=120)
        yield g
    finally:
        g.close()
    assert not g.bad_lines, "\n".join(g.bad_lines)


@pytest.fixture(autouse=True)
def report_serial(request, guest):
    """A failed test shows the guest's console tail (conftest's hook)."""
    request.node.blimp_vms = [guest]


def virsh(daemon, *args, timeout=120):
    done = subprocess.run(["virsh", "-c", daemon.uri, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert done.returncode == 0, f"virsh {' '.join(args)}: {done.stdout}"
    return done.stdout


def wait_actual(guest, kib, timeout=120, why=""):
    """dommemstat's `actual` (KiB) reaches kib."""
    stats = {}

    def reached():
        nonlocal stats
        stats = guest.memory_stats()
        return stats.get("actual") == kib
    return guest.poll(reached, timeout, lambda: f"dommemstat actual {stats.get('actual')} never "
                      f"reached {kib} KiB in {timeout} s ({why})", 0.1) and stats


def setmem_round(daemon, guest, why):
    """virsh setmem down to LOW_MIB and back to RAM_MIB: libvirt's `actual`
    and blimp's balloon_done agree at each end."""
    guest.mark()
    virsh(daemon, "setmem", guest.name, f"{LOW_MIB}M", "--live")
    pages = (RAM_MIB - LOW_MIB) * MIB // PAGE
    done = guest.wait_event("balloon_done", where={"target": pages}, timeout=120)
    assert done["held"] == pages, done
    wait_actual(guest, LOW_MIB * 1024, why=f"setmem {LOW_MIB}M, {why}")
    b = guest.shell_event("balloon")
    assert b["target"] == pages and b["held"] == pages, b
    virsh(daemon, "setmem", guest.name, f"{RAM_MIB}M", "--live")
    guest.wait_event("balloon_done", where={"target": 0}, timeout=120)
    wait_actual(guest, RAM_MIB * 1024, why=f"setmem {RAM_MIB}M, {why}")
    b = guest.shell_event("balloon")
    assert b["target"] == 0 and b["held"] == 0, b


def test_the_domain_runs_on_the_qemu_the_run_is_on(daemon, guest):
    """$BLIMP_QEMU (make qemu10-subset: 10.0) is the domain's emulator, and
    the QEMU libvirt drives says so itself, over libvirt's own monitor."""
    assert f"<emulator>{blimp_libvirt.emulator_path()}</emulator>" in guest.dom.XMLDesc(), \
        guest.dom.XMLDesc()
    got = json.loads(virsh(daemon, "qemu-monitor-command", guest.name,
                           '{"execute": "query-version"}'))["return"]["qemu"]
    assert (got["major"], got["minor"], got["micro"]) == qemu_version(), (got, qemu_binary())


def test_setmem_moves_the_balloon_and_blimp_agrees(daemon, guest):
    setmem_round(daemon, guest, "first boot")
    # What a user reads: dominfo's "Used memory" follows the balloon too.
    assert re.search(rf"Used memory:\s+{RAM_MIB * 1024} KiB", virsh(daemon, "dominfo", guest.name))


def parse_pairs(text, sep):
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(sep, 1)
        if len(parts) == 2 and parts[1].strip().lstrip("-").isdigit():
            out[parts[0].strip()] = int(parts[1])
    return out


def test_dommemstat_shows_blimps_swap_and_fault_counters(daemon, guest):
    # 160 MiB in a 128 MiB guest: the fill pushes pages to swap and the
    # accesses fault some back (as test_paging's counters test, over QMP).
    guest.shell("run w size=160M pattern=uniform write=30 count=20000")
    done = guest.wait_event("workload_done", timeout=300)
    assert done["error"] == 0, done
    v = guest.shell_event("vm")
    assert v["swap_out"] > 0 and v["swap_in"] > 0 and v["majflt"] > 0 and v["minflt"] > 0, v
    # Stats come every second (<stats period='1'/>): wait until they are newer.
    want = {"swap_in": v["swap_in"] * PAGE // 1024, "swap_out": v["swap_out"] * PAGE // 1024,
            "major_fault": v["majflt"], "minor_fault": v["minflt"]}
    seen = {}

    def caught_up():
        nonlocal seen
        seen = parse_pairs(virsh(daemon, "dommemstat", guest.name), " ")
        return all(seen.get(k) == x for k, x in want.items())
    guest.poll(caught_up, 60, lambda: f"virsh dommemstat {seen} never showed {want}", 0.5)
    dom = parse_pairs(virsh(daemon, "domstats", "--balloon", guest.name), "=")
    for k, x in want.items():
        assert dom.get(f"balloon.{k}") == x, (k, dom, want)
    assert dom["balloon.current"] == RAM_MIB * 1024 and dom["balloon.maximum"] == RAM_MIB * 1024, dom
    guest.shell("stop w")


def dropped_lines(guest):
    """Lines blimp left out of its console since boot (console_dropped)."""
    return max([e["lines_total"] for e in guest.events_named("console_dropped")], default=0)


def test_a_virsh_console_that_stops_reading_does_not_hold_the_balloon_up(daemon, guest):
    """A `virsh console` whose user stopped reading (a paused terminal): its
    connection is never read again while the guest prints and the host
    balloons. Inflate and deflate still reach their targets, and blimp's
    own account agrees afterwards."""
    import libvirt
    conn = libvirt.open(daemon.uri)  # a client of its own: never read
    try:
        stream = conn.newStream(0)
        conn.lookupByName(guest.name).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        before = len([e for e in guest.events_named("cmd") if e["name"] == "help"])
        dropped_before = dropped_lines(guest)
        stream.send(b"help\n" * HELPS)  # more output than the pty and sockets hold
        start = time.monotonic()
        virsh(daemon, "setmem", guest.name, f"{LOW_MIB}M", "--live")
        wait_actual(guest, LOW_MIB * 1024, why="inflate, console not read")
        virsh(daemon, "setmem", guest.name, f"{RAM_MIB}M", "--live")
        wait_actual(guest, RAM_MIB * 1024, why="deflate, console not read")
        print(f"inflate and deflate with a stalled console: {time.monotonic() - start:.1f} s")
        stream.abort()
    finally:
        conn.close()
    # Whether the pty backs up depends on when libvirtd stops taking the
    # stalled client's data (1 run in 3 here). When it has, QEMU's serial
    # port waits, and goes on waiting after that client is gone (blimp's
    # output stops, in the log too) until a client attaches again and reads:
    # the next command's console, here. Meanwhile blimp's console ring
    # fills and blimp leaves whole lines out, counting them
    # (console_dropped; QEMU logs only what the pty took, so the log misses
    # them too). So once a reading client is back: the shell answers, each
    # `help` either ended in the log or is among the lines blimp says it
    # dropped, and the lines that are there are whole (the guest fixture's
    # bad_lines check).
    b = guest.shell_event("balloon", timeout=120)
    assert b["target"] == 0 and b["held"] == 0, b
    seen = len([e for e in guest.events_named("cmd") if e["name"] == "help"]) - before
    dropped = dropped_lines(guest) - dropped_before
    assert seen == HELPS or seen + dropped >= HELPS, \
        f"{seen} of {HELPS} `help` ends in the log, {dropped} lines dropped"
    print(f"`help` ends in the log: {seen} of {HELPS}, lines dropped: {dropped}")


def test_save_and_restore_keep_the_guest_and_its_balloon(daemon, guest, tmp_path):
    import libvirt
    path = str(tmp_path / "blimp.save")
    virsh(daemon, "save", guest.name, path)
    assert guest.state() == libvirt.VIR_DOMAIN_SHUTOFF
    virsh(daemon, "restore", path)
    assert guest.state() == libvirt.VIR_DOMAIN_RUNNING
    # The same kernel goes on where it was (no new `ready`), its console on
    # a new pty, and the balloon still answers.
    assert len(guest.events_named("ready")) == 1
    setmem_round(daemon, guest, "after restore")


def test_reset_boots_blimp_again(daemon, guest):
    guest.mark()
    virsh(daemon, "reset", guest.name)
    ready = guest.wait_event("ready", timeout=120)
    assert ready["cmdline"] == "vm.swap=0", ready
    setmem_round(daemon, guest, "after reset")


def test_the_policy_daemon_manages_the_domain_through_libvirt(daemon, guest, tmp_path):
    """tools/blimp/policy run as its users run it, against a libvirt domain
    (NAME=libvirt:DOMAIN): a static policy under a budget below the guest's
    RAM sets the balloon through libvirt, and its record shows blimp's
    statistics as libvirt reports them. Then the host lets go."""
    import json
    import os
    import sys
    budget_mib = 96
    record = tmp_path / "steps.jsonl"
    tools = os.path.join(os.path.dirname(__file__), "..", "..", "tools")
    done = subprocess.run([sys.executable, "-m", "blimp.policy", "--budget", f"{budget_mib}M",
                           "--policy", "static", "--interval", "1", "--steps", "4", "--floor", "32M",
                           "--libvirt-uri", daemon.uri, "--guest", f"{guest.name}=libvirt:{guest.name}",
                           "--record", str(record)],
                          cwd=tools, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    steps = [json.loads(line) for line in record.read_text().splitlines()]
    assert steps and all(s["targets"][guest.name] == budget_mib * MIB for s in steps), done.stdout
    wait_actual(guest, budget_mib * 1024, why="the policy daemon's target")
    sample = steps[-1]["guests"][guest.name]
    assert sample["free"] and sample["avail"] is not None, sample  # blimp's own figures, through libvirt
    virsh(daemon, "setmem", guest.name, f"{RAM_MIB}M", "--live")
    wait_actual(guest, RAM_MIB * 1024, why="given back")


def test_shutdown_presses_the_power_button_and_the_domain_shuts_off(daemon, guest):
    import libvirt
    guest.mark()
    virsh(daemon, "shutdown", guest.name, "--mode", "acpi")
    # Seconds when it works; the bound only keeps an unsupporting kernel
    # from holding the suite up.
    guest.wait_event("power_button", timeout=30)
    guest.wait_event("poweroff", timeout=60)
    guest.poll(lambda: guest.state() == libvirt.VIR_DOMAIN_SHUTOFF, 60,
               lambda: f"domain still in state {guest.state()} 60 s after poweroff", 0.2)
