#!/usr/bin/python3
"""Write the seed corpora of the host fuzz harnesses (tests/fuzz/corpus/<name>/).

Each seed is a small, meaningful program in the byte language its harness
reads (see the comment atop tests/fuzz/host/fuzz_<name>.c): a normal run,
each kind of lie, each kind of bad call. Deterministic: running it again
writes the same files. Regression inputs (regress-*) found by fuzzing are
kept as they were found and are not written here.

    /usr/bin/python3 tests/fuzz/gen_corpus.py [harness...]
"""
import os
import struct
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def write(harness, name, data):
    d = os.path.join(ROOT, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


# ---------------------------------------------------------------- virtqueue
class VQ:
    """Ops of fuzz_virtqueue.c: op byte % 10 selects, arguments follow."""

    def __init__(self, log2size, event_idx=False, indirect=False, max_ind=8):
        self.b = bytearray([log2size, (1 if event_idx else 0) | (2 if indirect else 0), max_ind - 2])

    def add(self, outs, ins):
        self.b += bytes([0, len(outs) | len(ins) << 2])
        for ln in outs + ins:
            self.b += bytes([ln]) if 16 <= ln < 128 else bytes([200]) + u32(ln)
        return self

    def pop(self):
        self.b += bytes([2])
        return self

    def complete(self, i, length):
        self.b += bytes([3, i]) + u32(length)
        return self

    def get(self, n=1):
        self.b += bytes([4 | (n - 1) << 4])
        return self

    def push(self, id_, length):
        self.b += bytes([5]) + (bytes([id_]) if id_ < 200 else bytes([200]) + u32(id_)) + u32(length)
        return self

    def jump(self, delta):
        self.b += bytes([6, 0, delta & 0xFF])
        return self

    def notify(self, set_event=None, no_notify=None):
        how = 0
        if set_event is not None:
            how |= 1 | set_event << 2  # avail_event = avail - set_event
        if no_notify is not None:
            how |= 2 | (4 if no_notify else 0)
        self.b += bytes([7, how])
        return self

    def cb(self, disable):
        self.b += bytes([8, 1 if disable else 0])
        return self

    def scribble(self, at, v, indirect_table=False):
        self.b += bytes([9, 1 if indirect_table else 0]) + u16(at) + bytes([v])
        return self


def gen_virtqueue():
    w = lambda n, q: write("virtqueue", n, q.b)
    w("honest-round-trip", VQ(3).add([64], [100]).pop().complete(0, 50).get().get().cb(False))
    q = VQ(4, event_idx=True, indirect=True)
    for _ in range(3):
        q.add([16, 32, 48], [64, 80, 96]).notify(set_event=1)
    w("indirect-event-idx", q.pop().pop().complete(1, 200).complete(0, 0).get(3).pop().complete(0, 240).get())
    w("full-queue-chains", VQ(2).add([16, 16], [64]).add([16], [64]).pop().complete(0, 64).get()
      .add([16], [64]).add([16, 16, 16, 16, 16], []))
    q = VQ(3)
    for _ in range(4):
        q.add([16], [64])
    w("out-of-order", q.pop().pop().pop().pop().complete(2, 1).complete(0, 64).complete(1, 0)
      .complete(0, 17).get(4).get())
    w("lie-id-beyond-queue", VQ(3).add([16], [64]).pop().push(9, 4).get().get().add([16], [16]))
    w("lie-id-twice", VQ(3).add([16], [64]).pop().complete(0, 8).get().push(0, 8).get().get())
    w("lie-id-not-head", VQ(3).add([16, 16], [64]).pop().push(1, 8).get())
    w("lie-length", VQ(3).add([16], [64]).pop().push(0, 0xFFFFFFFF).get())
    w("lie-length-readonly", VQ(3).add([16, 32], []).pop().push(0, 1).get())
    w("lie-used-idx-jump", VQ(3).add([16], [64]).add([16], [64]).pop().jump(5).get().get())
    w("lie-used-idx-back", VQ(3).add([16], [64]).pop().complete(0, 1).get().jump(-1).get())
    w("scribbled-ring", VQ(3, indirect=True).add([16], [64, 64]).pop().scribble(0, 0xFF)
      .scribble(130, 7).scribble(5, 0xAA, indirect_table=True).complete(0, 128).get()
      .add([16], [64]).get())
    w("interrupt-race", VQ(3, event_idx=True).cb(True).add([16], [64]).pop().complete(0, 4).cb(False)
      .get().cb(False))
    w("no-notify-flag", VQ(4).notify(no_notify=True).add([16], [16]).notify().notify(no_notify=False)
      .add([16], [16]).notify())
    q = VQ(8, event_idx=True, indirect=True, max_ind=4)
    for i in range(40):
        q.add([16 + i], [100] * (i % 4 + 1))
    for i in range(40):
        q.pop().complete(i % 3, 90)
    w("size-256-many", q.get(4).get(4).get(4).notify(set_event=3))
    w("size-1", VQ(0).add([16], []).add([16], []).pop().complete(0, 0).get().add([16, 16], []))


# ---------------------------------------------------------------- vq_packed
class VQP:
    """Ops of fuzz_vq_packed.c: op byte % 10 selects, arguments follow."""

    def __init__(self, size, event_idx=False, indirect=False, max_ind=8):
        self.b = bytearray([size - 1, (1 if event_idx else 0) | (2 if indirect else 0), max_ind - 2])

    def add(self, outs, ins):
        self.b += bytes([0, len(outs) | len(ins) << 2])
        for ln in outs + ins:
            self.b += bytes([ln]) if 16 <= ln < 128 else bytes([200]) + u32(ln)
        return self

    def pop(self):
        self.b += bytes([2])
        return self

    def complete(self, i, length):
        self.b += bytes([3, i]) + u32(length)
        return self

    def get(self, n=1):
        self.b += bytes([4 | (n - 1) << 4])
        return self

    def push(self, id_, length, flags=None, advance=1):
        """A used descriptor: honest flags unless `flags` (0..3: AVAIL | USED << 1) is given."""
        how = (advance - 1) << 4 | ((4 | flags) if flags is not None else 0)
        return self._raw(bytes([5, id_]) + u32(length) + bytes([how]))

    def event(self, flags, back=None, wrap=True, off=0):
        """Device event suppression: flags 0..3; `back` places the offset that
        many slots behind the driver's next one, else `off` is taken as is."""
        how = flags | (8 | back << 4 if back is not None else 0)
        return self._raw(bytes([6]) + u16(off | (0x8000 if wrap else 0)) + bytes([how]))

    def cb(self, disable):
        return self._raw(bytes([7, 1 if disable else 0]))

    def scribble(self, at, v, indirect_table=False):
        return self._raw(bytes([8, 1 if indirect_table else 0]) + u16(at) + bytes([v]))

    def _raw(self, b):
        self.b += b
        return self


def gen_vq_packed():
    w = lambda n, q: write("vq_packed", n, q.b)
    w("honest-round-trip", VQP(8).add([64], [100]).pop().complete(0, 50).get().get().cb(False))
    q = VQP(5)
    for i in range(12):  # odd size: chains straddle the end, both wrap counters flip
        q.add([16], [32] * (i % 3 + 1)).pop().complete(0, 8).get()
    w("odd-size-wraps", q)
    q = VQP(16, event_idx=True, indirect=True)
    for _ in range(3):
        q.add([16, 32, 48], [64, 80, 96]).event(2, back=1)
    w("indirect-event-idx", q.pop().pop().complete(1, 200).complete(0, 0).get(3).pop().complete(0, 240).get())
    q = VQP(8)
    for _ in range(4):
        q.add([16], [64])
    w("out-of-order", q.pop().pop().pop().pop().complete(2, 1).complete(0, 64).complete(1, 0)
      .complete(0, 17).get(4).get().add([16, 16, 16], [16]).pop().complete(0, 4).get())
    w("full-queue-chains", VQP(4).add([16, 16], [64]).add([16], [64]).pop().complete(0, 64).get()
      .add([16], [64]).add([16, 16, 16, 16, 16], []))
    w("lie-id-beyond-queue", VQP(8).add([16], [64]).pop().push(9, 4).get().get().add([16], [16]))
    w("lie-id-reuse", VQP(8).add([16], [64]).add([16], [64]).pop().complete(0, 8).get().push(0, 8).get().get())
    w("lie-length", VQP(8).add([16], [64]).pop().push(0, 0xFFFFFFFF).get())
    w("lie-length-readonly", VQP(8).add([16, 32], []).pop().push(0, 1).get())
    w("lie-wrap-used-not-avail", VQP(8).add([16], [64]).pop().push(0, 4, flags=2).get())
    w("lie-wrap-avail-not-used", VQP(8).add([16], [64]).pop().push(0, 4, flags=1).get().get())
    w("lie-used-nothing-in-flight", VQP(4).add([16], [64]).pop().complete(0, 4).get().push(0, 4).get())
    w("lie-skip-ahead", VQP(8).add([16], [64]).add([16], [64]).add([16], [64]).pop().push(0, 4, advance=3)
      .get().push(1, 4).get())
    w("lie-event-reserved", VQP(8).add([16], [16]).event(3))
    w("lie-event-desc-no-idx", VQP(8).add([16], [16]).event(2, back=1))
    w("lie-event-offset", VQP(8, event_idx=True).add([16], [16]).event(2, off=0x7F00))
    w("event-disable-enable", VQP(4, event_idx=True).event(1).add([16], [16]).event(0).add([16], [16])
      .event(2, back=0, wrap=False).pop().pop().complete(0, 1).complete(0, 1).get(2).add([16], [16])
      .event(2, back=1))
    w("interrupt-race", VQP(8, event_idx=True).cb(True).add([16], [64]).pop().complete(0, 4).cb(False)
      .get().cb(False))
    w("scribbled-ring", VQP(8, indirect=True).add([16], [64, 64]).pop().scribble(0, 0xFF)
      .scribble(15, 0x80).scribble(5, 0xAA, indirect_table=True).complete(0, 128).get().add([16], [64]).get())
    q = VQP(256, event_idx=True, indirect=True, max_ind=4)
    for i in range(40):
        q.add([16 + i], [100] * (i % 4 + 1))
    for i in range(40):
        q.pop().complete(i % 3, 90)
    w("size-256-many", q.get(4).get(4).get(4).event(2, back=3))
    w("size-1", VQP(1).add([16], []).add([16], []).pop().complete(0, 0).get().add([16, 16], []))


# ---------------------------------------------------------------- pfa
class PFA:
    """Ops of fuzz_pfa.c: op byte % 13 selects, arguments follow."""

    def __init__(self, frames_512=7, extra=0, ranges=(), opts=0, floor8=0):
        # First range: frames [pfn0, limit - tail); then up to two more.
        first = ranges[0] if ranges else (0, 0)
        self.b = bytearray([frames_512 - 1, extra, len(ranges[1:]) if ranges else 0])
        self.b += bytes([first[0], first[1]])
        for pfn, count in ranges[1:]:
            self.b += u16(pfn) + u16(count)
        self.b += bytes([opts, floor8])

    def alloc(self, order, no_oom=False):
        self.b += bytes([0, order | (0x80 if no_oom else 0)])
        return self

    def _give(self, op, start, how=6, extra=b"", flag=0):
        self.b += bytes([op, how]) + u16(start) + bytes(extra) + bytes([flag])
        return self

    def free(self, start, **kw):
        return self._give(2, start, **kw)

    def balloon_take(self, frames, max_out=32):
        self.b += bytes([3, 0]) + u16(frames) + bytes([max_out - 1])
        return self

    def balloon_return(self, start, **kw):
        return self._give(5, start, **kw)

    def split(self, start, how=6):
        self.b += bytes([6, how]) + u16(start)
        return self

    def report_take(self, min_order, max_out=32):
        self.b += bytes([7, min_order, max_out - 1])
        return self

    def report_done(self, start, reported, **kw):
        return self._give(8, start, flag=1 if reported else 0, **kw)

    def pool_alloc(self):
        self.b += bytes([9])
        return self

    def pool_free(self, start, **kw):
        return self._give(10, start, **kw)

    def reserve(self, pfn, count):
        self.b += bytes([11 | 0x10]) + u16(pfn) + bytes([200]) + u16(count)
        return self

    def add_range(self, pfn, count):
        self.b += bytes([11]) + u16(pfn) + bytes([200]) + u16(count)
        return self

    def floor(self, frames):
        self.b += bytes([12]) + u16(frames)
        return self


def gen_pfa():
    w = lambda n, p: write("pfa", n, p.b)
    p = PFA(8, 0, [(0, 0)], floor8=8)
    p.balloon_take(3000).balloon_return(0).balloon_return(1000).split(0).balloon_return(0)
    w("inflate-deflate", p.split(0).split(0).balloon_return(0).balloon_take(100, 4).alloc(3).balloon_take(60000))
    p = PFA(4, 100, [(1, 3)], opts=0x08)
    w("reporting", p.report_take(9).report_done(0, True).report_done(0, False).report_take(0, 4)
      .report_done(0, True).alloc(9).balloon_take(512).report_take(0).report_done(0, True))
    p = PFA(2, 0, [(0, 0)])
    p.alloc(0).free(0).free(0, how=6).alloc(2).free(0, how=0, extra=[1]).free(0, how=1, extra=[1])
    p.free(0, how=3, extra=[5]).free(0, how=5, extra=[1]).balloon_return(7).report_done(3, True)
    p.pool_free(0).split(0).balloon_take(1).split(0).balloon_return(0, how=0, extra=[2])
    w("bad-calls", p.balloon_return(0).balloon_return(0))
    p = PFA(8, 0, [(0, 0)], opts=0x02 | 0x20 | 0x04)
    p.pool_alloc().pool_alloc().pool_alloc().pool_free(0).pool_free(0)
    w("pool-and-oom", p.balloon_take(60000).alloc(10).alloc(9).alloc(12).alloc(0))
    p = PFA(8, 0, [(0, 0)], opts=0x30)
    w("oom-liar", p.balloon_take(60000).alloc(5).alloc(0, no_oom=True))
    p = PFA(6, 200, [(3, 7), (1000, 500), (2000, 1200)])  # the later two overlap the first
    p.reserve(1000, 500).reserve(2000, 3)
    w("holes-reserve-add", p.reserve(1500, 800).add_range(1600, 100).add_range(1500, 5).alloc(6)
      .reserve(0, 40).balloon_take(900).reserve(1000, 10).add_range(3000, 5))
    p = PFA(3, 0, [(0, 0)], floor8=255)
    w("reserve-floor", p.balloon_take(5000).floor(0).balloon_take(100).floor(1536).balloon_take(1)
      .balloon_return(0).balloon_take(1, 1))


# ---------------------------------------------------------------- swap_slots
class SWAP:
    """Ops of fuzz_swap_slots.c: op byte % 6 selects, arguments follow."""

    def __init__(self, slots):
        self.b = bytearray(u16(slots - 1))

    def alloc(self, want):
        self.b += bytes([0, want])
        return self

    def _run(self, op, start, how=9, extra=b""):
        self.b += bytes([op, how]) + u16(start) + bytes(extra)
        return self

    def free(self, start, **kw):
        return self._run(2, start, **kw)

    def written(self, start, **kw):
        return self._run(3, start, **kw)

    def invalidate(self, start, **kw):
        return self._run(4, start, **kw)

    def bad(self, start, **kw):
        return self._run(5, start, **kw)


def gen_swap_slots():
    w = lambda n, p: write("swap_slots", n, p.b)
    p = SWAP(1000)
    for i in range(8):
        p.alloc(32)
    w("write-path", p.written(0).written(32).invalidate(32).written(32).free(0).free(64)
      .alloc(64).written(256).free(256))
    p = SWAP(130)
    for i in range(20):
        p.alloc(7)
    w("full-then-free", p.alloc(1).free(77).alloc(7).alloc(7).free(0).free(7).alloc(64))
    p = SWAP(256).alloc(64).alloc(64).alloc(64).alloc(64)
    for i in range(0, 256, 2):
        p.free(i, how=1, extra=[i % 64])
    w("fragmented", p.alloc(8).alloc(8).alloc(64).alloc(2))
    p = SWAP(200).alloc(64).written(0).bad(5, how=0, extra=[3]).alloc(1).bad(64)
    w("bad-slots", p.alloc(64).alloc(64).alloc(64).alloc(64).free(5).bad(5).free(0))
    p = SWAP(300).alloc(10).written(0, how=0, extra=[5])
    p.free(20).free(0, how=3, extra=[2]).free(0, how=5, extra=[0]).free(0, how=4, extra=[1])
    p.free(0, how=4, extra=[0]).free(0, how=6, extra=[1]).written(0).invalidate(9).bad(299)
    w("bad-calls", p.alloc(0).alloc(65).free(0).free(0))
    p = SWAP(100).alloc(64).alloc(64).free(10, how=1, extra=[0])
    w("end-and-wrap", p.alloc(3).alloc(3).alloc(64))
    w("one-slot", SWAP(1).alloc(64).alloc(1).written(0).invalidate(0).bad(0).alloc(1))


# ---------------------------------------------------------------- elf
PT_LOAD, PT_INTERP, PT_NOTE = 1, 3, 4
PF_X, PF_W, PF_R = 1, 2, 4


def elf(phdrs, entry, data=b"", ident=b"\x7fELF\x02\x01\x01", etype=2, machine=62, phnum=None,
        phentsize=56, phoff=64, pad=0):
    """An ELF64 file: header, program headers at phoff, then `data`.
    phdrs: (type, flags, offset, vaddr, paddr, filesz, memsz) tuples."""
    h = bytearray(ident.ljust(16, b"\0"))
    h += struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, entry, phoff, 0, 0, 64, phentsize,
                     len(phdrs) if phnum is None else phnum, 64, 0, 0)
    body = bytearray(h.ljust(phoff, b"\0"))
    for t, fl, off, va, pa, fs, ms in phdrs:
        body += struct.pack("<IIQQQQQQ", t, fl, off, va, pa, fs, ms, 0x1000)
    return bytes(body + data + b"\0" * pad)


