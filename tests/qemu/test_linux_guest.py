"""The Linux reference guest of the benchmark (bench/linux): it builds from
Debian's packages, boots under QEMU, speaks blimp's event lines, touches
memory on command, and its virtio-balloon driver follows QMP targets both ways.

`make bench` compares blimp with this guest; these tests make sure the
comparison has a working opponent. The build is skipped (not failed) only
when apt-get cannot download the packages (build_guest.py exits 3): the
`linux_guest` fixture in conftest.py.
"""
from conftest import run_build_guest

from blimp.units import MIB

RAM_MIB = 512


def test_second_build_is_up_to_date(linux_guest):
    done = run_build_guest()
    assert done.returncode == 0, done.stdout
    assert "up to date" in done.stdout, done.stdout
    for key in ("kernel", "initrd", "append", "kernel_version", "packages", "modules"):
        assert key in linux_guest, f"guest.json has no {key!r}"
    assert "virtio_balloon" in linux_guest["modules"] + linux_guest["builtin"]


def test_linux_boots_touches_memory_and_balloons(linux_guest, boot):
    vm = boot(kernel=linux_guest["kernel"], append=linux_guest["append"],
              extra_args=["-initrd", linux_guest["initrd"]], mem=f"{RAM_MIB}M",
              devices=["virtio-balloon-pci,id=bal0"])
    ready = vm.wait_event("ready", timeout=90)
    assert ready["boot"] == "linux"
    assert 0 < ready["mem_usable"] <= RAM_MIB * MIB

    ev, out = vm.shell("touch 64", timeout=60)
    assert ev["rc"] == 0
    assert any("touched and freed 64 MiB" in line for line in out), out
    _, out = vm.shell("meminfo")
    assert any(line.startswith("MemFree:") for line in out), out
    ev, _ = vm.shell('nosuch"command', expect_rc=None)
    assert ev["ev"] == "cmd_error" and ev["name"] == "nosuch?command"

    vm.qmp.execute("balloon", value=(RAM_MIB - 128) * MIB)
    vm.wait_actual((RAM_MIB - 128) * MIB)
    vm.qmp.execute("balloon", value=RAM_MIB * MIB)
    vm.wait_actual(RAM_MIB * MIB)

    assert vm.poweroff() == 0    # poweroff -f: ACPI power off, QEMU exits 0


def _meminfo_kib(vm, key):
    _, out = vm.shell("meminfo")
    return [int(line.split()[1]) for line in out if line.startswith(key + ":")][0]


def test_linux_swaps_on_the_writable_disk_and_reads_the_read_only_one_into_its_cache(
        linux_guest, boot, tmp_path):
    """bench/hostswap.py's idle scenario for Linux: a read-only disk for the
    clean page cache (`cacheread N`) beside the swap disk. The read-only
    disk comes first (vda), so init must choose by /sys/block/vdX/ro, not by
    order, or it would mkswap a disk QEMU refuses to write."""
    cache, swap = tmp_path / "cache.img", tmp_path / "swap.img"
    for path, mib in ((cache, 32), (swap, 64)):
        with open(path, "wb") as f:
            f.truncate(mib * MIB)
    vm = boot(kernel=linux_guest["kernel"], append=linux_guest["append"], mem=f"{RAM_MIB}M",
              extra_args=["-initrd", linux_guest["initrd"],
                          "-drive", f"if=none,id=c0,file={cache},format=raw,readonly=on",
                          "-device", "virtio-blk-pci,drive=c0",
                          "-drive", f"if=none,id=sw,file={swap},format=raw",
                          "-device", "virtio-blk-pci,drive=sw"],
              devices=["virtio-balloon-pci,id=bal0"])
    ready = vm.wait_event("ready", timeout=90)
    assert 60 * MIB <= ready["swap_bytes"] <= 64 * MIB, ready

    before = _meminfo_kib(vm, "Buffers") + _meminfo_kib(vm, "Cached")
    ev, _ = vm.shell("cacheread 24", timeout=120)
    assert ev["rc"] == 0, ev
    after = _meminfo_kib(vm, "Buffers") + _meminfo_kib(vm, "Cached")
    assert after - before >= 24 * 1024 * 0.9, (before, after)
    # The pages are clean: nothing for the guest to write back.
    assert _meminfo_kib(vm, "Dirty") < 1024
    for bad in ("0", "x", ""):
        ev, out = vm.shell(f"cacheread {bad}", expect_rc=None)
        assert ev["rc"] == 2 and any("not a positive number" in line for line in out), (bad, ev, out)
    assert vm.poweroff() == 0
