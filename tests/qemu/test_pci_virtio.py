"""PCI and the virtio transport under real QEMU: enumeration agrees with QMP,
the balloon reaches DRIVER_OK with the features blimp negotiated, its
configuration-change interrupt arrives over INTx (q35 and pc, both boot
paths), MSI-X works on virtio-rng, and an idle guest costs the host no CPU."""
import os
import time

import pytest

BALLOON = "virtio-balloon-pci,id=bal0"
RNG = "virtio-rng-pci,id=rng0"
BACKEND = "/machine/peripheral/bal0/virtio-backend"
FEATURE_BITS = {"VIRTIO_RING_F_EVENT_IDX": 29, "VIRTIO_RING_F_INDIRECT_DESC": 28,
                "VIRTIO_F_VERSION_1": 32, "VIRTIO_BALLOON_F_STATS_VQ": 1,
                "VIRTIO_BALLOON_F_DEFLATE_ON_OOM": 2, "VIRTIO_BALLOON_F_FREE_PAGE_HINT": 3,
                "VIRTIO_BALLOON_F_PAGE_POISON": 4, "VIRTIO_BALLOON_F_REPORTING": 5,
                "VIRTIO_BALLOON_F_MUST_TELL_HOST": 0}


def qmp_pci_devices(vm):
    found = set()

    def walk(devices):
        for d in devices:
            found.add((d["bus"], d["slot"], d["function"], d["id"]["vendor"], d["id"]["device"],
                       d["class_info"]["class"]))
            walk(d.get("pci_bridge", {}).get("devices", []))
    for bus in vm.qmp.execute("query-pci"):
        walk(bus["devices"])
    return found


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_pci_listing_agrees_with_qmp(boot, machine):
    vm = boot(machine=machine, devices=[BALLOON, RNG, "pcie-root-port,id=rp1" if machine == "q35"
                                        else "pci-bridge,id=br1,chassis_nr=1"])
    vm.wait_event("ready", timeout=30)
    vm.shell("pci")
    guest = {(e["bus"], e["slot"], e["function"], e["vendor"], e["device"], e["class"] >> 8)
             for e in vm.events_named("pci_device")}
    assert guest == qmp_pci_devices(vm)
    assert any(e["msix"] > 0 and e["device"] == 0x1005 for e in vm.events_named("pci_device"))


def negotiated_bits(status):
    names = status["guest-features"]["transports"] + status["guest-features"]["dev-features"]
    return sum(1 << FEATURE_BITS[n.split(":")[0]] for n in names)


@pytest.mark.parametrize("balloon", [BALLOON, BALLOON + ",disable-legacy=on"])
def test_balloon_driver_ok_with_negotiated_features(boot, balloon):
    vm = boot(devices=[balloon])
    vm.wait_event("ready", timeout=30)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "balloon"][0]
    assert ready["pci_device"] == (0x1045 if "disable-legacy" in balloon else 0x1002)
    st = vm.qmp.execute("x-query-virtio-status", path=BACKEND)
    assert any(s.startswith("VIRTIO_CONFIG_S_DRIVER_OK") for s in st["status"]["statuses"])
    assert negotiated_bits(st) == ready["features"]
    assert ready["features"] & (1 << 32)  # VERSION_1


@pytest.mark.parametrize("machine,path", [("q35", "pvh"), ("pc", "pvh"), ("q35", "uefi"), ("pc", "uefi")])
def test_config_change_interrupt_over_intx(boot, machine, path):
    vm = boot(machine=machine, boot=path, mem="512M", devices=[BALLOON])
    vm.wait_event("ready", timeout=120 if path == "uefi" else 30)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "balloon"][0]
    assert ready["irq"] == "intx" and ready["gsi"] >= 0
    vm.qmp.execute("balloon", value=(512 - 64) << 20)
    ev = vm.wait_event("balloon_target", timeout=30, where=lambda e: e["num_pages"] > 0)
    assert ev["irq"] == "intx" and ev["num_pages"] == 64 * 256 and ev["config_irqs"] >= 1


def test_polling_when_forced(boot):
    vm = boot(mem="512M", devices=[BALLOON], append="irq=poll")
    vm.wait_event("ready", timeout=30)
    vm.qmp.execute("balloon", value=(512 - 32) << 20)
    ev = vm.wait_event("balloon_target", timeout=30, where=lambda e: e["num_pages"] > 0)
    assert ev["irq"] == "poll" and ev["num_pages"] == 32 * 256


@pytest.mark.parametrize("machine", ["q35", "pc"])
def test_msix_on_virtio_rng(boot, machine):
    vm = boot(machine=machine, devices=[RNG])
    vm.wait_event("ready", timeout=30)
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "rng"][0]
    assert ready["irq"] == "msix"
    for _ in range(3):
        vm.shell("rng 32")
        ev = vm.events_named("rng")[-1]
        assert ev["bytes"] == 32 and ev["irq_count_delta"] >= 1
    vm.shell("virtio")
    rng = [e for e in vm.events_named("virtio_device") if e["device"] == "rng"][0]
    assert rng["irq"] == "MSI-X" and rng["queue_irqs"] >= 3


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_guest_costs_no_cpu(boot):
    vm = boot(mem="256M", devices=[BALLOON, RNG])
    vm.wait_event("ready", timeout=30)
    vm.shell("help")  # the guest is in its idle loop after this
    t0, c0 = time.monotonic(), cpu_seconds(vm.proc.pid)
    time.sleep(2)
    used = (cpu_seconds(vm.proc.pid) - c0) / (time.monotonic() - t0)
    assert used < 0.10, f"idle QEMU used {used:.0%} of a core"
