"""The balloon over legacy (virtio 0.9.5) PCI: the I/O BAR 0 interface of a
transitional device (drivers/virtio/virtio_pci_legacy.c).

QEMU gives only that interface with `disable-modern=on`; a transitional
device that offers both is driven over legacy when `virtio.legacy` is on
the command line. What the device negotiated is asked of QEMU itself
(x-query-virtio-status: no VERSION_1), and what blimp thinks it drives is
its own `virtio_ready`/`virtio_device` event (transport "pci-legacy").

QEMU 7.2's balloon has no MSI-X, so it interrupts on INTx (QEMU 10's has:
it then takes MSI-X, and `virtio.irq=intx` still tests INTx); virtio-rng
and virtio-blk have MSI-X, and take their vectors through the legacy
registers at 20 and 22."""
import time

import pytest

from blimp.units import MIB, PAGE

BALLOON = "virtio-balloon-pci,id=bal0,free-page-reporting=on,deflate-on-oom=on"
LEGACY_ONLY = BALLOON + ",disable-modern=on"
BOTH = BALLOON + ",disable-legacy=off,disable-modern=off"
BAL = "/machine/peripheral/bal0"


def boot_legacy(boot, machine="q35", device=LEGACY_ONLY, mem=512, append="", devices=()):
    vm = boot(machine=machine, mem=f"{mem}M", devices=[device, *devices], append=append)
    vm.wait_event("ready", timeout=120)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "balloon"]
    assert len(ready) == 1 and ready[0]["transport"] == "pci-legacy", vm.events_named("virtio_ready")
    assert ready[0]["pci_device"] == 0x1002, ready  # the transitional balloon
    status = vm.qmp.execute("x-query-virtio-status", path=BAL + "/virtio-backend")
    assert "VIRTIO_CONFIG_S_DRIVER_OK" in " ".join(status["status"]["statuses"]), status
    assert not any("VIRTIO_F_VERSION_1" in f for f in status["guest-features"]["transports"]), status
    assert "VIRTIO_CONFIG_S_FEATURES_OK" not in " ".join(status["status"]["statuses"]), status
    return vm, ready[0]


def balloon_has_msix(vm):
    """Whether this QEMU gives the balloon MSI-X (7.2: no; 10: yes), as the
    guest's own PCI listing saw the function's capabilities."""
    vm.shell("pci")
    dev = [e for e in vm.events_named("pci_device") if e["device"] == 0x1002]
    assert len(dev) == 1, dev
    return dev[0]["msix"] > 0


def set_target(vm, target_mib):
    vm.qmp.execute("balloon", value=target_mib * MIB)


@pytest.mark.parametrize("machine,device,append", [
    ("q35", LEGACY_ONLY, ""),
    ("q35", LEGACY_ONLY, "virtio.irq=intx"),
    ("pc", LEGACY_ONLY, ""),
    ("pc", BOTH, "virtio.legacy"),
])
def test_inflate_and_deflate_over_legacy_pci(boot, machine, device, append):
    vm, ready = boot_legacy(boot, machine, device, append=f"balloon.no_reporting {append}")
    msix = balloon_has_msix(vm) and "virtio.irq=intx" not in append
    assert ready["irq"] == ("msix" if msix else "intx"), ready
    assert (ready["gsi"] >= 0) == (not msix), ready
    vm.shell("alloc 300M", timeout=300)
    vm.shell("free all", timeout=300)
    before = vm.rss()
    set_target(vm, 512 - 256)
    vm.wait_actual((512 - 256) * MIB, timeout=300)
    after = vm.rss()
    assert before - after >= 0.9 * 256 * MIB, f"RSS {before >> 20} -> {after >> 20} MiB"
    s = vm.shell_event("pfa")
    assert s["ballooned"] == 256 * MIB // PAGE and s["check"] == "ok"
    set_target(vm, 512)
    vm.wait_actual(512 * MIB, timeout=300)
    s = vm.shell_event("pfa")
    assert s["ballooned"] == 0 and s["check"] == "ok"
    _, lines = vm.shell("virtio")
    assert any("balloon (1af4:1002) legacy, I/O 0x" in line for line in lines), lines
    dev = [e for e in vm.events_named("virtio_device") if e["device"] == "balloon"][-1]
    assert dev["transport"] == "pci-legacy" and dev["irq"] == ("MSI-X" if msix else "INTx"), dev
    # Targets came as configuration interrupts, used buffers as queue ones
    # (on INTx read and acknowledged from the ISR byte at 19; on MSI-X each
    # on its own vector, the configuration read at 24): nothing polled.
    assert dev["config_irqs"] >= 2 and dev["queue_irqs"] >= 2, dev
    assert dev["features"] < 1 << 32 and dev["device_features"] < 1 << 32, dev


def test_modern_is_used_without_the_switch(boot):
    """The same transitional device without `virtio.legacy` stays modern."""
    vm = boot(machine="pc", mem="256M", devices=[BOTH])
    ready = vm.wait_event("virtio_ready", timeout=120)
    assert ready["transport"] == "pci", ready


