"""guests: the guests the bench compares, booted the same way on the same QEMU.

Each guest knows how to boot with a given memory size and balloon device,
and how to touch and free memory inside itself. blimp does it with its shell
(`alloc`, `free all`); the Linux guest (bench/linux, Debian's cloud kernel
and busybox) with its init's `touch N`, a process that touches N MiB and
exits. Both speak the same event lines, so blimp.vm drives both. (The
package is on sys.path by bench.py, which imports this.)
"""
import json
import os
import re

from blimp.units import MIB, PAGE
from blimp.vm import ROOT, BlimpVM

BALLOON = "virtio-balloon-pci,id=bal0"
TOUCHMEM_LINE = re.compile(r"^touchmem: touched and freed (\d+) MiB in (\d+) ms$")
LINUX_GUEST_JSON = os.path.join(ROOT, "build", "bench", "linux", "guest.json")


def balloon_device(reporting):
    return BALLOON + (",free-page-reporting=on" if reporting else "")


class Guest:
    """One guest kind. `name` is what the table calls it."""
    name = "?"
    family = "?"          # "blimp" or "linux": the table's two columns

    def vm(self, mem_mib, reporting, trace_log=None, extra_args=(), append=""):
        """A BlimpVM, not started; extra_args go to QEMU as they are (the
        squeeze's swap disk, bench/squeeze.py), `append` to the kernel's
        command line (blimp's `vm.swap=0`)."""
        raise NotImplementedError

    def first_touch_ms(self, vm, mib):
        """Touch mib MiB of fresh memory, a page at a time, and free it: the
        guest's own milliseconds for it (every page a first-touch fault)."""
        raise NotImplementedError

    def touch_and_free(self, vm, mib):
        raise NotImplementedError

    def touch(self, vm, mib):
        """Touch mib MiB and keep it; returns a function that frees it."""
        raise NotImplementedError


def _trace_args(trace_log):
    # Trace points go to a file, with wall-clock stamps, and stay off until
    # the bench turns some on over QMP for one step.
    return ["-msg", "timestamp=on", "-D", trace_log] if trace_log else []


class Blimp(Guest):
    family = "blimp"

    def __init__(self, boot="pvh"):
        self.boot = boot
        self.name = f"blimp-{boot}"

    def vm(self, mem_mib, reporting, trace_log=None, extra_args=(), append=""):
        base = "" if reporting else "balloon.no_reporting"
        return BlimpVM(mem=f"{mem_mib}M", boot=self.boot, devices=[balloon_device(reporting)],
                       append=" ".join(a for a in (base, append) if a),
                       extra_args=_trace_args(trace_log) + list(extra_args), name=self.name)

    def touch_and_free(self, vm, mib):
        self.touch(vm, mib)()

    def touch(self, vm, mib):
        vm.shell(f"alloc {mib}M", timeout=900)
        return lambda: vm.shell("free all", timeout=900)

    def first_touch_ms(self, vm, mib):
        """A workload on demand-paged memory that writes every page once (its
        fill: a minor fault, a zeroed frame, 8 words checked and written) and
        then does one access: workload_done's `ms` (guest clock, start to
        end, the region's frames freed included)."""
        vm.shell(f"run ft size={mib}M pattern=seq count=1", timeout=60)
        done = vm.wait_event("workload_done", timeout=900, where={"name": "ft"})
        if done["minflt"] != mib * MIB // PAGE:
            vm.fail(f"first touch of {mib} MiB: {done['minflt']} minor faults")
        return done["ms"]

    def idle_used_bytes(self, vm):
        """Guest memory blimp itself holds at idle: usable RAM not free in the allocator."""
        ready = vm.events_named("ready")[0]
        return ready["mem_usable"] - vm.shell_event("pfa")["free"] * PAGE


class Linux(Guest):
    family = "linux"

    def __init__(self, init_on_alloc=None):
        self.init_on_alloc = init_on_alloc
        self.name = "linux" if init_on_alloc is None else f"linux-init_on_alloc={init_on_alloc}"
        with open(LINUX_GUEST_JSON) as f:
            self.info = json.load(f)

    def vm(self, mem_mib, reporting, trace_log=None, extra_args=(), append=""):
        append = " ".join(a for a in (self.info["append"], append) if a)
        if self.init_on_alloc is not None:
            append += f" init_on_alloc={self.init_on_alloc}"
        return BlimpVM(mem=f"{mem_mib}M", kernel=self.info["kernel"], append=append,
                       devices=[balloon_device(reporting)],
                       extra_args=["-initrd", self.info["initrd"]] + _trace_args(trace_log)
                       + list(extra_args),
                       name=self.name)

    def touch_and_free(self, vm, mib):
        vm.shell(f"touch {mib}", timeout=900)

    def first_touch_ms(self, vm, mib):
        """touchmem's own time (mmap, one byte written per page, munmap), from
        its line "touchmem: touched and freed N MiB in T ms"."""
        _, out = vm.shell(f"touch {mib}", timeout=900)
        for line in out:
            m = TOUCHMEM_LINE.match(line)
            if m and int(m.group(1)) == mib:
                return int(m.group(2))
        vm.fail(f"touch {mib}: no touchmem line with its time")

    def idle_used_bytes(self, vm):
        ready = vm.events_named("ready")[0]
        _, out = vm.shell("meminfo")
        free = [int(line.split()[1]) * 1024 for line in out if line.startswith("MemFree:")][0]
        return ready["mem_usable"] - free
