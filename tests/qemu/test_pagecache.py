"""The page cache (kernel/pagecache.c, docs/pagecache.md) over a read-only
virtio-blk disk.

The host writes a file whose 4 KiB pages each start with their own page
number, followed by seeded random bytes, and computes the checksum the
guest's `cache read` prints (FNV-1a over 64-bit little-endian words). The
guest reads through the cache twice (the second time all hits, the same
checksum), drops everything, and QEMU's own block statistics must agree with
the guest: no write ever, and exactly as many reads as the guest counted.
A writable disk is refused, reading past the end is -ERANGE, and with
`alloc` holding nearly all memory the cache lives on its own frames.
"""
import random
import struct

from blimp.units import PAGE
from blimp.vm import EXIT_SUCCESS

# Negative errno values as the guest's C library (newlib) numbers them.
ENOMEM, EBUSY, ENODEV, EINVAL, ERANGE = -12, -16, -19, -22, -34

SEED = 14
M64 = (1 << 64) - 1


def page_bytes(rng, page):
    return struct.pack("<Q", page) + rng.randbytes(PAGE - 8)


def make_file(path, pages, tail_sectors=0):
    """`pages` whole pages, then `tail_sectors` more 512-byte sectors (a
    short last page, which the guest pads with zeros); returns the bytes."""
    rng = random.Random(SEED)
    data = b"".join(page_bytes(rng, p) for p in range(pages))
    if tail_sectors:
        data += page_bytes(rng, pages)[:tail_sectors * 512]
    with open(path, "wb") as f:
        f.write(data)
    return data


def checksum(data, first, count):
    """What `cache read FIRST COUNT` prints for the file `data`."""
    h = 0xCBF29CE484222325
    for p in range(first, first + count):
        page = data[p * PAGE:(p + 1) * PAGE].ljust(PAGE, b"\0")
        for w in struct.unpack("<512Q", page):
            h = ((h ^ w) * 0x100000001B3) & M64
    return h


def boot_cache(boot, drives, append="vm.cache=0", mem="128M"):
    """Boot with one virtio-blk device per (id, image, readonly) in `drives`,
    blk0 first."""
    devices, extra = [], []
    for drive_id, image, ro in drives:
        devices.append(f"virtio-blk-pci,drive={drive_id}")
        extra += ["-drive", f"if=none,id={drive_id},file={image},format=raw" + (",readonly=on" if ro else "")]
    vm = boot(mem=mem, devices=devices, extra_args=extra, append=append)
    vm.wait_event("ready", timeout=30)
    return vm


def blockstats(vm, drive_id):
    for dev in vm.qmp.execute("query-blockstats"):
        if dev["device"] == drive_id:
            return dev["stats"]
    raise AssertionError(f"no drive {drive_id} in query-blockstats")


def cache_read(vm, first, count, expect_rc=0, timeout=60):
    ev, out = vm.shell(f"cache read {first} {count}", expect_rc=expect_rc, timeout=timeout)
    return vm.events_named("cache_read")[-1], out


def test_a_second_read_is_all_hits_and_dropping_costs_no_io(boot, tmp_path):
    pages, tail = 512, 3                 # 2 MiB and 1.5 KiB: the last page is short
    data = make_file(tmp_path / "file.img", pages, tail)
    n = pages + 1
    vm = boot_cache(boot, [("c0", tmp_path / "file.img", True)])
    att = vm.events_named("cache_attach")[-1]
    assert att["rc"] == 0 and att["file_pages"] == n and att["slots"] == n, att
    free_before = vm.shell_event("pfa")["free"]
    want = checksum(data, 0, n)

    first, _ = cache_read(vm, 0, n)
    assert (first["misses"], first["hits"], first["misplaced"]) == (n, 0, 0), first
    assert int(first["checksum"], 16) == want, first
    again, _ = cache_read(vm, 0, n)
    assert (again["misses"], again["hits"]) == (0, n), again
    assert again["checksum"] == first["checksum"]

    st = vm.shell_event("cache")
    assert st["check"] == "ok", st
    assert st["pages"] == n and st["read_ops"] == n and st["read_bytes"] == len(data), st
    assert vm.shell_event("pfa")["free"] == free_before - n   # a frame per page, nothing else
    qemu = blockstats(vm, "c0")
    assert qemu["wr_operations"] == 0 and qemu["wr_bytes"] == 0, qemu
    assert qemu["rd_operations"] == st["read_ops"] and qemu["rd_bytes"] == st["read_bytes"], (qemu, st)

    vm.shell("cache drop 100")
    drop = vm.events_named("cache_drop")[-1]
    assert drop["dropped"] == 100 and drop["pages"] == n - 100, drop
    vm.shell("cache drop")
    drop = vm.events_named("cache_drop")[-1]
    assert drop["dropped"] == n - 100 and drop["pages"] == 0, drop
    st = vm.shell_event("cache")
    assert st["pages"] == 0 and st["dropped"] == n, st
    pfa = vm.shell_event("pfa")
    assert pfa["free"] == free_before and pfa["check"] == "ok", pfa
    # Dropping read and wrote nothing: QEMU saw no request since.
    assert blockstats(vm, "c0")["rd_operations"] == qemu["rd_operations"]

    # Gone for real: the next read goes to the disk again, with the same bytes.
    third, _ = cache_read(vm, 0, n)
    assert (third["misses"], third["hits"]) == (n, 0) and third["checksum"] == first["checksum"], third
    qemu = blockstats(vm, "c0")
    assert qemu["rd_operations"] == 2 * n and qemu["wr_operations"] == 0, qemu
    assert vm.poweroff() == EXIT_SUCCESS


