"""Boot: both boot paths on both machine types, memory sizes, exceptions,
the shell's basics and the command line's error handling."""
import pytest

from blimp.units import MIB
from blimp.vm import EXIT_BOOT_FAILED, EXIT_EXCEPTION, EXIT_SUCCESS, GuestError


@pytest.mark.parametrize("machine", ["q35", "pc"])
@pytest.mark.parametrize("path", ["pvh", "uefi"])
def test_boots_to_ready_and_powers_off(boot, path, machine):
    vm = boot(boot=path, machine=machine, mem="256M")
    ready = vm.wait_event("ready", timeout=120 if path == "uefi" else 30)
    assert ready["boot"] == path
    assert ready["mem_usable"] > 200 * MIB
    assert vm.poweroff() == EXIT_SUCCESS


# Firmware keeps some RAM for itself (BIOS area, ACPI, OVMF's runtime data);
# everything else must be reported usable, and nothing more than -m.
@pytest.mark.parametrize("mem,path,slack_mib", [
    ("128M", "pvh", 4), ("2G", "pvh", 4), ("6G", "pvh", 4), ("6G", "uefi", 96),
])
def test_reported_memory_matches_m(boot, mem, path, slack_mib):
    size = int(mem[:-1]) * (1024 if mem.endswith("G") else 1) * MIB
    vm = boot(boot=path, mem=mem)
    ready = vm.wait_event("ready", timeout=120 if path == "uefi" else 30)
    assert size - slack_mib * MIB <= ready["mem_usable"] <= size, ready
    if size > 4096 * MIB:
        # q35 keeps at most 2 GiB below 4 GiB (the rest of that space is
        # PCI and ECAM), so RAM above 4 GiB must be seen.
        assert ready["mem_above_4g"] >= size - 2048 * MIB - slack_mib * MIB, ready
    ev, out = vm.shell("mem")
    assert ev["rc"] == 0
    text = "\n".join(out)
    assert "usable" in text and "kernel image" in text


@pytest.mark.parametrize("kind,vector", [("pagefault", 14), ("ud", 6), ("gp", 13), ("div", 0)])
def test_exception_is_reported_with_vector_and_exit_code(boot, kind, vector):
    vm = boot(append=f"fault={kind}", mem="128M", machine="pc")
    ev = vm.wait_event("exception", timeout=30)
    assert ev["vector"] == vector
    if kind == "pagefault":
        assert ev["cr2"] == "0" and ev["error_code"] & 2  # a write to address 0
    assert vm.wait_exit() == EXIT_EXCEPTION
    assert any(f"CPU exception {vector} " in line for line in vm.lines)
    assert any(line.strip().startswith("RAX ") for line in vm.lines)


def test_stack_overflow_is_named_and_exits_with_the_exception_status(boot):
    # Before the guard pages, the boot stack ran on down through the .bss
    # and the image below it with no fault, and the machine reset with no
    # message at all (QEMU exited 0 under -no-reboot).
    vm = boot(append="fault=stack", mem="128M")
    ev = vm.wait_event("exception", timeout=30)
    assert ev["vector"] == 14 and ev.get("stack_overflow") == "boot stack", ev
    assert vm.wait_exit() == EXIT_EXCEPTION
    assert any("stack overflow" in line and "boot stack" in line for line in vm.lines)


def test_unknown_command_is_reported_and_shell_goes_on(boot):
    vm = boot(mem="128M")
    vm.wait_event("ready", timeout=30)
    ev, out = vm.shell("frobnicate now", expect_rc=None)
    assert ev["ev"] == "cmd_error" and ev["name"] == "frobnicate"
    assert any("unknown command 'frobnicate'" in line for line in out)
    ev, out = vm.shell("help")
    assert any("poweroff" in line for line in out)


def test_unknown_option_is_reported_and_boot_goes_on(boot):
    vm = boot(mem="128M", append="no_such_option=3 fault")
    # "fault" without a value is known but names no kind: reported, not fatal.
    err = vm.wait_event("cmdline_error", timeout=30)
    assert err["option"] == "no_such_option"
    ready = vm.wait_event("ready", timeout=30)
    assert ready["cmdline"] == "no_such_option=3 fault"
    assert vm.poweroff() == EXIT_SUCCESS


