"""Memory under pressure (issue 15): the working-set guard of the balloon,
thrashing and its detection, page-fault-frequency allotments, and load
control.

One workload with a known hot set — 200 MiB of 600 MiB get every access
(hotpct=100) after the fill wrote all of it — is squeezed by the host
to 256 MiB of guest memory, less than the hot set plus the kernel:

  - with the guard on (the default) the balloon stops where the working
    set begins, says why with the figures, and the workload keeps its pace;
  - with it off the balloon takes the hot set too: every other access is a
    major fault, accesses per second collapse, and the guest says it is
    thrashing, with the evidence.

Each access checks its page's words, so "no corruption" is asserted too.
"""
import statistics
import time

from test_paging import PAGE, MIB, assert_no_corruption, boot_paging, wait_workload

HOT, SIZE = 200 * MIB // PAGE, 600 * MIB // PAGE


def settle(vm, name, ms, also=lambda e: True, timeout=120):
    """The first `workload` event of `name` at least `ms` after its fill ended
    (and satisfying `also`)."""
    filled = wait_workload(vm, name, lambda e: e["accesses"] > 0, 300, f"{name}'s fill to end")
    return wait_workload(vm, name, lambda e: e["t_ms"] >= filled["t_ms"] + ms and also(e), timeout,
                         f"{name}, {ms} ms after its fill")


def start_hot_workload(vm, name="w", extra=""):
    vm.shell(f"run {name} size=600M pattern=hotcold hot=200M hotpct=100 write=30 {extra}".strip())
    # tau (3 s) and two rounds after the fill only the hot set is in the estimate.
    return settle(vm, name, 6000, lambda e: e["ws"])


def rates(vm, name, since_ms, until_ms=None):
    return [e["acc_per_s"] for e in vm.events_named("workload")
            if e["name"] == name and e["t_ms"] > since_ms and (until_ms is None or e["t_ms"] <= until_ms)]


def test_the_guard_stops_the_balloon_at_the_working_set(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, mem="1G", swap_mib=768, balloon=True, append="vm.ws_ms=3000")
    known = start_hot_workload(vm)
    assert abs(known["ws"] - HOT) <= 0.1 * HOT, known
    before = statistics.median(rates(vm, "w", known["t_ms"] - 4000))
    vm.qmp.execute("balloon", value=256 * MIB)
    stall = vm.wait_event("balloon_stalled", timeout=300, where=lambda e: e["reason"] == "working set")
    # Stopped with the working set and its margin left, the figures said.
    assert abs(stall["ws"] - HOT) <= 0.1 * HOT and stall["margin"] >= stall["ws"] // 20, stall
    b = vm.shell_event("balloon")
    guest = b["managed"] - b["held"]
    assert guest >= HOT * 1.05, f"the guest kept {guest} pages, its hot set is {HOT}: {b}"
    assert b["ws_guard"] is True and b["ws_stalls"] >= 1, b
    # It went as far as it could: the cold pages went to swap.
    assert b["held"] >= (1024 - 600) * MIB // PAGE, b
    # And the workload keeps its pace: no thrashing, few major faults.
    now = vm.events_named("workload")[-1]["t_ms"]
    after = wait_workload(vm, "w", lambda e: e["t_ms"] >= now + 5000, 120, "five more seconds")
    later = rates(vm, "w", now, after["t_ms"])
    assert statistics.median(later) >= 0.5 * before, (before, later)
    assert not vm.events_named("thrashing"), vm.events_named("thrashing")
    assert after["fault_pm"] < 20, after
    # The host sees it: AVAIL is what can still go, near nothing now.
    ws = vm.shell_event("ws")
    assert ws["avail"] <= b["free"] + 0.1 * HOT, ws
    vm.shell("stop w")
    assert_no_corruption(vm)


def test_without_the_guard_the_squeeze_thrashes(boot, tmp_path):
    vm = boot_paging(boot, tmp_path, mem="1G", swap_mib=768, balloon=True,
                     append="vm.ws_ms=3000 balloon.ws_guard=off")
    known = start_hot_workload(vm)
    before = statistics.median(rates(vm, "w", known["t_ms"] - 4000))
    vm.qmp.execute("balloon", value=200 * MIB)
    ev = vm.wait_event("thrashing", timeout=300)
    assert ev["name"] == "w" and ev["fault_pm"] >= 100, ev
    assert ev["acc_per_s"] * 100 <= ev["best_acc_per_s"] * 30, ev
    assert ev["load_control"].startswith("none"), ev  # the only workload: nothing to suspend
    assert ev["resident"] < HOT, ev
    collapsed = rates(vm, "w", ev["t_ms"] - 2500, ev["t_ms"])
    assert max(collapsed) <= 0.3 * before, (before, collapsed)
    b = vm.shell_event("balloon")
    assert b["ws_guard"] is False and b["ws_stalls"] == 0, b
    # The host gives the memory back: the episode ends.
    vm.qmp.execute("balloon", value=1024 * MIB)
    end = vm.wait_event("thrashing_end", timeout=300)
    assert end["name"] == "w" and end["fault_pm"] < 100, end
    vm.shell("stop w")
    assert_no_corruption(vm)


