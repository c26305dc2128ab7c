"""hostswap: run a guest whose RAM the host kernel swaps — the baseline the
balloon is measured against (issue 16; docs/hostswap.md).

A guest's RAM can be a shared mapping of a host file
(`-object memory-backend-file,...,share=on -machine memory-backend=ram`).
Put QEMU in a memory cgroup whose limit is below what the guest touched and
the host kernel does what a hypervisor's swapper does: it writes guest pages
to that file, drops them, and reads them back when the guest touches them
(QEMU takes a major fault). Nothing in the guest knows.

What HostSwap sets up, and takes down again on leaving the `with`, even on
an error:

    build/hostswap/hs-PID-N.img   a sparse file on /work's real disk (ext4,
                                  never tmpfs: refused)
    /dev/loopK                    over it, --direct-io=on: its reads and
                                  writes go to the disk, not the page cache
    ext4 on the loop device, mounted at a temporary directory; the guest's
                                  RAM is the file `ram` in it
    /sys/fs/cgroup/memory/blimp-hostswap-PID-N   (and blkio/ of the same
                                  name, only to show that its counters miss
                                  the writes)

The loop device is there to count: every byte the host moves between guest
RAM and the disk, and nothing else, passes through it, so its
/sys/block/loopK/stat is the honest figure (docs/hostswap.md says why the
others are not: the flusher threads write dirty pages back, so neither
/proc/PID/io nor a v1 blkio cgroup charges those writes to QEMU, and
memory.stat's pgpgout counts pages leaving the cgroup, written or not).

    with HostSwap() as hs:
        vm = BlimpVM(mem="512M", ...)
        hs.prepare(vm)                 # file-backed RAM, QEMU started in the cgroup
        vm.start()
        before = hs.counters(vm.proc.pid)
        hs.set_limit(200 * MIB)        # returns when usage is under it
        print(diff(before, hs.counters(vm.proc.pid)))

QEMU enters the cgroup before it exists as QEMU: the launcher is a shell
that writes its own pid to the cgroups' `cgroup.procs` and then execs QEMU
in the same process, so every page QEMU touches is charged to the cgroup.

A harness killed before it could clean up leaves a state file
(build/hostswap/hs-PID-N.json); the next HostSwap removes what a dead
PID's file lists (cgroups, mount, loop device, image) before it starts.
"""
import errno
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

from .policy.backend import ram_rss
from .units import MIB
from .vm import BUILD

MEMCG = "/sys/fs/cgroup/memory"
BLKIO = "/sys/fs/cgroup/blkio"
STATE_DIR = os.path.join(BUILD, "hostswap")
PREFIX = "blimp-hostswap"
RAM_FILE = "ram"
SECTOR = 512
# memory.stat keys of the cgroup itself (not total_*) that the counters keep.
MEMCG_KEYS = ("pgmajfault", "pgpgin", "pgpgout", "pgfault", "workingset_refault_file", "cache",
              "rss", "dirty", "writeback", "mapped_file")
TOOLS = ("losetup", "mkfs.ext4", "mount", "umount", "fincore")


class Unavailable(Exception):
    """Host swapping cannot be set up here; the message says why (tests skip on it)."""


