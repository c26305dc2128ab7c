"""The guest's clock against the host's, on every machine type and ruler.

Before: the TSC was calibrated only on the PIT's channel 2 through port
0x61, which microvm does not have: blimp said "TSC 3 MHz" there and every
guest time was about 700 times too long (t_ms 7493 at ready). docs/clock.md
lists the rulers and their order.

Each case boots, checks which ruler the `clock` event says was used, then
takes two shell commands' `cmd` events a few host seconds apart and
compares the guest's t_ms between them with the host's monotonic time
between their arrival. TCG on a loaded host jitters, so the tolerance is
15 % over at least 2.5 s; a miscalibration of the old kind is off by a
factor of hundreds.
"""
import time

import pytest

from blimp.vm import EXIT_SUCCESS

BOOT_TIMEOUT = 60
HOST_SECONDS = 2.5
TOLERANCE = 0.15
TSC_MIN_HZ, TSC_MAX_HZ = 100_000_000, 10_000_000_000

# (machine, kernel command line, the ruler the clock event must name)
CASES = [
    ("q35", "", "hpet"),
    ("pc", "", "hpet"),
    ("microvm", "", "pit"),
    ("microvm,pit=off", "", "rtc"),
    ("q35", "clock.ruler=pm_timer", "pm_timer"),
    ("q35", "clock.ruler=pit", "pit"),
    ("q35", "clock.ruler=rtc", "rtc"),
]


def elapsed_ratio(vm):
    """Guest milliseconds over host milliseconds between two commands."""
    first, _ = vm.shell("mem")
    time.sleep(HOST_SECONDS)
    second, _ = vm.shell("mem")
    guest_ms = second["t_ms"] - first["t_ms"]
    host_ms = (second["_host_time"] - first["_host_time"]) * 1000
    assert host_ms >= HOST_SECONDS * 1000
    return guest_ms, host_ms


@pytest.mark.parametrize("machine,append,ruler", CASES,
                         ids=[f"{m}-{r}" for m, _, r in CASES])
def test_guest_time_follows_the_host(boot, machine, append, ruler):
    devices = ["virtio-balloon-device"] if machine.startswith("microvm") else []
    vm = boot(machine=machine, mem="128M", append=append, devices=devices)
    ready = vm.wait_event("ready", timeout=BOOT_TIMEOUT)
    clock = vm.events_named("clock")[0]
    if clock["ruler"] != ruler:
        # The expected ruler may be refused when the host stops QEMU in the
        # middle of the window (seen once on microvm with five other QEMUs
        # running: the PIT's 16-bit count wraps every 55 ms); then it must
        # say so and the next one must take over — and be right.
        tried = [r for r in clock["rulers"] if r["name"] == ruler]
        assert tried and not tried[0]["ok"], f"expected the {ruler} ruler, got {clock}"
    assert ready["clock"] == clock["ruler"]
    assert TSC_MIN_HZ <= clock["tsc_hz"] <= TSC_MAX_HZ, clock
    used = [r for r in clock["rulers"] if r["name"] == clock["ruler"]]
    assert used and used[0]["ok"] and used[0]["tsc_hz"] == clock["tsc_hz"], clock
    # Boot itself takes well under a second of host time here; the old
    # miscalibration put ready at 7.5 s.
    assert ready["t_ms"] < ready["_host_time"] * 1000 * (1 + TOLERANCE) + 50, ready
    guest_ms, host_ms = elapsed_ratio(vm)
    ratio = guest_ms / host_ms
    assert abs(ratio - 1) <= TOLERANCE, (
        f"{machine} by {ruler}: guest counted {guest_ms} ms while the host counted "
        f"{host_ms:.0f} ms (ratio {ratio:.3f}, allowed 1 +- {TOLERANCE}); clock event {clock}")


def test_two_rulers_agree_where_the_machine_has_them(boot):
    """q35 has HPET, PM timer and PIT: all three are timed in the same
    window, and the figure used is one a second ruler agrees with within
    2 %. (All three agreeing is not required: a host that deschedules QEMU
    mid-read can throw one off, and then the other two outvote it.)"""
    vm = boot(machine="q35", mem="128M")
    vm.wait_event("ready", timeout=BOOT_TIMEOUT)
    clock = vm.events_named("clock")[0]
    figures = {r["name"]: r["tsc_hz"] for r in clock["rulers"] if r["ok"]}
    for name in ("hpet", "pm_timer", "pit"):
        assert name in figures, f"{name} missing or refused: {clock}"
    check = clock["checked_by"]
    assert check in figures and check != clock["ruler"], clock
    assert abs(figures[check] - clock["tsc_hz"]) <= clock["tsc_hz"] * 0.02, clock


def test_microvm_boots_without_pci_and_says_so(boot):
    vm = boot(machine="microvm", mem="128M", devices=["virtio-balloon-device"])
    vm.wait_event("ready", timeout=BOOT_TIMEOUT)
    vm.wait_line("pci: nothing answers at 0xcf8/0xcfc", timeout=5)
    ev, out = vm.shell("pci")
    assert ev["rc"] == 0
    assert not vm.events_named("pci_device"), "microvm has no PCI device"
    # What needs no PCI works: memory, the allocator's invariants.
    vm.shell("alloc 32M")
    vm.shell("free all")
    frees = vm.events_named("free")
    assert frees and all(e["bad_frames"] == 0 for e in frees), frees
    assert vm.shell_event("pfa")["check"] == "ok"
    assert vm.poweroff() == EXIT_SUCCESS  # isa-debug-exit works on microvm too