def test_pff_asks_for_memory_back_for_the_workload_that_faults(boot, tmp_path):
    """Two workloads under a guarded squeeze; then one's hot set grows into
    pages that went to swap. Its fault rate crosses the upper bound, its
    allotment grows, and — the guest having nothing left outside the working
    sets — page-fault frequency asks the balloon for memory back
    (deflate-on-OOM): the faulting workload gets its new hot set resident,
    the quiet one keeps only its working set."""
    vm = boot_paging(boot, tmp_path, mem="1G", swap_mib=768, balloon=",deflate-on-oom=on",
                     append="vm.ws_ms=3000")
    vm.shell("run q size=300M pattern=hotcold hot=30M hotpct=100 write=30")
    vm.shell("run f size=300M pattern=hotcold hot=60M hotpct=100 write=30")
    for name in ("q", "f"):
        settle(vm, name, 6000)  # its working set known
    vm.qmp.execute("balloon", value=128 * MIB)
    stall = vm.wait_event("balloon_stalled", timeout=300, where=lambda e: e["reason"] == "working set")
    held = vm.shell_event("balloon")["held"]
    f0 = [e for e in vm.events_named("workload") if e["name"] == "f"][-1]
    assert f0["swapped"] > 40 * MIB // PAGE, f0  # its cold part went to swap
    q0 = wait_workload(vm, "q", lambda e: e["t_ms"] > stall["t_ms"] + 2000, 120, "the squeeze to settle")
    vm.shell("set f hot=200M")
    grow = vm.wait_event("pff", timeout=120, where=lambda e: e["name"] == "f" and e["move"] == "grow"
                         and e["asked"] > 0)
    assert grow["fault_pm"] > 20 and grow["allot"] > grow["allot_before"], grow
    new_hot = 200 * MIB // PAGE
    settled = wait_workload(vm, "f", lambda e: e["t_ms"] > grow["t_ms"] and e["resident"] >= 0.95 * new_hot
                            and e["fault_pm"] < 20, 300, "f's new hot set to be resident, its faults calm")
    b = vm.shell_event("balloon")
    assert b["oom_deflates"] >= 1 and b["held"] < held, (held, b)
    got = sum(e["got"] for e in vm.events_named("pff") if e["name"] == "f")
    assert got > 0, vm.events_named("pff")
    # The quiet one kept its working set through the other's storm, and its
    # allotment is that working set.
    q = [e for e in vm.events_named("workload") if e["name"] == "q"][-1]
    q_hot = 30 * MIB // PAGE
    # (A few of its pages may go: once every workload is at its allotment,
    # reclaim takes the clock's unused pages from anyone, kernel/vm.c.)
    assert q["hot_resident"] >= 0.99 * q_hot and q["hot_majflt"] - q0["hot_majflt"] <= q_hot // 100, (q0, q)
    assert q["allot"] <= 1.2 * q_hot, q
    vm.shell("stop q")
    vm.shell("stop f")
    assert_no_corruption(vm)


def test_load_control_suspends_one_workload_and_resumes_it(boot, tmp_path):
    """A swap storm: two workloads that together no longer fit fault
    together after a sudden squeeze (guard off). Load control suspends the
    lower priority one; the other's faults calm down. When the host gives
    memory back the suspended one runs again."""
    vm = boot_paging(boot, tmp_path, mem="1G", swap_mib=768, balloon=True,
                     append="vm.ws_ms=3000 balloon.ws_guard=off")
    vm.shell("run lo size=300M pattern=uniform write=30")
    vm.shell("run hi size=300M pattern=uniform write=30 prio=1")
    for name in ("lo", "hi"):
        settle(vm, name, 3000)  # its pace known
    vm.qmp.execute("balloon", value=450 * MIB)
    susp = vm.wait_event("workload_suspend", timeout=300)
    assert susp["name"] == "lo" and susp["prio"] == 0 and susp["need"] > 0, susp
    thr = [vm.wait_event("thrashing", timeout=60)]  # emitted right after the suspension
    assert thr[0]["load_control"] == "suspended lo", thr
    calm = wait_workload(vm, "hi", lambda e: e["t_ms"] > susp["t_ms"] + 2000 and e["fault_pm"] < 20, 300,
                         "hi to stop faulting once lo is suspended")
    lo = [e for e in vm.events_named("workload") if e["name"] == "lo"][-1]
    assert lo["state"] == "suspended" and lo["acc_per_s"] == 0, lo
    vm.qmp.execute("balloon", value=1024 * MIB)
    res = vm.wait_event("workload_resume", timeout=300)
    assert res["name"] == "lo" and res["room"] >= res["need"], res
    wait_workload(vm, "lo", lambda e: e["t_ms"] > res["t_ms"] and e["state"] == "running"
                  and e["acc_per_s"] > 0, 120, "lo to run again")
    vm.shell("stop lo")
    vm.shell("stop hi")
    assert_no_corruption(vm)