def test_ready_with_the_longest_command_line_is_still_one_json_object(boot):
    # 1023 characters, the most boot_info holds; the quotes double when
    # escaped, so `ready` needs far more than an event line's 1024 bytes.
    # Before, the line was cut mid-string and did not parse.
    word = 'note="' + '"' * 400
    append = (word + " " + "x" * 1023)[:1023]
    vm = boot(mem="128M", append=append)
    ready = vm.wait_event("ready", timeout=30)
    assert ready.get("truncated") is True, ready
    assert append.startswith(ready["cmdline"]) and len(ready["cmdline"]) > 100, ready
    assert vm.poweroff() == EXIT_SUCCESS


@pytest.mark.parametrize("path", ["pvh", "uefi"])
def test_a_command_line_too_long_is_refused_the_same_way_by_both_paths(boot, path):
    # Before, PVH kept the first 1023 characters: here `reserve=1024M` would
    # have been cut to `reserve=10`, silently. The UEFI loader refused it.
    append = "x" * 1018 + " reserve=1024M"
    vm = boot(mem="128M", boot=path, append=append)
    failed = vm.wait_event("boot_failed", timeout=120 if path == "uefi" else 30)
    assert failed["boot"] == path and failed["why"] == "command line too long", failed
    assert failed["cmdline_len"] == len(append) and failed["cmdline_max"] == 1023, failed
    assert vm.wait_exit(60) == EXIT_BOOT_FAILED
    assert any(f"{len(append)} characters" in line and "at most 1023" in line for line in vm.lines)
    assert not vm.events_named("ready")


def test_long_and_odd_input_does_not_break_the_shell(boot):
    vm = boot(mem="128M")
    vm.wait_event("ready", timeout=30)
    vm.send("x" * 600 + "\n")                 # longer than a line may be
    vm.wait_line("line longer than", timeout=30)
    vm.send("\x01\x02\x1b[A\n")               # control bytes only: an empty line
    ev, _ = vm.shell("help")
    assert ev["rc"] == 0


def test_input_typed_as_the_shell_starts_is_kept(boot):
    # The shell routes the UART's interrupt just after "ready" and then drains
    # what came before. Once, that drain and the interrupt handler raced and
    # lost all but the first byte of a line typed at that moment: the guest
    # never saw the Enter. It showed on the pc machine with a bridge (the PCI
    # listing test's guest), about one boot in ten; twenty boots of that guest
    # make the window likely to be hit again if the race comes back.
    devices = ["virtio-balloon-pci,id=bal0", "virtio-rng-pci,id=rng0",
               "pci-bridge,id=br1,chassis_nr=1", "virtio-rng-pci,id=rng1,bus=br1,addr=0x1"]
    for _ in range(20):
        vm = boot(mem="256M", machine="pc", devices=devices)
        vm.wait_event("ready", timeout=30)
        ev, out = vm.shell("mem", timeout=30)
        assert ev["rc"] == 0
        vm.close()


def test_qemu_stderr_is_kept_apart_from_the_serial_console(boot):
    # A CPU feature TCG lacks makes QEMU warn on its stderr at start, on 7.2
    # and 10.0 alike: the warning must not become a serial line (where it
    # could split an event line), yet must be kept and shown in errors.
    vm = boot(extra_args=["-cpu", "qemu64,+vmx"])
    vm.wait_event("ready")
    vm.shell("mem")
    warning = "doesn't support requested feature"
    vm.wait_for(lambda: any(warning in ln for ln in vm.stderr_lines), 30, "QEMU's warning on stderr")
    assert not any(warning in ln for ln in vm.lines), vm.tail()
    with pytest.raises(GuestError) as err:
        vm.wait_event("no-such-event", timeout=0.5)
    assert "QEMU's stderr" in str(err.value) and warning in str(err.value)
