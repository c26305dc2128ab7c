"""Demand paging, reclaim, swap and the page cache under the balloon (issue 14).

Every workload checks eight words of a page (one per sector) against the
version it last wrote on every access (kernel/workload.h), so "ran to
completion" means every page that went to swap and came back was right.
The swap and cache disks are real virtio-blk devices; the cache's disk is
read-only and QEMU's own block statistics (query-blockstats) say whether
the guest ever wrote to it.
"""
import time

import pytest

MIB = 1 << 20
PAGE = 4096
# Negative errno values as newlib numbers them.
ENOENT, ENOMEM, EBUSY, ENODEV, EINVAL, EROFS = -2, -12, -16, -19, -22, -30


def image(tmp_path, name, mib):
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(mib * MIB)
    return str(path)


def file_image(tmp_path, pages):
    """A "file" whose every 4 KiB page starts with its page number."""
    path = tmp_path / "file.img"
    with open(path, "wb") as f:
        for p in range(pages):
            f.write(p.to_bytes(8, "little") + bytes([p & 0xff]) * (PAGE - 8))
    return str(path)


def boot_paging(boot, tmp_path, mem="128M", swap_mib=256, append="", balloon=False, cache=None,
                swap_readonly=False, path="pvh"):
    devices, extra = [], []
    if swap_mib:
        ro = ",readonly=on" if swap_readonly else ""
        devices.append("virtio-blk-pci,drive=sw")
        extra += ["-drive", f"if=none,id=sw,file={image(tmp_path, 'swap.img', swap_mib)},format=raw{ro}"]
    if cache:
        devices.append("virtio-blk-pci,drive=c0")
        extra += ["-drive", f"if=none,id=c0,file={cache},format=raw,readonly=on"]
    if balloon:  # True, or the device's options: ",deflate-on-oom=on"
        devices.append("virtio-balloon-pci,id=bal0" + (balloon if isinstance(balloon, str) else ""))
    if swap_mib and not swap_readonly:
        append = f"vm.swap=0 {append}"
    vm = boot(mem=mem, devices=devices, extra_args=extra, append=append.strip(), boot=path)
    vm.wait_event("ready", timeout=120)
    return vm


def blockstats(vm, drive):
    for dev in vm.qmp.execute("query-blockstats"):
        if dev.get("device") == drive:
            return dev["stats"]
    raise AssertionError(f"no drive {drive} in query-blockstats")


def last_workload(vm, name):
    evs = [e for e in vm.events_named("workload") if e["name"] == name]
    return evs[-1] if evs else None


def wait_workload(vm, name, predicate, timeout, what):
    """The first once-a-second `workload` event of `name` satisfying predicate."""
    def find():
        for e in vm.events_named("workload"):
            if e["name"] == name and predicate(e):
                return e
        return None
    return vm.wait_for(find, timeout, what)


def assert_no_corruption(vm):
    bad = vm.events_named("workload_corrupt") + vm.events_named("vm_lost")
    assert not bad, f"pages came back wrong or were lost: {bad[:3]}"


@pytest.mark.parametrize("pattern,policy,path", [("seq", "esc", "pvh"), ("uniform", "esc", "pvh"),
                                                 ("uniform", "clock", "pvh"), ("uniform", "fifo", "pvh"),
                                                 ("uniform", "esc", "uefi")])