def blimp_shaped(entry_at=None):
    """blimp.elf's own program headers and entry (from build/blimp.elf when
    present), with each segment's file bytes cut to a few dozen so the seed
    stays small: offsets are renumbered to follow the headers. entry_at moves
    the entry point that many bytes into the code, for smaller files still."""
    path = os.path.join(ROOT, "..", "..", "build", "blimp.elf")
    try:
        raw = open(path, "rb").read()
        entry, phoff = struct.unpack_from("<QQ", raw, 24)
        phnum = struct.unpack_from("<H", raw, 56)[0]
        src = [struct.unpack_from("<IIQQQQQ", raw, phoff + 56 * i) for i in range(phnum)]
    except OSError:  # the layout of blimp.elf when this was written
        entry = 0x10261C
        src = [(1, PF_R | PF_X, 0x1000, 0x100000, 0x100000, 0x2C498, 0x2C498),
               (1, PF_R | PF_W, 0x2E000, 0x12D000, 0x12D000, 0x4D00, 0x9F3000),
               (4, PF_R, 0x2D348, 0x12C348, 0x12C348, 0x18, 0x18)]
    if entry_at is not None:
        entry = next(x[4] for x in src if x[0] == PT_LOAD and x[1] & PF_X) + entry_at
    off = 64 + 56 * len(src)
    out = []
    for t, fl, _, va, pa, fs, ms in src:
        keep = min(fs, 48)
        if t == PT_LOAD and fl & PF_X and pa <= entry < pa + fs:
            keep = min(fs, entry - pa + 16)  # the entry point stays in the file bytes
        out.append([t, fl, off, va, pa, keep, ms])
        off += keep
    return entry, out, off - 64 - 56 * len(src)


