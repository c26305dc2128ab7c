"""Packed virtqueues (virtio 1.2, 2.8) against QEMU's devices with packed=on.

blimp offers VIRTIO_F_RING_PACKED whenever a device does; `virtio.packed=off`
on the command line refuses it. Each test checks, from both sides, which ring
layout is in use: the guest's `virtio` command names it per queue, and QEMU's
own record of the negotiated features (x-query-virtio-status) must agree.
Then the balloon does its whole job over packed rings: inflate and deflate
with QEMU's RSS following, statistics, free page reporting, deflate-on-OOM;
virtio-blk and virtio-rng, which use the same virtqueue code, move real data.
"""
import os
import re
import time

import pytest

from blimp.units import MIB, PAGE
from blimp.vm import EXIT_SUCCESS

PACKED = "VIRTIO_F_RING_PACKED"


def transport_features(vm, qom="/machine/peripheral/bal0/virtio-backend"):
    st = vm.qmp.execute("x-query-virtio-status", path=qom)
    return [f.split(":")[0] for f in st["guest-features"]["transports"]]


def ring_layouts(vm, device="balloon"):
    """{queue index: "packed"|"split"} from the guest's `virtio` listing of `device`,
    failing if any queue says BROKEN."""
    _, out = vm.shell("virtio")
    layouts, mine = {}, False
    for line in out:
        if re.match(r"[0-9a-f]{2}:[0-9a-f]{2}\.\d ", line):
            mine = f" {device} (" in line
        m = re.match(r"\s+queue (\d+): (\w+) ring,", line)
        if m and mine:
            assert "BROKEN" not in line, line
            layouts[int(m.group(1))] = m.group(2)
    return layouts


def test_balloon_over_packed_rings_inflates_deflates_reports_and_answers_stats(boot):
    mem = 1024
    vm = boot(mem=f"{mem}M", devices=["virtio-balloon-pci,id=bal0,packed=on,free-page-reporting=on,"
                                      "deflate-on-oom=on"])
    vm.wait_event("ready", timeout=60)
    assert PACKED in transport_features(vm)
    layouts = ring_layouts(vm)
    assert len(layouts) == 4 and set(layouts.values()) == {"packed"}, layouts  # inflate, deflate, stats, reporting

    # Free page reporting: touched then freed memory goes back unasked.
    vm.shell("alloc 400M", timeout=120)
    touched = vm.rss()
    vm.shell("free all", timeout=120)
    vm.wait_rss_below(touched - int(0.8 * 400 * MIB), timeout=30)
    assert vm.events_named("balloon_report")

    # Inflate and deflate, many buffers through both rings (each pass of a
    # 128-entry ring flips the wrap counters).
    vm.shell("alloc 500M", timeout=120)
    vm.shell("free all", timeout=120)
    for target in (mem - 600, mem, mem - 300, mem):
        vm.qmp.execute("balloon", value=target * MIB)
        vm.wait_actual(target * MIB, timeout=180)
        s = vm.shell_event("pfa")
        assert s["ballooned"] == (mem - target) * MIB // PAGE and s["check"] == "ok", s

    # Statistics: the host asks, the guest answers over the packed stats queue.
    path = "/machine/peripheral/bal0"
    vm.qmp.execute("qom-set", path=path, property="guest-stats-polling-interval", value=1)
    deadline = time.monotonic() + 60
    while vm.shell_event("balloon")["stats_requests"] < 2:
        assert time.monotonic() < deadline, "the host's statistics requests were not answered"
        time.sleep(0.3)
    b = vm.shell_event("balloon")
    stats = vm.qmp.execute("qom-get", path=path, property="guest-stats")["stats"]
    assert stats["stat-total-memory"] == b["managed"] * PAGE
    assert abs(stats["stat-free-memory"] - b["free"] * PAGE) < 16 * MIB

    # Deflate on OOM: with most of RAM ballooned, an allocation takes it back.
    vm.qmp.execute("balloon", value=16 * MIB)
    vm.wait_event("balloon_stalled", timeout=120)  # at the reserve floor
    free_mib = vm.shell_event("pfa")["free"] * PAGE // MIB
    vm.shell(f"alloc {free_mib + 100}M", timeout=180)
    assert sum(e["deflated"] for e in vm.events_named("balloon_oom")) >= 100 * MIB // PAGE
    vm.shell("free all", timeout=120)
    assert vm.events_named("free")[-1]["bad_frames"] == 0

    layouts = ring_layouts(vm)  # and still not broken after all that
    assert set(layouts.values()) == {"packed"}, layouts


def test_virtio_packed_off_keeps_split_rings(boot):
    vm = boot(mem="512M", devices=["virtio-balloon-pci,id=bal0,packed=on"], append="virtio.packed=off")
    vm.wait_event("ready", timeout=60)
    assert PACKED not in transport_features(vm)
    assert set(ring_layouts(vm).values()) == {"split"}
    vm.qmp.execute("balloon", value=256 * MIB)
    vm.wait_actual(256 * MIB, timeout=120)


def test_without_packed_on_the_device_offers_none(boot):
    vm = boot(mem="256M", devices=["virtio-balloon-pci,id=bal0"])
    vm.wait_event("ready", timeout=60)
    assert PACKED not in transport_features(vm)
    assert set(ring_layouts(vm).values()) == {"split"}


def test_blk_and_rng_over_packed_rings(boot, tmp_path):
    image = str(tmp_path / "disk.img")
    data = os.urandom(64 * 512)
    with open(image, "wb") as f:
        f.truncate(16 * MIB)
        f.write(data)
    vm = boot(mem="128M", devices=["virtio-blk-pci,id=blk0,drive=d0,packed=on", "virtio-rng-pci,id=rng0,packed=on"],
              extra_args=["-drive", f"if=none,id=d0,file={image},format=raw"])
    vm.wait_event("ready", timeout=60)
    assert PACKED in transport_features(vm, "/machine/peripheral/blk0/virtio-backend")
    assert PACKED in transport_features(vm, "/machine/peripheral/rng0/virtio-backend")
    assert set(ring_layouts(vm, "blk").values()) == {"packed"}
    assert set(ring_layouts(vm, "rng").values()) == {"packed"}

    # 300 sectors: several requests in flight, chains of three descriptors
    # (header, data, status) or indirect tables; then read back.
    vm.shell("blk write 0 1000 300 7")
    vm.shell("blk flush 0")
    vm.shell("blk read 0 1000 300 7")
    assert vm.events_named("blk_io")[-1]["mismatches"] == 0
    st = vm.shell_event("blk")
    assert st["errors"] == 0 and st["lies"] == 0 and st["broken"] == 0, st
    assert st["bytes_written"] == 300 * 512 and st["flushes"] == 1, st

    got = []
    for _ in range(200):  # more requests than the ring has entries: it wraps
        vm.shell("rng 16")
        got.append(vm.events_named("rng")[-1]["bytes"])
    assert got == [16] * 200
    assert set(ring_layouts(vm, "rng").values()) == {"packed"}
    assert vm.poweroff() == EXIT_SUCCESS
    with open(image, "rb") as f:
        f.seek(0)
        assert f.read(64 * 512) == data  # the host's bytes untouched by the guest's writes at 1000