def test_a_workload_larger_than_memory_runs_to_completion(boot, tmp_path, pattern, policy, path):
    vm = boot_paging(boot, tmp_path, append=f"vm.policy={policy}", path=path)
    vm.shell(f"run big size=192M pattern={pattern} write=50 count=60000")
    done = vm.wait_event("workload_done", timeout=300)
    assert done["error"] == 0 and done["accesses"] == 60000, done
    assert_no_corruption(vm)
    v = vm.shell_event("vm")
    assert v["policy"] == policy
    # 192 MiB in a 128 MiB guest: the fill alone pushed pages out and the
    # accesses brought some back, each a major fault read from swap.
    assert v["swap_out"] > 16384 and v["majflt"] > 1000, v
    assert v["swap_in"] == v["majflt"] + v["readahead"] and v["minflt"] == 192 * MIB // PAGE, v
    s = vm.shell_event("swap")
    assert s["pages_out"] == v["swap_out"] and s["pages_in"] == v["swap_in"], (s, v)
    assert s["used"] == 0 and s["write_errors"] == 0, "the workload's slots were not all freed"
    assert blockstats(vm, "sw")["wr_bytes"] == s["pages_out"] * PAGE
    # Clustering: many pages per write; a scan reads its pages back several
    # at a time (readahead), each counted as swapped in but only the
    # faulting one as a major fault.
    assert s["writes"] * 8 < s["pages_out"], s
    if pattern == "seq":
        assert v["readahead"] > v["majflt"], v
        assert v["swap_in"] == v["majflt"] + v["readahead"], v
    assert vm.shell_event("pfa")["check"] == "ok"


def test_swap_and_fault_counters_reach_the_host(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, balloon=True)
    vm.shell("run w size=160M pattern=uniform write=30 count=20000")
    vm.wait_event("workload_done", timeout=300)
    v = vm.shell_event("vm")
    assert v["majflt"] > 0 and v["swap_out"] > 0
    path = "/machine/peripheral/bal0"
    vm.qmp.execute("qom-set", path=path, property="guest-stats-polling-interval", value=1)
    deadline = time.monotonic() + 60
    while True:
        stats = vm.qmp.execute("qom-get", path=path, property="guest-stats")["stats"]
        if stats["stat-major-faults"] == v["majflt"]:
            break
        assert time.monotonic() < deadline, f"guest-stats never caught up: {stats} vs {v}"
        time.sleep(0.5)
    assert stats["stat-swap-in"] == v["swap_in"] * PAGE
    assert stats["stat-swap-out"] == v["swap_out"] * PAGE
    assert stats["stat-minor-faults"] == v["minflt"]
    assert stats["stat-disk-caches"] == 0


def test_the_balloon_squeezes_cold_pages_out_and_the_hot_set_stays(boot, tmp_path):
    # The working-set guard off: its cold pages are touched within tau, and
    # this is about reclaim under the balloon (the guard: test_pressure.py).
    vm = boot_paging(boot, tmp_path, mem="256M", balloon=True, append="balloon.ws_guard=off")
    vm.shell("run hc size=160M pattern=hotcold hot=16M hotpct=99 write=30")
    filled = wait_workload(vm, "hc", lambda e: e["accesses"] > 0, 120, "the fill to finish")
    # Running a while after the fill, the aging hand has cleared the
    # Accessed bits the fill set: only pages used since have them again.
    before = wait_workload(vm, "hc", lambda e: e["t_ms"] >= filled["t_ms"] + 2000, 120,
                           "two seconds of work after the fill")
    vm.qmp.execute("balloon", value=128 * MIB)
    vm.wait_actual(128 * MIB, timeout=180, why="the balloon taking memory a workload holds")
    b = vm.shell_event("balloon")
    assert b["reclaim_calls"] > 0 and b["reclaimed"] > 0, b
    squeezed = last_workload(vm, "hc")
    # Let it run squeezed for a few seconds of its own reports.
    t = squeezed["t_ms"]
    after = wait_workload(vm, "hc", lambda e: e["t_ms"] >= t + 4000, 120, "four seconds squeezed")
    assert_no_corruption(vm)
    hot = after["hot"]
    assert after["hot_resident"] >= 0.9 * hot, f"the hot set went to swap: {after}"
    # Major faults go to the cold pages: the hot set (95 % of accesses) has
    # almost none of them.
    majflt = after["majflt"] - before["majflt"]
    hot_majflt = after["hot_majflt"] - before["hot_majflt"]
    assert majflt > 0
    assert hot_majflt <= 0.05 * majflt, (before, after)
    v = vm.shell_event("vm")
    assert v["classes"][0] + v["classes"][1] > 0.9 * sum(v["classes"]), \
        f"victims were mostly recently used pages: {v}"

    # Let go: the workload faults its cold pages back in.
    resident = after["resident"]
    vm.qmp.execute("balloon", value=256 * MIB)
    vm.wait_actual(256 * MIB, timeout=120, why="the deflate")
    grown = wait_workload(vm, "hc", lambda e: e["resident"] > resident + 2000, 120,
                          "the workload's resident set to grow after the deflate")
    assert grown["error"] == 0
    vm.shell("stop hc")
    assert_no_corruption(vm)


