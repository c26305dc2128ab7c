"""Host swapping as the balloon's baseline (issue 16, tools/blimp/hostswap.py,
docs/hostswap.md): the guest's RAM is a shared file on a loop device over
/work's disk, QEMU runs in a memory cgroup, and the loop device's own
statistics count every byte the host moves for guest memory.

Behaviour, not timings:
  - the counter is honest: a known amount written under a limit shows up on
    the loop device, at least the part that cannot have stayed in memory;
  - under a limit below what the guest touched, the host writes guest pages
    out and QEMU takes major faults to get them back, and the guest's
    patterns survive it (it never knew);
  - the balloon takes the same kind of memory (touched, then freed by the
    guest) with no guest swap write and (near) no host write.
Skipped, with the reason, when not root or without a v1 memory cgroup.
"""
import os

import pytest

from blimp import hostswap
from blimp.units import MIB

REASON = hostswap.unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"host swapping unavailable: {REASON}")


@pytest.fixture
def hs():
    with hostswap.HostSwap() as h:
        made = list(h.cgroups) + [h.image, h.mnt]
        yield h
    # Nothing of it may stay behind.
    assert not [p for p in made if os.path.exists(p)], made


def boot_in(hs, boot, mem_mib, swap_image=None, append="balloon.no_reporting", file_backed=True,
            ram=hostswap.RAM_FILE):
    """boot() a blimp in the cgroup, its RAM the file `ram` in the loop
    device's file system (or QEMU's usual anonymous memory)."""
    devices, extra = ["virtio-balloon-pci,id=bal0"], []
    if swap_image:
        devices.append("virtio-blk-pci,drive=sw")
        extra += ["-drive", f"if=none,id=sw,file={swap_image},format=raw,cache=none"]
        append += " vm.swap=0"
    if file_backed:
        extra += hs.ram_args(mem_mib * MIB, ram)
    vm = boot(mem=f"{mem_mib}M", devices=devices, extra_args=extra, append=append.strip(),
              launcher=hs.launcher())
    vm.wait_event("ready", timeout=60)
    with open(f"{hs.memcg}/cgroup.procs") as f:
        assert str(vm.proc.pid) in f.read().split(), "QEMU is not in the cgroup"
    return vm


def test_the_loop_device_counts_what_a_known_write_under_a_limit_must_cost():
    r = hostswap.calibrate(write_mib=64, limit_mib=16)
    must = (64 - 16) * MIB
    # Everything dirtied reaches the disk once synced; at least what did not
    # fit reached it during the write pass itself.
    assert r["write"]["disk_write_bytes"] >= must * 0.9, r["write"]
    assert r["write_synced"]["disk_write_bytes"] >= 64 * MIB, r["write_synced"]
    assert r["read"]["disk_read_bytes"] >= must * 0.9, r["read"]


def test_under_a_limit_the_host_writes_guest_pages_out_and_faults_them_back(hs, boot):
    vm = boot_in(hs, boot, 256)
    booted = hs.counters(vm.proc.pid)
    vm.shell("alloc 160M", timeout=120)
    c0 = hs.counters(vm.proc.pid)
    hs.set_limit(c0["memcg_usage"] - 96 * MIB)
    c1 = hs.counters(vm.proc.pid)
    # free checks every frame's pattern: each page the host evicted is read back.
    vm.shell("free all", timeout=120)
    c2 = hs.counters(vm.proc.pid)
    frees = vm.events_named("free")
    assert frees and frees[-1]["bad_frames"] == 0, frees
    squeezed, touched = hostswap.diff(c0, c1), hostswap.diff(c0, c2)
    assert squeezed["memcg_usage"] <= c0["memcg_usage"] - 96 * MIB
    # Pages the guest wrote are dirty in the host: each evicted one was
    # written first (by the flusher, woken by reclaim; some perhaps already
    # after the alloc, before c0).
    assert hostswap.diff(booted, c1)["disk_write_bytes"] >= 0.9 * 96 * MIB, hostswap.diff(booted, c1)
    assert touched["disk_read_bytes"] >= 64 * MIB, touched
    assert touched["proc_majflt"] > 0 and touched["memcg_pgmajfault"] > 0, touched


def test_the_balloon_takes_freed_memory_with_no_swap_write_and_no_host_io(hs, boot, tmp_path):
    """On QEMU's usual anonymous RAM (in the same cgroup, to count it the
    same way). On file-backed RAM QEMU punches a 4 KiB hole per page, which
    frees nothing of a dirty large folio on this host's ext4: docs/hostswap.md."""
    swap = tmp_path / "swap.img"
    with open(swap, "wb") as f:
        f.truncate(128 * MIB)
    vm = boot_in(hs, boot, 256, swap_image=str(swap), file_backed=False)
    vm.shell("alloc 160M", timeout=120)
    vm.shell("free all", timeout=120)       # free in the guest, still resident in the host
    sw0 = vm.shell_event("swap")
    c0 = hs.counters(vm.proc.pid)
    target = 64 * MIB
    vm.qmp.execute("balloon", value=target)
    vm.wait_actual(target, timeout=60, why="the balloon taking the freed memory")
    c1 = hs.counters(vm.proc.pid)
    sw1 = vm.shell_event("swap")
    d = hostswap.diff(c0, c1)
    assert sw1["pages_out"] == sw0["pages_out"] == 0, (sw0, sw1)
    assert sw1["pages_in"] == sw0["pages_in"], (sw0, sw1)
    freed = c0["memcg_usage"] - c1["memcg_usage"]
    assert freed >= 120 * MIB, f"the host got back only {freed / MIB:.0f} MiB: {d}"
    assert d["disk_write_bytes"] == 0 and d["disk_read_bytes"] == 0, d
    assert d["proc_majflt"] == 0, d
    # The memory stays the host's: a limit just above the new usage is
    # reached at once, with no reclaim (failcnt unchanged).
    assert hs.set_limit(c1["memcg_usage"] + 8 * MIB) < 1
    assert hs.counters(vm.proc.pid)["memcg_failcnt"] == c1["memcg_failcnt"]


def test_two_guests_in_one_cgroup_each_with_its_ram_file_share_one_limit(hs, boot):
    """bench/policy.py's hostswap case: several QEMUs in one cgroup, each
    guest's RAM its own file in the loop device's file system (prepare's
    `ram`). Under one limit below what they touched together, the host
    swaps both, and neither guest loses a page."""
    vms = [boot_in(hs, boot, 192, ram=f"{name}.ram") for name in "ab"]
    for name, vm in zip("ab", vms):
        assert os.path.getsize(os.path.join(hs.mnt, f"{name}.ram")) == 192 * MIB
        assert hs.ram_resident(f"{name}.ram") > 0, name
    vms[0].shell("alloc 128M", timeout=120)
    vms[1].shell("alloc 128M", timeout=120)
    c0 = hs.counters()
    hs.set_limit(c0["memcg_usage"] - 96 * MIB)
    c1 = hs.counters()
    assert c1["memcg_usage"] <= c0["memcg_usage"] - 96 * MIB
    resident = sum(hs.ram_resident(f"{n}.ram") for n in "ab")
    assert resident <= c1["memcg_usage"], (resident, c1["memcg_usage"])
    for vm in vms:
        vm.shell("free all", timeout=180)
        frees = vm.events_named("free")
        assert frees and frees[-1]["bad_frames"] == 0, frees
    c2 = hs.counters()
    assert hostswap.diff(c0, c2)["disk_read_bytes"] > 0      # evicted pages came back from the disk
