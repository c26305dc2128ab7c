"""The balloon against QEMU's real virtio-balloon: QMP sets targets, the guest
moves, `actual` and QEMU's RSS show it, and nothing the guest holds is lost."""
import time

import pytest

from blimp.units import MIB, PAGE


def balloon_dev(**props):
    return ",".join(["virtio-balloon-pci,id=bal0"] + [f"{k}={v}" for k, v in props.items()])


def set_target(vm, ram_mib, target_mib):
    vm.qmp.execute("balloon", value=target_mib * MIB)
    return ram_mib - target_mib  # MiB the balloon should hold


@pytest.mark.parametrize("path,machine,mem", [
    ("pvh", "q35", 2048), ("pvh", "pc", 2048), ("uefi", "q35", 2048),
])
def test_inflate_returns_touched_memory_and_deflate_gives_it_back(boot, path, machine, mem):
    vm = boot(boot=path, machine=machine, mem=f"{mem}M", devices=[balloon_dev()],
              append="balloon.no_reporting")
    vm.wait_event("ready", timeout=120 if path == "uefi" else 30)
    vm.shell("alloc 600M", timeout=120)
    vm.shell("free all", timeout=120)
    before = vm.rss()
    set_target(vm, mem, mem - 400)
    vm.wait_actual((mem - 400) * MIB)
    after = vm.rss()
    assert before - after >= 0.9 * 400 * MIB, f"RSS {before >> 20} -> {after >> 20} MiB"
    s = vm.shell_event("pfa")
    assert s["ballooned"] == 400 * MIB // PAGE and s["check"] == "ok"
    set_target(vm, mem, mem)
    vm.wait_actual(mem * MIB)
    s = vm.shell_event("pfa")
    assert s["ballooned"] == 0 and s["check"] == "ok"
    # All memory usable again, patterns intact.
    vm.shell(f"alloc {(s['free'] * PAGE - 4 * MIB) // 1024}K", timeout=300)
    vm.shell("free all", timeout=300)
    assert vm.events_named("free")[-1]["bad_frames"] == 0