def unavailable_reason(directory=STATE_DIR):
    """Why HostSwap cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "not root: a memory cgroup and a loop device need root"
    if not os.path.exists(os.path.join(MEMCG, "cgroup.procs")):
        return f"no cgroup v1 memory controller at {MEMCG}"
    if not os.access(MEMCG, os.W_OK):
        return f"{MEMCG} is not writable"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"missing tools: {' '.join(missing)}"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control: loop devices are not available"
    os.makedirs(directory, exist_ok=True)
    kind = fs_type(directory)
    if kind in ("tmpfs", "ramfs", "overlay"):
        return f"{directory} is on {kind}, not a disk: host swapping would not reach a disk"
    return None


def fs_type(path):
    """The file system type of the mount holding `path` (/proc/self/mountinfo)."""
    path = os.path.realpath(path)
    best, kind = "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt = left.split()[4].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, right.split()[0]
    return kind


def _run(cmd, what):
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what}: `{' '.join(cmd)}` failed ({done.returncode}): {done.stdout.strip()}")
    return done.stdout


def _pid_alive(pid):
    """True while `pid` runs (a zombie has finished: its harness is gone)."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class HostSwap:
    """One memory cgroup, one loop device and file system for the guest's RAM.
    limit: the cgroup's memory.limit_in_bytes from the start (None: no limit)."""

    _count = 0

    def __init__(self, disk_mib=8192, limit=None, directory=STATE_DIR, readahead_kb=128):
        HostSwap._count += 1
        self.name = f"{PREFIX}-{os.getpid()}-{HostSwap._count}"
        self.directory = directory
        self.disk_mib = disk_mib
        self.initial_limit = limit
        self.readahead_kb = readahead_kb
        self.image = os.path.join(directory, f"hs-{os.getpid()}-{HostSwap._count}.img")
        self.state_file = self.image[:-4] + ".json"
        self.loop = None
        self.mnt = None
        self.memcg = os.path.join(MEMCG, self.name)
        self.blkio = os.path.join(BLKIO, self.name) if os.path.isdir(BLKIO) else None
        self.cgroups = []

    # ------------------------------------------------------------ set up
    def __enter__(self):
        reason = unavailable_reason(self.directory)
        if reason:
            raise Unavailable(reason)
        sweep_stale(self.directory)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _save_state(self):
        with open(self.state_file, "w") as f:
            json.dump({"pid": os.getpid(), "cgroups": self.cgroups, "mnt": self.mnt,
                       "loop": self.loop, "image": self.image}, f)

    def _setup(self):
        self._save_state()
        with open(self.image, "wb") as f:
            f.truncate(self.disk_mib * MIB)      # sparse: blocks are taken as pages are written
        self.loop = _run(["losetup", "--find", "--show", "--direct-io=on", self.image],
                         "attach the loop device").strip()
        self._save_state()
        if self.readahead_kb is not None:
            # A loop device inherits a large readahead (2560 KiB here); 128
            # KiB is the kernel's default for a disk (VM_READAHEAD_PAGES).
            # QEMU's guest RAM ignores it: QEMU advises MADV_HUGEPAGE, and a
            # fault on such a mapping reads 2 MiB folios (docs/hostswap.md).
            with open(f"/sys/block/{os.path.basename(self.loop)}/queue/read_ahead_kb", "w") as f:
                f.write(str(self.readahead_kb))
        # Inode tables and journal written now, not by a background thread
        # during a measurement; few inodes and a small journal, so that is
        # quick. The file system must be much larger than the guest's RAM:
        # ext4 writes back every delayed-allocation page of the file system
        # as soon as free space is under twice the dirty pages
        # (ext4_nonda_switch), which with a disk the size of the RAM wrote
        # 300 MiB of a guest's first touches within a second, no limit set.
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", "64", "-J", "size=16",
              "-E", "lazy_itable_init=0,lazy_journal_init=0", self.loop], "make the file system")
        self.mnt = tempfile.mkdtemp(prefix="blimp-hostswap-")
        self._save_state()
        _run(["mount", "-o", "noatime", self.loop, self.mnt], "mount the file system")
        for parent, path in ((MEMCG, self.memcg), (BLKIO, self.blkio)):
            if path:
                os.mkdir(path)
                self.cgroups.append(path)
                self._save_state()
        if self.initial_limit is not None:
            self.set_limit(self.initial_limit)

    @property
    def ram_path(self):
        return os.path.join(self.mnt, RAM_FILE)

    def ram_args(self, mem_bytes, ram=RAM_FILE):
        """QEMU arguments: guest RAM is `mem_bytes` of the shared file `ram`
        in the loop device's file system (one per guest when several
        share the cgroup: bench/policy.py)."""
        path = os.path.join(self.mnt, ram)
        return ["-object", f"memory-backend-file,id=ram,size={mem_bytes},mem-path={path},share=on",
                "-machine", "memory-backend=ram"]

    def launcher(self):
        """A command prefix that joins the cgroups, then execs the rest in
        the same process."""
        procs = [os.path.join(c, "cgroup.procs") for c in self.cgroups]
        script = "for f in " + " ".join(procs) + '; do echo $$ > "$f" || exit 1; done; exec "$@"'
        return ["/bin/sh", "-c", script, "hostswap"]

    def prepare(self, vm, file_backed=True, ram=RAM_FILE):
        """Make a BlimpVM (not started yet) start in this cgroup, with RAM
        from the shared file `ram` (its size parsed from vm.mem: "512M",
        "1G"), or, file_backed=False, QEMU's usual anonymous RAM: the host
        has no swap, so nothing of it can go to a disk and only the balloon
        can bring its usage down."""
        if file_backed:
            vm.extra_args += self.ram_args(parse_size(vm.mem), ram)
        vm.launcher = self.launcher()
        return vm

    # ------------------------------------------------------------ the limit
    def set_limit(self, limit, timeout=120):
        """Set memory.limit_in_bytes (None: unlimited). The kernel reclaims
        in this write until usage is under the limit, or answers EBUSY when it
        could not yet (dirty pages wait for the flusher): retried until
        `timeout`. Returns the seconds it took: the host's time to get under
        the budget."""
        value = "-1" if limit is None else str(int(limit))
        path = os.path.join(self.memcg, "memory.limit_in_bytes")
        t0 = time.monotonic()
        while True:
            try:
                with open(path, "w") as f:
                    f.write(value)
                return time.monotonic() - t0
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() - t0 > timeout:
                    raise RuntimeError(f"{path} <- {value}: {e} after {time.monotonic() - t0:.1f} s "
                                       f"(usage {self.usage() / MIB:.0f} MiB)")
                time.sleep(0.05)

    def usage(self):
        return int(_read(os.path.join(self.memcg, "memory.usage_in_bytes")))

    def reset_max_usage(self):
        with open(os.path.join(self.memcg, "memory.max_usage_in_bytes"), "w") as f:
            f.write("0")

    def guest_resident(self, pid, mem_bytes):
        """Bytes of guest RAM in host memory, file-backed or not: the Rss of
        QEMU's mapping of exactly mem_bytes (/proc/PID/smaps)."""
        found = ram_rss(pid, mem_bytes)
        if found is None:
            raise RuntimeError(f"QEMU {pid} has no mapping of {mem_bytes} bytes")
        return found

    def ram_resident(self, ram=RAM_FILE):
        """Bytes of the guest's RAM file `ram` in host memory (fincore): its
        pages in the page cache, mapped or not, all charged to the cgroup."""
        out = _run(["fincore", "--bytes", "--noheadings", "--output", "RES", os.path.join(self.mnt, ram)],
                   "fincore")
        return int(out.split()[0])

    # ------------------------------------------------------------ counters
    def counters(self, pid=None):
        """A snapshot of every candidate counter (docs/hostswap.md):
          disk_*       the loop device: what really went to and from the disk
          memcg_*      the cgroup's memory.stat (pages), usage, max_usage
          blkio_*      the blkio cgroup's bytes for the loop device
          proc_*       QEMU's /proc/PID: majflt (stat field 12), io's
                       read_bytes/write_bytes, RssAnon/RssFile
        """
        c = {"t": time.monotonic()}
        c.update(self.disk_counters())
        stat = dict(line.split() for line in _read(os.path.join(self.memcg, "memory.stat")).splitlines())
        for k in MEMCG_KEYS:
            if k in stat:
                c["memcg_" + k] = int(stat[k])
        c["memcg_usage"] = self.usage()
        c["memcg_max_usage"] = int(_read(os.path.join(self.memcg, "memory.max_usage_in_bytes")))
        c["memcg_failcnt"] = int(_read(os.path.join(self.memcg, "memory.failcnt")))
        if self.blkio:
            dev = _read(f"/sys/block/{os.path.basename(self.loop)}/dev").strip()
            c["blkio_read_bytes"] = c["blkio_write_bytes"] = 0
            for line in _read(os.path.join(self.blkio, "blkio.throttle.io_service_bytes")).splitlines():
                f = line.split()
                if len(f) == 3 and f[0] == dev and f[1] in ("Read", "Write"):
                    c[f"blkio_{f[1].lower()}_bytes"] = int(f[2])
        if pid:
            c.update(proc_counters(pid))
        return c

    def disk_counters(self):
        f = _read(f"/sys/block/{os.path.basename(self.loop)}/stat").split()
        # Documentation/block/stat.rst: sectors read is field 3, written field 7.
        return {"disk_read_bytes": int(f[2]) * SECTOR, "disk_write_bytes": int(f[6]) * SECTOR,
                "disk_reads": int(f[0]), "disk_writes": int(f[4]),
                "disk_discard_bytes": int(f[13]) * SECTOR if len(f) > 13 else 0}

    # ------------------------------------------------------------ take down
    def close(self):
        """Kill what is left in the cgroup (only this harness's processes
        are there), unmount, detach, remove the image, the mount point and
        the cgroups. Every step is tried even when one before it failed."""
        _teardown({"cgroups": self.cgroups, "mnt": self.mnt, "loop": self.loop, "image": self.image})
        self.cgroups, self.mnt, self.loop = [], None, None
        try:
            os.unlink(self.state_file)
        except FileNotFoundError:
            pass

    def __exit__(self, *exc):
        self.close()