def test_a_host_that_reads_only_qmp_meets_the_guard_and_changes_its_mind(boot, tmp_path):
    """A management host as libvirt is one: it sets the balloon and reads the
    statistics over QMP and never reads the console (its socket fills). The
    guard must hold without anyone reading, AVAIL must tell the host that
    nothing more can go without hurting, and a new target mid-way — the
    host changing its mind — is followed at once."""
    swap = tmp_path / "swap.img"
    with open(swap, "wb") as f:
        f.truncate(768 * MIB)
    vm = boot(mem="1G", devices=["virtio-blk-pci,drive=sw", "virtio-balloon-pci,id=bal0"],
              extra_args=["-drive", f"if=none,id=sw,file={swap},format=raw"],
              append="vm.swap=0 vm.ws_ms=3000", serial="socket")
    vm.wait_event("ready", timeout=120)
    start_hot_workload(vm)
    path = "/machine/peripheral/bal0"
    vm.qmp.execute("qom-set", path=path, property="guest-stats-polling-interval", value=1)
    vm.pause_reading()
    vm.qmp.execute("balloon", value=256 * MIB)

    def actual():
        return vm.qmp.execute("query-balloon")["actual"]

    # Wait, by QMP only, until the balloon stops moving.
    last, still_since, deadline = actual(), time.monotonic(), time.monotonic() + 300
    while time.monotonic() - still_since < 5:
        assert time.monotonic() < deadline, f"the balloon never settled: actual {last}"
        time.sleep(0.5)
        now = actual()
        if now != last:
            last, still_since = now, time.monotonic()
    assert last >= (HOT * PAGE) * 1.05, f"the guest was left {last >> 20} MiB, its hot set is 200 MiB"
    assert last <= 600 * MIB, f"the balloon took little: the guest still has {last >> 20} MiB"
    stats = vm.qmp.execute("qom-get", path=path, property="guest-stats")["stats"]
    # AVAIL: near nothing can go now (less than the margin and the floor).
    assert stats["stat-available-memory"] <= 0.2 * HOT * PAGE, stats
    # The host changes its mind: less than it asked, then more back.
    vm.qmp.execute("balloon", value=800 * MIB)
    vm.wait_actual(800 * MIB, timeout=120, why="a target above the stall, console unread")
    vm.resume_reading()
    vm.wait_event("balloon_stalled", timeout=60, where=lambda e: e["reason"] == "working set")
    assert not vm.events_named("thrashing")
    vm.shell("stop w")
    assert_no_corruption(vm)


def test_pff_moves_memory_from_the_quiet_workload_to_the_one_that_faults(boot, tmp_path):
    """No balloon: the memory comes from the other workload. q has filled 320
    MiB but uses 32 of it, so its allotment shrinks to its working set and
    the rest is slack; f then needs 320 MiB of a 512 MiB guest that has not that
    much left. Reclaim takes q's slack, spares q's working set, and f ends
    with all of its pages resident and its faults calm."""
    vm = boot_paging(boot, tmp_path, mem="512M", swap_mib=768, append="vm.ws_ms=3000")
    vm.shell("run q size=320M pattern=hotcold hot=32M hotpct=100 write=30")
    q_hot, f_pages = 32 * MIB // PAGE, 320 * MIB // PAGE
    settle(vm, "q", 5000, lambda e: e["allot"] and e["allot"] <= 1.1 * q_hot)  # shrunk to its working set
    q0 = [e for e in vm.events_named("workload") if e["name"] == "q"][-1]
    vm.shell("run f size=320M pattern=uniform write=30")
    # f holds all of its pages, its faults calm.
    f = settle(vm, "f", 3000, lambda e: e["resident"] >= 0.97 * f_pages and e["fault_pm"] < 20, timeout=300)
    q = [e for e in vm.events_named("workload") if e["name"] == "q"][-1]
    assert q["resident"] < q0["resident"] - 100 * MIB // PAGE, (q0, q)  # q gave up its slack ...
    assert q["hot_resident"] >= 0.99 * q_hot, q                            # ... not its working set
    assert q["hot_majflt"] - q0["hot_majflt"] <= q_hot // 100, (q0, q)
    assert f["error"] == 0
    vm.shell("stop f")
    vm.shell("stop q")
    assert_no_corruption(vm)