def gen_elf():
    w = lambda name, *a, **k: write("elf", name, elf(*a, **k))
    entry, ph, n = blimp_shaped()
    data = bytes(range(256)) * (n // 256 + 1)
    w("blimp-shaped", ph, entry, data[:n])
    entry, ph, n = blimp_shaped(entry_at=8)  # the variants: same layout, a few hundred bytes

    def variant(name, change, entry_=entry, **k):
        p = [list(x) for x in ph]
        change(p)
        w(name, [tuple(x) for x in p], entry_, data[:n], **k)

    def kind(i, t):
        return lambda p: p[i].__setitem__(0, t)

    def field(i, f, v):
        return lambda p: p[i].__setitem__(f, v)

    variant("interp", kind(2, PT_INTERP))
    variant("overlap", lambda p: (p[1].__setitem__(3, p[0][3] + 0x10), p[1].__setitem__(4, p[0][4] + 0x10)))
    variant("entry-outside", lambda p: None, entry_=0x4000)
    variant("entry-in-data", lambda p: None, entry_=ph[1][4] + 4)
    variant("entry-past-file-bytes", lambda p: None, entry_=ph[0][4] + ph[0][5])
    variant("vaddr-not-paddr", field(0, 3, 0xFFFFFFFF80100000))
    variant("filesz-over-memsz", field(1, 5, ph[1][6] + 1))
    variant("file-bytes-outside", field(1, 2, 0xFFFFFFFFFFFFFFF0))
    variant("wraps", lambda p: (p[1].__setitem__(3, 2**64 - 0x1000), p[1].__setitem__(4, 2**64 - 0x1000)))
    variant("page-end-wraps", lambda p: (p[1].__setitem__(3, 2**64 - 0x2000), p[1].__setitem__(4, 2**64 - 0x2000),
                                         p[1].__setitem__(6, 0x2000 - 100)))
    variant("zero-memsz-ignored", lambda p: p.append([PT_LOAD, PF_R, 0, 0, 0, 0, 0]))
    variant("unsorted", lambda p: p.reverse())
    variant("shared-page", lambda p: p.append([PT_LOAD, PF_R, p[1][2], p[0][3] + p[0][6],
                                               p[0][4] + p[0][6], 4, 8]))
    # Sixteen loads are fine; seventeen are refused.
    many = [(PT_LOAD, PF_R | PF_X, 0, 0x200000 + 0x1000 * i, 0x200000 + 0x1000 * i, 16, 0x1000)
            for i in range(17)]
    w("sixteen-loads", many[:16], 0x200004)
    w("seventeen-loads", many, 0x200004)
    w("phnum-xnum", ph, entry, data[:n], phnum=0xFFFF)
    w("phnum-zero", [], entry, data[:n])
    w("phentsize-32", ph, entry, data[:n], phentsize=32)
    write("elf", "phoff-outside", elf(ph, entry, data[:n])[:64 + 56 * len(ph) - 1])
    w("class32", ph, entry, data[:n], ident=b"\x7fELF\x01\x01\x01")
    w("big-endian", ph, entry, data[:n], ident=b"\x7fELF\x02\x02\x01")
    w("et-dyn", ph, entry, data[:n], etype=3)
    w("aarch64", ph, entry, data[:n], machine=183)
    write("elf", "short", b"\x7fELF\x02\x01\x01" + b"\0" * 20)


# ---------------------------------------------------------------- pci
def pci_input(cfg, sizing, gens=(0, 0), ops=(), map_fails=False):
    """fuzz_pci.c's input: BAR sizing answers, flags, generations, reads, config space."""
    b = bytearray()
    for v in sizing:
        b += u32(v)
    b += bytes([1 if map_fails else 0, len(gens)]) + bytes(gens)
    b += bytes([len(ops)]) + b"".join(bytes(o) for o in ops)
    return bytes(b + cfg)


def virtio_cfg(caps, bar1=0xFEBD1000, bar4=0xFE00000C, bar5=0, header=0, status=0x10, cap_ptr=None):
    """A virtio-balloon-pci (1af4:1045) configuration header shaped like QEMU's:
    BAR1 a 4 KiB MSI-X table, BAR4 a 16 KiB 64-bit BAR holding the virtio
    regions. caps: (offset, id, next, payload bytes after id/next)."""
    c = bytearray(256)
    struct.pack_into("<HHHH", c, 0, 0x1AF4, 0x1045, 0x0007, status)
    struct.pack_into("<I", c, 8, 0x00FF0001)  # class: other, revision 1
    c[0x0E] = header
    struct.pack_into("<IIIII", c, 0x14, bar1, 0, 0, bar4, bar5)
    c[0x34] = caps[0][0] if cap_ptr is None else cap_ptr
    c[0x3D] = 1
    for off, cid, nxt, payload in caps:
        c[off], c[off + 1] = cid, nxt
        c[off + 2:off + 2 + len(payload)] = payload
    return bytes(c)


def vcap(length, kind, bar, offset, size, extra=b""):
    return bytes([length, kind, bar, 0, 0, 0]) + u32(offset) + u32(size) + extra


QEMU_SIZING = [0, 0xFFFFF000, 0, 0, 0xFFFFC00C, 0xFFFFFFFF]


def qemu_caps(common=None, notify=None, isr=None, device=None):
    return [
        (0x98, 0x11, 0x84, u16(0x0002) + u32(0x1) + u32(0x801)),  # MSI-X: 3 entries in BAR1
        (0x84, 0x09, 0x70, vcap(0x14, 5, 0, 0, 0, u32(0))),         # PCI cfg access: not used
        (0x70, 0x09, 0x60, notify or vcap(0x14, 2, 4, 0x3000, 0x1000, u32(4))),
        (0x60, 0x09, 0x50, device or vcap(0x10, 4, 4, 0x2000, 0x1000)),
        (0x50, 0x09, 0x40, isr or vcap(0x10, 3, 4, 0x1000, 0x1000)),
        (0x40, 0x09, 0x00, common or vcap(0x10, 1, 4, 0x0000, 0x1000)),
    ]


def gen_pci():
    w = lambda name, *a, **k: write("pci", name, pci_input(*a, **k))
    reads = [(0, 4, 0), (4, 4, 0), (1, 7, 0), (8, 8, 0), (0, 4, 1), (2, 4, 1), (250, 10, 0)]
    w("qemu-balloon", virtio_cfg(qemu_caps()), QEMU_SIZING, (0, 0), reads)
    w("generation-moves-once", virtio_cfg(qemu_caps()), QEMU_SIZING, (0, 1, 1, 1), [(0, 8, 0)])
    w("generation-never-settles", virtio_cfg(qemu_caps()), QEMU_SIZING, tuple(range(40)), [(0, 8, 0)])
    small_dev = vcap(0x10, 4, 4, 0x2000, 8)
    w("device-config-8-bytes", virtio_cfg(qemu_caps(device=small_dev)), QEMU_SIZING, (5, 5),
      [(0, 8, 0), (4, 4, 0), (4, 5, 0), (8, 0, 0), (9, 0, 0), (4, 4, 1), (6, 4, 1)])
    w("region-outside-bar", virtio_cfg(qemu_caps(common=vcap(0x10, 1, 4, 0x3000, 0x2000))), QEMU_SIZING)
    w("region-offset-wraps", virtio_cfg(qemu_caps(common=vcap(0x10, 1, 4, 0xFFFFF000, 0x2000))), QEMU_SIZING)
    w("common-too-short", virtio_cfg(qemu_caps(common=vcap(0x10, 1, 4, 0, 0x20))), QEMU_SIZING)
    w("notify-cap-short", virtio_cfg(qemu_caps(notify=vcap(0x10, 2, 4, 0x3000, 0x1000))), QEMU_SIZING)
    w("cap-len-past-header", virtio_cfg(qemu_caps(common=vcap(0xF0, 1, 4, 0, 0x1000))), QEMU_SIZING)
    reserved = [(0x40, 0x09, 0x44, vcap(0x10, 1, 7, 0, 0x1000))] + [
        (0x44 + 0x10 * i, cid, (0x54 + 0x10 * i) if i < 3 else 0, pl)
        for i, (_, cid, _, pl) in enumerate(qemu_caps()[2:])]
    w("reserved-bar-ignored", virtio_cfg(reserved), QEMU_SIZING)
    w("io-bar", virtio_cfg(qemu_caps(), bar4=0xC001, bar5=0), [0, 0xFFFFF000, 0, 0, 0xFFFFFFC1, 0])
    w("unimplemented-bars", virtio_cfg(qemu_caps()), [0] * 6)
    w("bar-size-not-power-of-2", virtio_cfg(qemu_caps()), [0, 0xFFFFF000, 0, 0, 0xFFFF500C, 0xFFFFFFFF])
    w("64-bit-bar-in-last-slot", virtio_cfg(qemu_caps(), bar4=0, bar5=0xFE00000C), [0, 0xFFFFF000, 0, 0, 0, 0xFFFFC00C])
    w("map-fails", virtio_cfg(qemu_caps()), QEMU_SIZING, map_fails=True)
    w("no-capability-list", virtio_cfg(qemu_caps(), status=0), QEMU_SIZING)
    w("cap-pointer-misaligned", virtio_cfg(qemu_caps(), cap_ptr=0x41), QEMU_SIZING)
    w("cap-pointer-in-header", virtio_cfg(qemu_caps(), cap_ptr=0x10), QEMU_SIZING)
    loop = qemu_caps()
    loop[-1] = (0x40, 0x11, 0x98, loop[-1][3])  # the last points back to the first
    w("msix-cap-loop", virtio_cfg(loop), QEMU_SIZING)
    w("bridge-header", virtio_cfg(qemu_caps(), header=1), QEMU_SIZING)


# ---------------------------------------------------------------- acpi
# QEMU 7.2's tables (SeaBIOS, -m 128M), dumped with QMP pmemsave; the same
# bytes as tests/unit/test_acpi.c.
QEMU_Q35_FADT = bytes.fromhex(
        "46414350f40000000328424f4348532042585043202020200100000042585043"
        "010000000000fe074000fe0701000900b2000000020300000006000000000000"
        "0406000000000000000000000806000020060000000000000402000410000000"
        "ff0fff0f000000000000000032020000a584000001080000f90c000000000000"
        "0f00000000000000000000004000fe0700000000012000000006000000000000"
        "0000000000000000000000000110000004060000000000000000000000000000"
        "0000000000000000000000000000000001200000080600000000000001800000"
        "2006000000000000000000000000000000000000")
QEMU_PC_FADT = bytes.fromhex(
        "464143507400000001f1424f4348532042585043202020200100000042585043"
        "010000000000fe074000fe0701000900b2000000f1f000000006000000000000"
        "04060000000000000000000008060000e0af0000000000000402000404000000"
        "ff0fff0f000000000000000032000000a5800000")
QEMU_SLEEP_STATES = bytes.fromhex(  # Name(_S3..), Name(_S4..), Name(_S5..), Scope...
        "085f53335f12060401010000085f53345f1208040a020a020000085f53355f12"
        "060400000000103b5c2e5f5342")



def qemu_hpet_table():
    """QEMU 7.2's HPET table (build_hpet: block id 0x8086a201, registers at
    0xfed00000, 56 bytes), as tests/unit/test_acpi.c builds it."""
    t = bytearray(56)
    t[0:4] = b"HPET"
    t[4] = 56
    t[8] = 1
    t[36:40] = (0x8086a201).to_bytes(4, "little")
    t[44:52] = (0xfed00000).to_bytes(8, "little")
    t[9] = (-sum(t)) & 0xff
    return bytes(t)


def gen_acpi():
    """Mode byte (fuzz_acpi.c): 0 AML, 1 FADT as is, 3 FADT with header fixed,
    4 HPET table as is, 6 HPET table with header fixed."""
    w = lambda name, mode, data: write("acpi", name, bytes([mode]) + data)
    w("q35-fadt", 1, QEMU_Q35_FADT)
    w("pc-fadt", 1, QEMU_PC_FADT)
    w("q35-fadt-cut-before-x", 3, QEMU_Q35_FADT[:140])
    memspace = bytearray(QEMU_Q35_FADT)
    memspace[148] = 0                      # X_PM1a_EVT_BLK in memory space
    w("q35-fadt-x-in-memory", 3, bytes(memspace))
    reduced = bytearray(QEMU_PC_FADT)
    reduced[114] |= 0x10                   # HW_REDUCED_ACPI
    w("pc-fadt-hw-reduced", 3, bytes(reduced))
    w("qemu-sleep-states", 0, QEMU_SLEEP_STATES)
    w("s5-root-byte-word", 0, b"\x08\\_S5_\x12\x07\x02\x0a\x05\x0b\x01\x00")
    w("s5-two-byte-pkglength", 0, b"\x08_S5_\x12\x40\x01\x02\x0e\x03" + bytes(7) + b"\x00" + b"\xa3" * 3)
    w("s5-lookalike-first", 0, b"\x08_S5_\x0a\x33" + QEMU_SLEEP_STATES)
    w("s5-runs-past-end", 0, b"\x08_S5_\x12\x3f\x04\x00\x00")
    ext = bytearray(QEMU_Q35_FADT)
    ext[113] |= 1                          # TMR_VAL_EXT: a 32-bit PM timer
    w("q35-fadt-pm-timer-32", 3, bytes(ext))
    hpet = qemu_hpet_table()
    w("qemu-hpet", 4, hpet)
    unaligned = bytearray(hpet)
    unaligned[44] = 0x10                   # registers not 1 KiB aligned
    w("hpet-unaligned", 6, bytes(unaligned))


GENERATORS = {"virtqueue": gen_virtqueue, "vq_packed": gen_vq_packed, "pfa": gen_pfa, "elf": gen_elf, "pci": gen_pci,
              "swap_slots": gen_swap_slots, "acpi": gen_acpi}

if __name__ == "__main__":
    for name in sys.argv[1:] or GENERATORS:
        GENERATORS[name]()