def test_without_reclaim_the_balloon_stalls_at_the_floor(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, mem="256M", balloon=True, append="balloon.reclaim=off balloon.ws_guard=off")
    vm.shell("run hc size=160M pattern=hotcold hot=16M write=30")
    wait_workload(vm, "hc", lambda e: e["accesses"] > 0, 120, "the fill to finish")
    vm.qmp.execute("balloon", value=128 * MIB)
    ev = vm.wait_event("balloon_stalled", timeout=120)
    assert ev["reason"] == "reserve floor", ev
    b = vm.shell_event("balloon")
    assert b["reclaim_calls"] == 0 and b["held"] < 128 * MIB // PAGE, b
    vm.shell("stop hc")


def test_clean_cache_is_dropped_with_no_writes_to_its_disk(boot, tmp_path):
    cache = file_image(tmp_path, 16384)  # 64 MiB
    vm = boot_paging(boot, tmp_path, mem="256M", balloon=True, cache=cache,
                     append="vm.cache=1 balloon.ws_guard=off")  # a uniform workload: all of it is its working set
    vm.shell("run f size=96M pattern=uniform write=30 file=60 filecheck=1")
    wait_workload(vm, "f", lambda e: e["file_reads"] > 20000, 240, "the file to be read")
    c = vm.shell_event("cache")
    assert c["pages"] > 5000, c
    vm.qmp.execute("balloon", value=128 * MIB)
    vm.wait_actual(128 * MIB, timeout=180, why="the squeeze")
    reclaims = vm.events_named("reclaim")
    assert sum(r["dropped_cache"] for r in reclaims) > 0, "reclaim never dropped cache pages"
    v = vm.shell_event("vm")
    assert v["dropped_cache"] > 0
    stats = blockstats(vm, "c0")
    assert stats["wr_operations"] == 0 and stats["wr_bytes"] == 0, stats
    vm.shell("stop f")
    assert_no_corruption(vm)


def test_swap_full_is_reported_and_nothing_breaks(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, swap_mib=16)
    vm.shell("run big size=192M pattern=seq write=50")
    err = vm.wait_event("workload_error", timeout=300)
    assert err["error"] == ENOMEM, err
    assert vm.events_named("swap_full"), "swap ran full without a swap_full event"
    assert_no_corruption(vm)
    s = vm.shell_event("swap")
    assert s["used"] == 0, "the failed workload's slots were not freed"
    # The kernel is fine: a workload that fits runs.
    vm.shell("run small size=32M pattern=uniform count=5000")
    assert vm.wait_event("workload_done", timeout=120)["error"] == 0
    assert vm.shell_event("pfa")["check"] == "ok"


def test_bad_requests_get_clear_errors(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, swap_mib=16, swap_readonly=True)
    out = vm.shell("swap on 0", expect_rc=EROFS)[1]
    assert any("read-only" in line for line in out), out
    vm.shell("swap on 3", expect_rc=ENODEV)
    vm.shell("run", expect_rc=EINVAL)
    vm.shell("run x size=0", expect_rc=EINVAL)
    vm.shell("run x pattern=zigzag", expect_rc=EINVAL)
    vm.shell("run x pattern=loop", expect_rc=EINVAL)
    vm.shell("run x size=1M pattern=refs refs=1,2,999", expect_rc=EINVAL)
    vm.shell("run x size=1M file=10", expect_rc=EINVAL)
    vm.shell("run x bogus=1", expect_rc=EINVAL)
    vm.shell("stop nosuch", expect_rc=ENOENT)
    # A recorded reference string runs, and a name cannot run twice.
    vm.shell("run r size=1M pattern=refs refs=1,2,3,4,1,2,5,1,2,3,4,5")
    vm.shell("run r size=1M", expect_rc=EBUSY)
    vm.shell("stop r")
    # No swap: a workload larger than memory fails cleanly, told why.
    vm.shell("run big size=192M pattern=seq")
    err = vm.wait_event("workload_error", timeout=300)
    assert err["error"] == ENOMEM, err
    ps = vm.shell_event("ps")
    assert {w["name"]: w["state"] for w in ps["workloads"]}["big"] == "failed"
    assert vm.shell_event("pfa")["check"] == "ok"


