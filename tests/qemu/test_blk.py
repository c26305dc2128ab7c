"""virtio-blk (issue 14): real data crosses the device, both ways.

The test writes a raw image whose sectors hold a pattern (the same function
as blk_pattern in drivers/virtio/blk.c: each 64-bit word depends on a seed,
the sector and its place), the guest reads and verifies it (`blk read`),
writes its own pattern with another seed and flushes, and after poweroff the
test reads the image back and finds the guest's bytes at the right offsets
and the host's everywhere else. A read-only drive refuses writes; a request
beyond the capacity is refused before it reaches the device. Run with the
interrupt kinds the transport has: MSI-X (default), INTx forced, polling.
"""
import struct

import pytest

from blimp.vm import EXIT_SUCCESS

# Negative errno values as the guest's C library (newlib) numbers them.
EROFS = -30
ERANGE = -34

SECTOR = 512
IMAGE_SECTORS = 32768            # 16 MiB
HOST_SEED, GUEST_SEED = 1, 7
M64 = (1 << 64) - 1


def pattern_word(seed, sector, j):
    x = (((seed << 40) ^ (sector << 8) ^ j) + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def pattern(seed, sector, count):
    return b"".join(struct.pack("<64Q", *(pattern_word(seed, s, j) for j in range(64)))
                    for s in range(sector, sector + count))


# The host's pattern covers the start and the end of the image (the rest is
# zeros: computing 16 MiB of it in Python would take seconds).
HOST_RANGES = [(0, 2048), (IMAGE_SECTORS - 64, 64)]
GUEST_WRITE = (1000, 300)        # 300 sectors: several requests in flight, across the host's pattern


def make_image(path):
    with open(path, "wb") as f:
        f.truncate(IMAGE_SECTORS * SECTOR)
        for start, count in HOST_RANGES:
            f.seek(start * SECTOR)
            f.write(pattern(HOST_SEED, start, count))
    return str(path)


def boot_with(boot, image, append="", readonly=False):
    ro = ",readonly=on" if readonly else ""
    vm = boot(mem="128M", devices=["virtio-blk-pci,drive=d0"],
              extra_args=["-drive", f"if=none,id=d0,file={image},format=raw{ro}"], append=append)
    vm.wait_event("ready", timeout=30)
    return vm


@pytest.mark.parametrize("append", ["", "virtio.irq=intx", "irq=poll"])
def test_the_guest_reads_the_hosts_bytes_and_its_writes_land_in_the_image(boot, tmp_path, append):
    image = make_image(tmp_path / "disk.img")
    vm = boot_with(boot, image, append)
    listing = vm.shell_event("blk")
    assert listing["capacity"] == IMAGE_SECTORS and listing["blk_size"] == SECTOR and listing["ro"] == 0
    irq = {"": "msix", "virtio.irq=intx": "intx", "irq=poll": "poll"}[append]
    ready = [e for e in vm.events_named("virtio_ready") if e["device"] == "blk"]
    assert ready and ready[0]["irq"] == irq, ready

    for start, count in HOST_RANGES:
        vm.shell(f"blk read 0 {start} {count} {HOST_SEED}")
        ev = vm.events_named("blk_io")[-1]
        assert ev["mismatches"] == 0 and ev["count"] == count, ev
    # A wrong seed is noticed: the check really compares bytes.
    ev, out = vm.shell(f"blk read 0 0 8 {GUEST_SEED}", expect_rc=-5)
    assert vm.events_named("blk_io")[-1]["mismatches"] == 8, out

    start, count = GUEST_WRITE
    vm.shell(f"blk write 0 {start} {count} {GUEST_SEED}")
    vm.shell("blk flush 0")
    vm.shell(f"blk read 0 {start} {count} {GUEST_SEED}")
    assert vm.events_named("blk_io")[-1]["mismatches"] == 0

    st = vm.shell_event("blk")
    read_sectors = sum(c for _, c in HOST_RANGES) + 8 + count
    assert st["bytes_read"] == read_sectors * SECTOR, st
    assert st["bytes_written"] == count * SECTOR, st
    assert st["flushes"] == 1 and st["errors"] == 0 and st["lies"] == 0 and st["broken"] == 0, st
    assert st["requests"] == st["reads"] + st["writes"] + st["flushes"], st
    assert st["max_inflight"] >= 3, st   # 300 sectors go as 3 requests of at most 128, together
    assert vm.poweroff() == EXIT_SUCCESS

    with open(image, "rb") as f:
        data = f.read()
    assert len(data) == IMAGE_SECTORS * SECTOR
    got = data[start * SECTOR:(start + count) * SECTOR]
    assert got == pattern(GUEST_SEED, start, count), "the guest's sectors are not in the image"
    # Untouched: the host's pattern before and after, the zeros further on.
    assert data[:start * SECTOR] == pattern(HOST_SEED, 0, start)
    assert data[(start + count) * SECTOR:2048 * SECTOR] == pattern(HOST_SEED, start + count, 2048 - start - count)
    assert data[2048 * SECTOR:(IMAGE_SECTORS - 64) * SECTOR].count(0) == (IMAGE_SECTORS - 64 - 2048) * SECTOR


def test_a_read_only_drive_refuses_writes_and_the_end_of_the_disk_is_a_wall(boot, tmp_path):
    image = make_image(tmp_path / "ro.img")
    before = open(image, "rb").read()
    vm = boot_with(boot, image, readonly=True)
    assert vm.shell_event("blk")["ro"] == 1
    ev, out = vm.shell(f"blk write 0 0 4 {GUEST_SEED}", expect_rc=EROFS)
    assert any("read-only" in line for line in out), out
    vm.shell(f"blk read 0 0 16 {HOST_SEED}")
    # Beyond the capacity: refused before the device sees it, whole or in part.
    for sector, count in ((IMAGE_SECTORS, 1), (IMAGE_SECTORS - 2, 4)):
        ev, out = vm.shell(f"blk read 0 {sector} {count} {HOST_SEED}", expect_rc=ERANGE)
        assert any("beyond the capacity" in line for line in out), out
    vm.shell(f"blk read 0 {IMAGE_SECTORS - 64} 64 {HOST_SEED}")
    st = vm.shell_event("blk")
    assert st["refused"] == 3 and st["writes"] == 0 and st["errors"] == 0, st
    assert st["bytes_read"] == (16 + 64) * SECTOR, st
    assert vm.poweroff() == EXIT_SUCCESS
    assert open(image, "rb").read() == before