def test_reading_past_the_end_is_erange_and_reads_nothing_more(boot, tmp_path):
    pages = 64
    data = make_file(tmp_path / "file.img", pages)
    vm = boot_cache(boot, [("c0", tmp_path / "file.img", True)])
    ev, out = cache_read(vm, pages - 2, 5, expect_rc=ERANGE)
    assert ev["done"] == 2 and ev["misses"] == 2, ev
    assert int(ev["checksum"], 16) == checksum(data, pages - 2, 2)
    assert any(f"page {pages} is past the end of the file ({pages} pages)" in line for line in out), out
    ev, out = cache_read(vm, 1 << 40, 1, expect_rc=ERANGE)
    assert ev["done"] == 0 and ev["misses"] == 0, ev
    assert blockstats(vm, "c0")["rd_operations"] == 2


def test_a_writable_disk_is_refused_and_only_one_file_is_attached(boot, tmp_path):
    make_file(tmp_path / "rw.img", 16)
    data = make_file(tmp_path / "ro.img", 16)
    before = open(tmp_path / "rw.img", "rb").read()
    vm = boot_cache(boot, [("d0", tmp_path / "rw.img", False), ("c0", tmp_path / "ro.img", True)])
    att = vm.events_named("cache_attach")[-1]
    assert att["dev"] == 0 and att["rc"] == EINVAL, att
    assert any("blk0 is writable; the cache needs a read-only disk" in line for line in vm.lines), vm.tail()
    vm.shell("cache", expect_rc=ENODEV)
    assert vm.events_named("cache")[-1]["dev"] == -1
    cache_read(vm, 0, 1, expect_rc=ENODEV)

    vm.shell("cache attach 2", expect_rc=ENODEV)      # no such device
    vm.shell("cache attach 1")
    _, out = vm.shell("cache attach 1", expect_rc=EBUSY)
    assert any("attached already" in line for line in out), out
    ev, _ = cache_read(vm, 0, 16)
    assert ev["misses"] == 16 and int(ev["checksum"], 16) == checksum(data, 0, 16), ev
    assert blockstats(vm, "d0")["rd_operations"] == 0
    assert vm.poweroff() == EXIT_SUCCESS
    assert open(tmp_path / "rw.img", "rb").read() == before


def test_under_memory_pressure_the_cache_reuses_its_own_frames(boot, tmp_path):
    pages = 2048                          # 8 MiB, more than the memory left
    data = make_file(tmp_path / "file.img", pages)
    vm = boot_cache(boot, [("c0", tmp_path / "file.img", True)])
    cache_read(vm, 0, 256)
    free = vm.shell_event("pfa")["free"]
    left = 16
    vm.shell(f"alloc {(free - left) * PAGE // 1024}K", timeout=300)

    ev, _ = cache_read(vm, 256, 1024)
    assert ev["misses"] == 1024 and int(ev["checksum"], 16) == checksum(data, 256, 1024), ev
    st = vm.shell_event("cache")
    assert st["check"] == "ok", st
    assert st["pages"] <= 256 + left and st["reused"] >= 1024 - left, st
    assert st["nomem"] == 0 and st["read_errors"] == 0, st
    # What is still cached is still right (hits and misses mixed).
    ev, _ = cache_read(vm, 0, pages)
    assert int(ev["checksum"], 16) == checksum(data, 0, pages), ev

    # Nothing cached and no frame free: -ENOMEM, and nothing breaks.
    vm.shell("cache drop")
    rest = vm.shell_event("pfa")["free"]
    vm.shell(f"alloc {rest * PAGE // 1024}K", timeout=300)
    assert vm.shell_event("pfa")["free"] == 0
    _, out = cache_read(vm, 0, 1, expect_rc=ENOMEM)
    assert any("no free frame and nothing cached" in line for line in out), out
    assert vm.shell_event("cache")["nomem"] == 1

    vm.shell("free all", timeout=300)
    assert all(e["bad_frames"] == 0 for e in vm.events_named("free"))
    ev, _ = cache_read(vm, 0, 8)
    assert ev["rc"] == 0 and int(ev["checksum"], 16) == checksum(data, 0, 8), ev
    assert vm.shell_event("pfa")["check"] == "ok"
    assert vm.poweroff() == EXIT_SUCCESS


def test_pages_read_again_survive_a_scan_by_their_second_chance(boot, tmp_path):
    """With room for about 40 pages, 8 hot pages read between chunks of a
    scan stay cached: each hit sets their referenced bit, so the clock's hand
    clears it and passes on, and takes the scan's pages (read once, bit
    clear) instead. FIFO would have dropped the hot pages by the third chunk."""
    pages = 2048
    data = make_file(tmp_path / "file.img", pages)
    vm = boot_cache(boot, [("c0", tmp_path / "file.img", True)])
    free = vm.shell_event("pfa")["free"]
    vm.shell(f"alloc {(free - 40) * PAGE // 1024}K", timeout=300)
    cache_read(vm, 0, 8)
    next_page = 8
    for _ in range(20):
        scan, _ = cache_read(vm, next_page, 16)
        assert scan["misses"] == 16 and int(scan["checksum"], 16) == checksum(data, next_page, 16), scan
        next_page += 16
        hot, _ = cache_read(vm, 0, 8)
        assert hot["hits"] == 8, (hot, vm.shell_event("cache"))
    st = vm.shell_event("cache")
    assert st["check"] == "ok", st
    assert st["reused"] > 0 and st["pages"] <= 48, st   # the scan did run out of frames
    assert vm.poweroff() == EXIT_SUCCESS
