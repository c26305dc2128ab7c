"""Any size of guest (issue 17): a 1 TiB blimp — or the largest this host
can hold, the reason in the test's id — and a 256 GiB one boot, see all
their memory, inflate the balloon past what lies below 4 GiB and deflate it,
keep the allocator's invariants, and run an allocation workload.

Above 16 GiB blimp.vm gives the guest its RAM from an unreserved
memory-backend-ram (the host's overcommit heuristic refuses a plain -m of
that size) and, at 1 TiB, the phys-bits QEMU needs to place RAM above the
AMD HyperTransport hole (tests/host/test_vm_size.py checks that command
line without QEMU). Today's kernel writes the allocator's metadata for
every frame at boot, and `pfa`'s invariant check reads every frame: both
take seconds at 1 TiB, so the timeouts are generous; no time is asserted
(bench/bigmem.py measures it).
"""
import pytest

from blimp.units import GIB, MIB, PAGE
from blimp.vm import EXIT_SUCCESS, host_room, mem_bytes

ALLOC = 2 * GIB        # the allocation workload: `alloc 2G`, then `free all`
ABOVE_LOW = 6 * GIB    # the balloon holds this much more than all RAM below 4 GiB
TIMEOUT = 600          # any single wait; today's kernel needs ~10 s for the worst
LADDER = ("1T", "512G", "256G")


def largest_guest():
    """(size, why not bigger): the first of LADDER this host can hold."""
    why = []
    for mem in LADDER:
        reason = host_room(mem, touched=ALLOC)
        if reason is None:
            return mem, "; ".join(why)
        why.append(reason)
    return None, "; ".join(why)


LARGEST, NOT_BIGGER = largest_guest()
if NOT_BIGGER:
    print(f"test_bigmem: the largest guest here is {LARGEST}: {NOT_BIGGER}")


def pfa(vm):
    ev = vm.shell_event("pfa", timeout=TIMEOUT)
    assert ev["check"] == "ok", f"pfa's invariant check: {ev['check']}"
    return ev


def check_big_guest(boot, mem):
    vm = boot(mem=mem, devices=["virtio-balloon-pci"])
    ram = mem_bytes(mem)
    ready = vm.wait_event("ready", timeout=TIMEOUT)
    # All of it, less the few hundred KiB the firmware tables and the
    # legacy holes below 1 MiB take.
    assert ram - 4 * MIB <= ready["mem_usable"] <= ram, ready
    below_4g = ready["mem_usable"] - ready["mem_above_4g"]
    assert 0 < below_4g < 4 * GIB, ready
    _, out = vm.shell("mem", timeout=TIMEOUT)
    shown = vm.events_named("mem")[-1]
    assert shown["mem_usable"] == ready["mem_usable"], (shown, ready)
    assert shown["mem_above_4g"] == ready["mem_above_4g"], (shown, ready)

    # The `balloon` command's figures first: `pfa` reads every frame (about
    # 10 s at 1 TiB on today's kernel), so it runs with the balloon full and
    # after, not here too.
    before = vm.shell_event("balloon", timeout=TIMEOUT)
    assert before["held"] == 0 and before["check"] == "ok", before

    # More than all RAM below 4 GiB: at least ABOVE_LOW of it lies above.
    held = (below_4g + ABOVE_LOW + GIB - 1) // GIB * GIB
    vm.balloon_hold(held, timeout=TIMEOUT)
    inflated = pfa(vm)
    # Every usable frame is managed but the kernel's own (image, boot
    # memory with the metadata, page tables).
    assert inflated["managed"] == before["managed"], (before, inflated)
    assert inflated["managed"] * PAGE >= ready["mem_usable"] - inflated["meta_bytes"] - 64 * MIB, inflated
    assert inflated["ballooned"] == held // PAGE, inflated
    assert inflated["free"] <= before["free"] - held // PAGE, (before, inflated)
    bal = vm.shell_event("balloon", timeout=TIMEOUT)
    assert bal["held"] == held // PAGE and bal["check"] == "ok", bal

    # An allocation workload beside the balloon: every frame written with
    # a pattern, checked when freed (`free` fails on a frame that changed).
    vm.shell(f"alloc {ALLOC >> 20}M", timeout=TIMEOUT)
    got = vm.events_named("alloc")[-1]
    assert got["bytes"] == ALLOC, got
    vm.shell("free all", timeout=TIMEOUT)

    vm.balloon_hold(0, timeout=TIMEOUT)
    after = pfa(vm)
    assert after["ballooned"] == 0, after
    assert after["free"] == before["free"] and after["managed"] == before["managed"], (before, after)
    assert vm.poweroff(timeout=TIMEOUT) == EXIT_SUCCESS


@pytest.mark.skipif(LARGEST is None, reason=f"no big guest fits this host: {NOT_BIGGER}")
@pytest.mark.parametrize("mem", [LARGEST], ids=[f"{LARGEST}" + (f" ({NOT_BIGGER})" if NOT_BIGGER else "")])
def test_the_largest_guest_up_to_1tib_sees_its_memory_and_balloons_above_4gib(boot, mem):
    check_big_guest(boot, mem)


@pytest.mark.skipif(host_room("256G", touched=ALLOC) is not None,
                    reason=str(host_room("256G", touched=ALLOC)))
def test_a_256gib_guest_sees_its_memory_and_balloons_above_4gib(boot):
    check_big_guest(boot, "256G")


@pytest.mark.skipif(LARGEST is None, reason=f"no big guest fits this host: {NOT_BIGGER}")
def test_a_host_that_changes_its_mind_mid_inflate_is_heard_before_the_inflate_ends(boot):
    """A 200 GiB inflate takes ~15 s of one balloon step if the step runs to
    its end; a host asking for 20 GiB half a second in must be heard then,
    while the console is not read (a client that reads it now and then)."""
    vm = boot(mem=LARGEST, devices=["virtio-balloon-pci"], serial="socket")
    ram = mem_bytes(LARGEST)
    vm.wait_event("ready", timeout=TIMEOUT)
    first, second = min(200 * GIB, ram // 2), 20 * GIB
    vm.pause_reading()
    vm.qmp.execute("balloon", value=ram - first)
    vm.poll(lambda: ram - vm.qmp.execute("query-balloon")["actual"] >= GIB, TIMEOUT,
            lambda: "the inflate never took its first GiB", 0.01)
    vm.qmp.execute("balloon", value=ram - second)
    vm.wait_actual(ram - second, timeout=TIMEOUT, why="the second target")
    vm.resume_reading()
    bal = vm.shell_event("balloon", timeout=TIMEOUT)
    assert bal["held"] == second // PAGE and bal["check"] == "ok", bal
    # The guest turned back long before the first target: had the step run
    # to its end it would have taken all of it in and given most back.
    assert bal["pages_in"] < first // PAGE // 2, bal
    pfa(vm)