def test_stats_over_legacy_pci(boot):
    vm, _ = boot_legacy(boot, append="balloon.no_reporting")
    vm.shell("alloc 64M")
    vm.qmp.execute("qom-set", path=BAL, property="guest-stats-polling-interval", value=1)
    deadline = time.monotonic() + 120
    while True:
        b = vm.shell_event("balloon")
        if b["stats_requests"] >= 1:
            break
        assert time.monotonic() < deadline, "the host never asked for statistics"
        time.sleep(0.5)
    stats = vm.qmp.execute("qom-get", path=BAL, property="guest-stats")["stats"]
    assert abs(stats["stat-free-memory"] - b["free"] * PAGE) < 8 * MIB, (stats, b)
    assert stats["stat-total-memory"] == b["managed"] * PAGE


def test_free_page_reporting_over_legacy_pci(boot):
    vm, _ = boot_legacy(boot)
    vm.wait_event("balloon_report", timeout=120)
    vm.shell("alloc 256M", timeout=300)
    touched = vm.rss()
    vm.shell("free all", timeout=300)
    vm.wait_rss_below(touched - int(0.8 * 256 * MIB), timeout=120)
    status = vm.qmp.execute("x-query-virtio-status", path=BAL + "/virtio-backend")
    assert any("VIRTIO_BALLOON_F_REPORTING" in f for f in status["guest-features"]["dev-features"]), status
    assert vm.shell_event("pfa")["check"] == "ok"


def test_deflate_on_oom_over_legacy_pci(boot):
    vm, _ = boot_legacy(boot, append="balloon.no_reporting")
    set_target(vm, 16)
    vm.wait_event("balloon_stalled", timeout=300)
    free_mib = vm.shell_event("pfa")["free"] * PAGE // MIB
    vm.shell(f"alloc {free_mib + 100}M", timeout=300)
    oom = vm.events_named("balloon_oom")
    assert oom and sum(e["deflated"] for e in oom) >= 100 * MIB // PAGE
    vm.shell("free all", timeout=300)
    assert vm.events_named("free")[-1]["bad_frames"] == 0
    assert vm.shell_event("pfa")["check"] == "ok"


@pytest.mark.parametrize("append", ["", "virtio.irq=intx"])
def test_rng_over_legacy_pci_with_msix_and_intx(boot, append):
    """virtio-rng has MSI-X even on 7.2: with it on, the legacy registers
    grow the two vector registers and the device configuration moves from 20
    to 24. Bytes arrive on a queue vector (or on INTx when forced)."""
    vm = boot(machine="q35", mem="128M", devices=["virtio-rng-pci,id=rng0,disable-modern=on"], append=append)
    vm.wait_event("ready", timeout=120)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "rng"]
    assert ready and ready[0]["transport"] == "pci-legacy", vm.events_named("virtio_ready")
    assert ready[0]["irq"] == ("intx" if append else "msix"), ready
    seen = set()
    for _ in range(3):
        ev, lines = vm.shell("rng 32")
        got = [e for e in vm.events_named("rng")][-1]
        assert got["bytes"] == 32 and got["irq_count_delta"] >= 1, got
        seen.add(next(line for line in lines if line.startswith("rng: 32 bytes")))
    assert len(seen) == 3, seen  # three different answers: random bytes, not a stuck buffer
    status = vm.qmp.execute("x-query-virtio-status", path="/machine/peripheral/rng0/virtio-backend")
    assert not any("VIRTIO_F_VERSION_1" in f for f in status["guest-features"]["transports"]), status


def test_blk_over_legacy_pci(boot, tmp_path):
    """virtio-blk's queue is 256 entries on QEMU: a legacy queue's size is the
    device's (the driver asks for 128 and must take 256), and the sectors
    really cross the device both ways. It has MSI-X, so its configuration
    (the capacity) is read at 24: read at 20 it would be garbage."""
    from test_blk import HOST_SEED, GUEST_SEED, IMAGE_SECTORS, SECTOR, make_image, pattern
    image = make_image(tmp_path / "disk.img")
    vm = boot(mem="128M", devices=["virtio-blk-pci,drive=d0,disable-modern=on"],
              extra_args=["-drive", f"if=none,id=d0,file={image},format=raw"])
    vm.wait_event("ready", timeout=120)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "blk"]
    assert ready and ready[0]["transport"] == "pci-legacy", vm.events_named("virtio_ready")
    assert ready[0]["irq"] == "msix", ready
    listing = vm.shell_event("blk")
    assert listing["capacity"] == IMAGE_SECTORS and listing["blk_size"] == SECTOR, listing
    _, lines = vm.shell("virtio")
    assert any("queue 0: split ring, size 256" in line for line in lines), lines
    vm.shell(f"blk read 0 0 64 {HOST_SEED}")
    assert vm.events_named("blk_io")[-1]["mismatches"] == 0
    vm.shell(f"blk write 0 1000 300 {GUEST_SEED}")
    vm.shell("blk flush 0")
    vm.close()
    with open(image, "rb") as f:
        f.seek(1000 * SECTOR)
        assert f.read(300 * SECTOR) == pattern(GUEST_SEED, 1000, 300)