@pytest.mark.parametrize("path,machine,mem", [("pvh", "q35", 256), ("uefi", "pc", 256), ("pvh", "q35", 8192)])
def test_inflate_deflate_sizes_and_paths(boot, path, machine, mem):
    vm = boot(boot=path, machine=machine, mem=f"{mem}M", devices=[balloon_dev()])
    vm.wait_event("ready", timeout=120 if path == "uefi" else 30)
    take = min(mem // 2, 1024)
    set_target(vm, mem, mem - take)
    vm.wait_actual((mem - take) * MIB)
    assert vm.shell_event("pfa")["ballooned"] == take * MIB // PAGE
    set_target(vm, mem, mem)
    vm.wait_actual(mem * MIB)
    assert vm.shell_event("pfa")["check"] == "ok"


def test_ballooned_memory_is_unmapped_and_held_memory_untouched(boot):
    vm = boot(mem="512M", devices=[balloon_dev()])
    vm.wait_event("ready", timeout=30)
    vm.shell("alloc 100M")
    set_target(vm, 512, 256)
    vm.wait_actual(256 * MIB)
    set_target(vm, 512, 512)
    vm.wait_actual(512 * MIB)
    vm.shell("free all")
    assert vm.events_named("free")[-1]["bad_frames"] == 0


def test_reserve_floor_stops_the_balloon(boot):
    vm = boot(mem="256M", devices=[balloon_dev()], append="reserve=48M")
    vm.wait_event("ready", timeout=30)
    set_target(vm, 256, 8)
    stalled = vm.wait_event("balloon_stalled", timeout=60)
    assert stalled["reason"] == "reserve floor"
    s = vm.shell_event("pfa")
    # The balloon stops exactly at the floor; the kernel's own later
    # allocations (heap, page tables) may dip a frame or two below it.
    assert s["reserve_floor"] == 48 * MIB // PAGE
    assert s["reserve_floor"] - 16 <= s["free"] <= s["reserve_floor"]
    actual = vm.qmp.execute("query-balloon")["actual"]
    assert actual > 8 * MIB  # actual < target in balloon terms: it says so, the guest lives
    vm.shell("help")
    set_target(vm, 256, 256)
    vm.wait_actual(256 * MIB)


def test_flapping_target_converges_to_the_last(boot):
    vm = boot(mem="1024M", devices=[balloon_dev()])
    vm.wait_event("ready", timeout=30)
    last = None
    for i in range(50):
        last = 1024 - (i * 37 % 600)
        vm.qmp.execute("balloon", value=last * MIB)
        time.sleep(0.02)
    vm.wait_actual(last * MIB)
    time.sleep(0.5)
    assert vm.qmp.execute("query-balloon")["actual"] == last * MIB
    assert vm.shell_event("pfa")["ballooned"] == (1024 - last) * MIB // PAGE


def test_target_above_ram_and_tiny_targets(boot):
    vm = boot(mem="256M", devices=[balloon_dev()])
    vm.wait_event("ready", timeout=30)
    vm.qmp.execute("balloon", value=1 << 40)  # far above RAM: nothing to do
    vm.wait_actual(256 * MIB)
    vm.qmp.execute("balloon", value=1)  # one byte: the floor stops it
    vm.wait_event("balloon_stalled", timeout=60)
    assert vm.shell_event("pfa")["check"] == "ok"
    vm.qmp.execute("balloon", value=256 * MIB)
    vm.wait_actual(256 * MIB)


def test_free_page_reporting_returns_freed_memory_without_a_command(boot):
    vm = boot(mem="1024M", devices=[balloon_dev(**{"free-page-reporting": "on"})])
    vm.wait_event("ready", timeout=30)
    vm.shell("alloc 512M", timeout=120)
    touched = vm.rss()
    vm.shell("free all", timeout=120)
    t0 = time.monotonic()
    vm.wait_rss_below(touched - int(0.8 * 512 * MIB), timeout=10)
    assert time.monotonic() - t0 < 10
    assert vm.events_named("balloon_report")
    assert vm.shell_event("pfa")["check"] == "ok"


def test_stats_agree_with_the_guest(boot):
    vm = boot(mem="512M", devices=[balloon_dev()])
    vm.wait_event("ready", timeout=30)
    vm.shell("alloc 64M")
    path = "/machine/peripheral/bal0"
    vm.qmp.execute("qom-set", path=path, property="guest-stats-polling-interval", value=1)
    # The guest posted figures at boot, before the alloc: wait until it has
    # answered a poll made after it (its own count of requests says so).
    deadline = time.monotonic() + 30
    while True:
        b = vm.shell_event("balloon")
        if b["stats_requests"] >= 1:
            break
        assert time.monotonic() < deadline, "the host never asked for statistics"
        time.sleep(0.3)
    st = vm.qmp.execute("qom-get", path=path, property="guest-stats")
    stats = st["stats"]
    assert abs(stats["stat-free-memory"] - b["free"] * PAGE) < 8 * MIB
    assert stats["stat-total-memory"] == b["managed"] * PAGE
    assert stats["stat-htlb-pgalloc"] == b["huge_allocs"]
    # No huge-page pool: alloc's 2 MiB blocks are not huge pages (they were
    # counted as such, and failures of them too, before issue 12).
    assert stats["stat-htlb-pgalloc"] == 0 and stats["stat-htlb-pgfail"] == 0
    assert stats["stat-disk-caches"] == 0 and stats["stat-swap-in"] == 0
    assert b["stats_requests"] >= 1


def test_deflate_on_oom(boot):
    vm = boot(mem="512M", devices=[balloon_dev(**{"deflate-on-oom": "on"})])
    vm.wait_event("ready", timeout=30)
    set_target(vm, 512, 16)
    vm.wait_event("balloon_stalled", timeout=60)  # most of RAM ballooned: at the floor
    s = vm.shell_event("pfa")
    free_mib = s["free"] * PAGE // MIB
    vm.shell(f"alloc {free_mib + 100}M", timeout=120)  # more than is left
    oom = vm.events_named("balloon_oom")
    assert oom and sum(e["deflated"] for e in oom) >= 100 * MIB // PAGE
    vm.shell("free all")
    assert vm.events_named("free")[-1]["bad_frames"] == 0
    assert vm.shell_event("pfa")["check"] == "ok"


def features_of(vm):
    st = vm.qmp.execute("x-query-virtio-status", path="/machine/peripheral/bal0/virtio-backend")
    return [f.split(":")[0] for f in st["guest-features"]["dev-features"]]


def test_page_poison_only_when_the_kernel_poisons(boot):
    plain = boot(mem="512M", devices=[balloon_dev(**{"free-page-reporting": "on"})])
    plain.wait_event("ready", timeout=30)
    assert "VIRTIO_BALLOON_F_PAGE_POISON" not in features_of(plain)
    assert "VIRTIO_BALLOON_F_REPORTING" in features_of(plain)

    vm = boot(mem="512M", devices=[balloon_dev(**{"free-page-reporting": "on"})], append="poison=0xaa")
    vm.wait_event("ready", timeout=30)
    assert "VIRTIO_BALLOON_F_PAGE_POISON" in features_of(vm)
    vm.shell("alloc 256M", timeout=60)
    touched = vm.rss()
    vm.shell("free all", timeout=60)
    vm.wait_event("balloon_report", timeout=30, where=lambda e: e["pages"] >= 256 * 256 * 0.8)
    time.sleep(1)
    # QEMU keeps reported pages whose content (the poison) matters.
    assert vm.rss() > touched - 64 * MIB
    assert vm.shell_event("pfa")["check"] == "ok"