def _read(path):
    with open(path) as f:
        return f.read()


def _teardown(state):
    problems = []
    for cg in state.get("cgroups") or []:
        # The cgroup was made for this harness, so what is in it is ours.
        for _ in range(100):
            try:
                pids = [int(p) for p in _read(os.path.join(cg, "cgroup.procs")).split()]
            except FileNotFoundError:
                pids = []
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
    mnt = state.get("mnt")
    if mnt and os.path.ismount(mnt):
        for attempt in range(50):
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        else:
            # Still busy (a file left open): detach it now, the kernel
            # finishes when the last user goes; the loop device (autoclear
            # once detached below) and the image go with it.
            if subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL).returncode != 0:
                problems.append(f"umount {mnt}")
    if mnt and os.path.isdir(mnt) and not os.path.ismount(mnt):
        try:
            os.rmdir(mnt)
        except OSError as e:
            problems.append(f"rmdir {mnt}: {e}")
    loop = state.get("loop")
    if loop:
        subprocess.run(["losetup", "-d", loop], stderr=subprocess.DEVNULL)
    image = state.get("image")
    if image:
        try:
            os.unlink(image)
        except FileNotFoundError:
            pass
    for cg in reversed(state.get("cgroups") or []):
        for attempt in range(100):
            try:
                os.rmdir(cg)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        else:
            problems.append(f"rmdir {cg}")
    if problems:
        raise RuntimeError("hostswap cleanup left: " + "; ".join(problems))