def blkdebug_swap(boot, tmp_path, event, iotype):
    """A swap disk whose every `iotype` request fails with EIO once `event`
    happened (QEMU's blkdebug driver)."""
    conf = tmp_path / "blkdebug.conf"
    conf.write_text(f'[inject-error]\nevent = "{event}"\niotype = "{iotype}"\nerrno = "5"\n')
    img = image(tmp_path, "swap.img", 64)
    vm = boot(mem="128M", devices=["virtio-blk-pci,drive=sw"],
              extra_args=["-drive", f"if=none,id=sw,file=blkdebug:{conf}:{img},format=raw"],
              append="vm.swap=0")
    vm.wait_event("ready", timeout=30)
    return vm


def test_failed_swap_writes_lose_nothing(boot, tmp_path):
    vm = blkdebug_swap(boot, tmp_path, "write_aio", "write")
    vm.shell("run big size=192M pattern=seq write=50 count=10000")
    err = vm.wait_event("workload_error", timeout=300)
    # Every write failed: no page could leave, the workload is told there
    # is no memory, and no page it had came back wrong.
    assert err["error"] == ENOMEM, err
    assert_no_corruption(vm)
    s = vm.shell_event("swap")
    assert s["write_errors"] > 0 and s["pages_out"] == 0 and s["bad"] > 0, s
    assert any(e["rc"] == -5 for e in vm.events_named("swap_io"))
    v = vm.shell_event("vm")
    assert v["write_failures"] > 0 and v["swap_out"] == 0, v
    # The console is not flooded: the failure is said as often as its event.
    said = [line for line in vm.lines if "failed (-5)" in line]
    assert 0 < len(said) <= len(vm.events_named("swap_io")), len(said)
    vm.shell("run small size=16M count=2000")
    assert vm.wait_event("workload_done", timeout=120)["error"] == 0


def test_a_failed_swap_read_is_a_named_loss(boot, tmp_path):
    vm = blkdebug_swap(boot, tmp_path, "read_aio", "read")
    # 160 MiB: what does not fit in 128 fits in the 64 MiB of swap; the
    # first access after the fill (page 0, long gone to swap) reads it.
    vm.shell("run big size=160M pattern=seq write=50 count=10000")
    err = vm.wait_event("workload_error", timeout=300)
    assert err["error"] == -5, err  # -EIO: told, not silently wrong
    lost = vm.events_named("vm_lost")
    assert lost and lost[0]["rc"] == -5, lost
    assert any(lost[0]["va"] in line and "lost" in line for line in vm.lines)
    assert not vm.events_named("workload_corrupt")
    s = vm.shell_event("swap")
    assert s["read_errors"] >= 1 and s["bad"] >= 1 and s["used"] == 0, s
    assert vm.shell_event("pfa")["check"] == "ok"


def test_an_allocation_reclaims_before_it_fails(boot, tmp_path):
    # No balloon, so nothing to deflate: `alloc` gets its memory only by
    # pushing the workload's pages to swap.
    vm = boot_paging(boot, tmp_path, mem="256M")
    vm.shell("run w size=160M pattern=uniform write=30")
    wait_workload(vm, "w", lambda e: e["accesses"] > 0, 120, "the fill to finish")
    vm.shell("alloc 96M", timeout=120)
    vm.shell("free all")
    p = vm.shell_event("pfa")
    assert p["check"] == "ok"
    v = vm.shell_event("vm")
    assert v["swap_out"] > 0 and v["direct_runs"] > 0, v
    vm.shell("stop w")
    assert_no_corruption(vm)
