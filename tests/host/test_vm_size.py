"""blimp.vm's command line for a guest of any size (issue 17), without QEMU:
small guests get exactly the line they always had; above 16 GiB the RAM
comes from an unreserved backend; a 1 TiB guest gets the phys-bits QEMU
asks for (QEMU 10.0 refuses 40 bits: "Address space limit 0xffffffffff <
0x2077fffffff phys-bits too low"). tests/qemu/test_bigmem.py boots them."""
import pytest

from blimp.vm import BlimpVM, big_memory_args, flat_cpu_args, mem_bytes, phys_bits_needed


@pytest.mark.parametrize("text,size", [("256M", 256 << 20), ("2G", 2 << 30), ("1T", 1 << 40),
                                       ("2048", 2 << 30), ("64g", 64 << 30), ("512K", 512 << 10),
                                       ("1.5G", 3 << 29)])
def test_mem_sizes_are_read_as_qemus_m_reads_them(text, size):
    assert mem_bytes(text) == size


@pytest.mark.parametrize("text", ["", "2X", "G", "1.G", "-1G", "2GB"])
def test_a_malformed_size_is_refused_and_left_to_qemu(text):
    with pytest.raises(ValueError):
        mem_bytes(text)
    assert big_memory_args(text, "q35") == ("q35", [])


def test_a_guest_of_16gib_or_less_keeps_its_command_line():
    for mem in ("256M", "2G", "16G"):
        cmd = BlimpVM(mem=mem, qmp=False).command_line()
        assert "-object" not in cmd and "-cpu" not in cmd, cmd
        assert cmd[cmd.index("-machine") + 1] == "q35"


def test_above_16gib_the_ram_is_an_unreserved_backend_the_machine_uses():
    cmd = BlimpVM(mem="64G", machine="pc", qmp=False).command_line()
    backend = cmd[cmd.index("-object") + 1]
    assert backend.startswith("memory-backend-ram,") and "reserve=off" in backend, backend
    assert f"size={64 << 30}" in backend and "id=blimp-ram" in backend, backend
    assert cmd[cmd.index("-machine") + 1] == "pc,memory-backend=blimp-ram"
    assert cmd[cmd.index("-m") + 1] == "64G"      # -m must agree with the backend
    assert "-cpu" not in cmd                      # 64 GiB fits qemu64's 40 bits


@pytest.mark.parametrize("mem,bits", [("256G", 40), ("900G", 40), ("980G", 41), ("1T", 42)])
def test_phys_bits_cover_ram_moved_above_the_amd_hole(mem, bits):
    # 980G: 4 GiB + 978 GiB + the 32 GiB PCI hole crosses 1012 GiB, so QEMU
    # starts high RAM at 1 TiB and it ends at 2034 GiB.
    assert phys_bits_needed(mem_bytes(mem), "q35") == bits


def test_a_1tib_guest_gets_42_phys_bits_unless_the_caller_chose_a_cpu():
    machine, args = big_memory_args("1T", "q35")
    assert args[args.index("-cpu") + 1] == "qemu64,phys-bits=42"
    _, args = big_memory_args("1T", "q35", ["-cpu", "max"])
    assert "-cpu" not in args


def test_a_callers_own_backend_is_left_alone():
    # blimp.hostswap brings a memory-backend-file of its own.
    extra = ["-object", "memory-backend-file,id=ram,size=64G,mem-path=/x", "-machine", "memory-backend=ram"]
    assert big_memory_args("64G", "q35", extra) == ("q35", [])


def test_an_intel_cpu_keeps_1tib_of_ram_in_one_piece_with_41_bits():
    # No move above the AMD hole: RAM ends at 1026 GiB, the PCI hole at 1058.
    assert flat_cpu_args("1T") == ["-cpu", "qemu64,vendor=GenuineIntel,phys-bits=41"]
    assert flat_cpu_args("256G") == ["-cpu", "qemu64,vendor=GenuineIntel,phys-bits=40"]