def sweep_stale(directory=STATE_DIR):
    """Take down what harnesses that died without cleaning up left behind."""
    for path in glob.glob(os.path.join(directory, "hs-*.json")):
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if _pid_alive(state.get("pid", 0)):
            continue
        try:
            _teardown(state)
        finally:
            os.unlink(path)


def proc_counters(pid):
    """QEMU's own view: major faults, its I/O accounting, its resident memory."""
    c = {}
    try:
        stat = _read(f"/proc/{pid}/stat")
        fields = stat[stat.rindex(")") + 2:].split()
        c["proc_majflt"] = int(fields[9])       # field 12 of the whole line
        c["proc_minflt"] = int(fields[7])       # field 10
        for line in _read(f"/proc/{pid}/io").splitlines():
            k, v = line.split(":")
            if k in ("read_bytes", "write_bytes", "cancelled_write_bytes"):
                c["proc_" + k] = int(v)
        for line in _read(f"/proc/{pid}/status").splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                c["proc_" + k] = int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return c


def diff(before, after):
    """after - before for every counter both have (t: seconds between them;
    usage-like gauges keep their later value under their own name)."""
    gauges = {"memcg_usage", "memcg_max_usage", "memcg_cache", "memcg_rss", "memcg_dirty",
              "memcg_writeback", "memcg_mapped_file", "proc_VmRSS", "proc_RssAnon", "proc_RssFile",
              "proc_RssShmem"}
    d = {}
    for k, v in after.items():
        if k in before:
            d[k] = v if k in gauges else v - before[k]
    return d


def parse_size(text):
    """'512M' / '1G' / '4096' (bytes) to bytes."""
    text = str(text).strip()
    mult = {"K": 1 << 10, "M": MIB, "G": 1 << 30}.get(text[-1:].upper())
    return int(text[:-1]) * mult if mult else int(text)


# ---------------------------------------------------------------- calibration
# A known amount, to see which counter tells the truth: a process in the
# cgroup writes every page of a WRITE_MIB shared file mapping under a limit
# of LIMIT_MIB, then reads every page again. At least WRITE - LIMIT MiB must
# have gone to the disk and come back from it.
_CALIBRATE = r"""
import mmap, os, sys
path, size = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, size)
m = mmap.mmap(fd, size, mmap.MAP_SHARED)
for off in range(0, size, 4096):
    m[off:off + 8] = (off // 4096 + 1).to_bytes(8, "little")
sys.stdout.write("written\n"); sys.stdout.flush()
sys.stdin.readline()
bad = 0
for off in range(0, size, 4096):
    if int.from_bytes(m[off:off + 8], "little") != off // 4096 + 1:
        bad += 1
sys.stdout.write(f"read {bad}\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def calibrate(write_mib=128, limit_mib=32):
    """Run the known amount and return {"expected": ..., "write": diff,
    "read": diff}: the counters' changes over the write pass and over the
    read pass."""
    with HostSwap(limit=limit_mib * MIB) as hs:
        cmd = hs.launcher() + ["/usr/bin/python3", "-c", _CALIBRATE, hs.ram_path, str(write_mib * MIB)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            c0 = hs.counters(proc.pid)
            if proc.stdout.readline().strip() != "written":
                raise RuntimeError("calibration writer failed")
            # Whatever is dirty and still resident is written back later: wait
            # for the flusher (dirty_expire_centisecs) to be out of the picture
            # by syncing the file system, so the write figure is complete.
            c1 = hs.counters(proc.pid)
            subprocess.run(["sync", "-f", hs.ram_path])
            c1s = hs.counters(proc.pid)
            # Drop what is resident so the read pass reads the whole file.
            proc.stdin.write("\n")
            proc.stdin.flush()
            line = proc.stdout.readline().split()
            if not line or line[0] != "read" or line[1] != "0":
                raise RuntimeError(f"calibration reader: {line}")
            c2 = hs.counters(proc.pid)
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"write_mib": write_mib, "limit_mib": limit_mib,
            "write": diff(c0, c1), "write_synced": diff(c0, c1s), "read": diff(c1s, c2)}
