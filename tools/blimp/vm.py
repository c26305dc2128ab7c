"""vm: boot blimp under QEMU and talk to it — serial lines, events, shell
commands, QMP, and the QEMU process's memory.

Used by the tests (tests/qemu), the scenario runner and the benchmarks, so
there is one way to start a guest. A guest prints human text and event lines
(`@ev {json}`, see docs/events.md) on COM1, which QEMU connects to this
process's pipe; a reader thread collects them so nothing is lost while the
caller waits for something else.

    with BlimpVM(mem="512M", machine="pc", boot="uefi") as vm:
        vm.wait_event("ready")
        vm.shell("mem")
        print(vm.qmp.execute("query-balloon"), vm.rss())

Every QEMU started here ends when its harness does, however that ends (see
"Ending QEMU" below): close() in a `with` or `finally`, every guest still
open closed at interpreter exit, SIGTERM turned into the KeyboardInterrupt
that Ctrl-C raises, and the kernel killing QEMU when the thread that
started it dies (SIGKILL included).

machine is -machine's value: "q35", "pc", or "microvm" with its options
after a comma ("microvm,pit=off"). microvm takes isa-debug-exit like the
others, but has no PCI (its devices are virtio-mmio ones, such as
"virtio-balloon-device") and no UEFI firmware: PVH only.

Which QEMU: qemu_binary(), the one switch for every tool and test —
$BLIMP_QEMU if set (e.g. build/qemu10/qemu-system-x86_64, from `make
qemu10`), else the system's qemu-system-x86_64. qemu_version() says which
version that is, for the tests whose expectations differ by version.

debug_exit=False leaves out the isa-debug-exit device, as libvirt does:
`poweroff` then ends QEMU through ACPI S5, with status 0 instead of 33.

A guest of any size: mem above 16 GiB ("64G", "1T") gets its RAM from
`-object memory-backend-ram,...,reserve=off` and the machine's
memory-backend option, added here (big_memory_args()): the host's heuristic
overcommit refuses a plain `-m 40G` on a 24 GiB host, while an unreserved
backend is only address space until the guest touches it. Past 1 TiB of
guest physical addresses the CPU's phys-bits is raised too (qemu64 has 40).

QEMU's own stderr is kept apart from the console, in stderr_lines
(qemu_stderr()), and shown in every GuestError.

With serial="socket" COM1 is a unix socket this process listens on instead
of QEMU's stdout, and pause_reading()/resume_reading() stop and restart the
reader, to play a host that reads the console only now and then (QEMU's
socket chardev does not block the guest when the socket is full; a stdout
pipe would block QEMU itself).
"""
import atexit
import ctypes
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from . import qmp as qmp_client
from .events import EventFormatError, parse_event
from .units import MIB

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
KERNEL = os.path.join(BUILD, "blimp.elf")
ESP = os.path.join(BUILD, "esp")
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"

# isa-debug-exit statuses (arch/x86_64/qemu_exit.h)
EXIT_SUCCESS = 33
EXIT_FAILURE = 35
EXIT_PANIC = 37
EXIT_EXCEPTION = 39
EXIT_BOOT_FAILED = 41


QEMU_ENV = "BLIMP_QEMU"


def qemu_binary():
    """The QEMU every guest here runs on: $BLIMP_QEMU, else the system's.
    A path is made absolute, so a tool that changes folder still finds it."""
    binary = os.environ.get(QEMU_ENV) or "qemu-system-x86_64"
    return os.path.abspath(binary) if os.sep in binary else binary


@functools.lru_cache(maxsize=None)
def _version_of(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    except OSError as e:
        raise RuntimeError(f"{QEMU_ENV}={binary!r} cannot be run: {e}") from e
    first = out.splitlines()[0] if out else ""
    if "version " not in first:
        raise RuntimeError(f"{binary} --version printed {out!r}: no version in it")
    text = first.split("version ")[1].split()[0]
    try:
        return tuple(int(x) for x in text.split(".")[:3]), first
    except ValueError:
        raise RuntimeError(f"{binary} --version: {text!r} is not a version number") from None


@functools.lru_cache(maxsize=None)
def _device_help(binary, device):
    return subprocess.run([binary, "-device", f"{device},help"], capture_output=True, text=True,
                          timeout=60).stdout


def qemu_device_has(device, prop):
    """Whether qemu_binary()'s `device` has property `prop` (-device DEV,help):
    e.g. virtio-balloon-pci's `vectors` and `ioeventfd` exist on 10.0, not 7.2."""
    return any(line.split("=", 1)[0].strip() == prop
               for line in _device_help(qemu_binary(), device).splitlines())


def qemu_version():
    """(major, minor, micro) of qemu_binary(), e.g. (7, 2, 0) or (10, 0, 2)."""
    return _version_of(qemu_binary())[0]


def qemu_version_line():
    """QEMU's own first line of --version (for reports and the bench)."""
    return _version_of(qemu_binary())[1]


# ------------------------------------------------------------- guest size
BIG_MEMORY = 16 << 30     # above this, RAM comes from an unreserved backend
QEMU64_PHYS_BITS = 40     # what QEMU's qemu64 CPU model says it has
_SIZE_SUFFIX = {"": 20, "K": 10, "M": 20, "G": 30, "T": 40}  # -m's, MiB without one


def mem_bytes(mem):
    """-m's value ("256M", "1.5G", "1T", "2048": MiB) in bytes; ValueError if malformed."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", str(mem).strip().upper())
    if not m:
        raise ValueError(f"guest memory {mem!r}: expected a number with K, M, G or T")
    return int(float(m.group(1)) * (1 << _SIZE_SUFFIX[m.group(2)]))


def phys_bits_needed(ram, machine="q35", amd=True):
    """Guest physical address bits QEMU needs for `ram` bytes on pc/q35.
    QEMU keeps 2 GiB (q35) or 3 GiB (pc) below 4 GiB once RAM passes what
    fits there; the rest starts at 4 GiB, or at 1 TiB if it would cross the
    AMD HyperTransport hole at 1012 GiB with the 64-bit PCI hole above it
    (32 GiB on q35; qemu64 is an AMD CPU; amd=False for an Intel one). A
    1 TiB guest thus reaches 2078 GiB: 42 bits (1058 GiB, 41, as Intel)."""
    low = (2 << 30) if machine.split(",")[0] == "q35" else (3 << 30)
    if ram <= low:
        return QEMU64_PHYS_BITS
    above, hole64 = ram - low, 32 << 30
    start = 4 << 30
    if amd and start + above + hole64 > 1012 << 30:
        start = 1 << 40
    return max(QEMU64_PHYS_BITS, (start + above + hole64 - 1).bit_length())


def big_memory_args(mem, machine, extra_args=()):
    """(machine, extra QEMU arguments) for a guest of `mem`: unchanged at
    16 GiB or less, when the caller chose its own backend, or when `mem` is
    a form not read here (QEMU judges it); no -cpu if the caller gave one."""
    try:
        ram = mem_bytes(mem)
    except ValueError:
        return machine, []
    if ram <= BIG_MEMORY or "memory-backend" in machine or \
            any("memory-backend" in a for a in extra_args):
        return machine, []
    args = ["-object", f"memory-backend-ram,id=blimp-ram,size={ram},reserve=off"]
    bits = phys_bits_needed(ram, machine)
    if bits > QEMU64_PHYS_BITS and "-cpu" not in extra_args:
        args += ["-cpu", f"qemu64,phys-bits={bits}"]
    return machine + ",memory-backend=blimp-ram", args


def flat_cpu_args(mem, machine="q35"):
    """-cpu for a guest whose RAM above 4 GiB stays in one piece at any
    size: qemu64 calling itself Intel, so QEMU does not move that RAM above
    the AMD HyperTransport hole (to 1 TiB, leaving a 1 TiB gap a guest's
    per-frame metadata may cover), and the phys-bits that layout needs."""
    bits = phys_bits_needed(mem_bytes(mem), machine, amd=False)
    return ["-cpu", f"qemu64,vendor=GenuineIntel,phys-bits={bits}"]


def host_room(mem, touched=0, margin=2 << 30):
    """None if this host can hold a guest of `mem` whose workload touches
    `touched` bytes, else the reason it cannot. QEMU's resident memory after
    blimp's boot is about 85 MiB plus 0.82 MiB per GiB of guest (the
    allocator's metadata and page tables, written at boot: 926 MiB at 1 TiB
    on today's kernel); counted as 256 MiB plus 1 MiB per GiB, plus what the
    workload touches, plus `margin` for the others on a shared machine,
    against the host's MemAvailable."""
    need = (256 << 20) + (mem_bytes(mem) >> 10) + touched + margin
    with open("/proc/meminfo") as f:
        avail = [int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:")]
    if not avail:
        return "no MemAvailable in /proc/meminfo"
    if avail[0] < need:
        return (f"a {mem} guest needs about {need >> 20} MiB of host memory, "
                f"MemAvailable is {avail[0] >> 20} MiB")
    return None


class GuestError(Exception):
    """The guest did not do what was expected; the message carries the serial tail."""


# ------------------------------------------------------------- ending QEMU
# A QEMU left behind holds its guest's RAM (a GiB, for some tests) until
# someone notices. So each way a harness can end ends its QEMUs too:
#   - returns or raises: close() from `with` / `finally` / pytest fixtures;
#   - any exit of the interpreter, Ctrl-C included: the atexit hook below
#     closes every guest not closed yet;
#   - SIGTERM: turned into KeyboardInterrupt (if nobody else handles it), so
#     the two cases above run;
#   - SIGKILL, or a crash of Python itself: QEMU is started with
#     PR_SET_PDEATHSIG, so the kernel kills it when the thread that started
#     it ends. (Hence start() belongs in a thread that outlives the guest:
#     every harness here starts guests from its main thread.)
_open_vms = set()
_open_lock = threading.Lock()
PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork


def _die_with_parent(parent):
    """Run in the child between fork and exec (Popen's preexec_fn)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the request was in place


def _close_all():
    with _open_lock:
        vms = list(_open_vms)
    for vm in vms:
        vm.close()


atexit.register(_close_all)


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")


def _handle_sigterm():
    # Only where Python allows it (the main thread) and only if the program
    # has not chosen its own way of handling SIGTERM.
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


class BlimpVM:
    def __init__(self, mem="256M", machine="q35", boot="pvh", append="", devices=(),
                 extra_args=(), smp=1, kernel=KERNEL, qmp=True, name="blimp", serial="stdio",
                 debug_exit=True, launcher=()):
        if serial not in ("stdio", "socket"):
            raise ValueError(f"unknown serial kind {serial!r} (stdio or socket)")
        if machine.split(",")[0] == "microvm" and boot != "pvh":
            raise ValueError("microvm boots by PVH only (no UEFI firmware)")
        self.serial = serial
        self.mem, self.machine, self.boot, self.append = mem, machine, boot, append
        self.devices, self.extra_args, self.smp = list(devices), list(extra_args), smp
        self.kernel, self.use_qmp, self.name = kernel, qmp, name
        # False: no isa-debug-exit, as under libvirt; blimp then switches
        # off through ACPI S5 and QEMU exits with status 0.
        self.debug_exit = debug_exit
        # A command QEMU's own is appended to, which must exec it in the same
        # process (the pid stays QEMU's): blimp.hostswap's way into a cgroup.
        self.launcher = list(launcher)
        self.tmp = tempfile.mkdtemp(prefix="blimp-")
        self.lines = []          # every serial line, in order
        self.stderr_lines = []   # every line QEMU wrote to its stderr, in order
        self.events = []         # every event, in order
        self.consumed = 0        # events before this index were returned by wait_event
        self.cond = threading.Condition()
        self.proc = None
        self.qmp = None
        self.start_time = None
        self.bad_lines = []
        self.reading = threading.Event()  # cleared by pause_reading()
        self.reading.set()
        self.serial_sock = None

    # ------------------------------------------------------------- starting
    def command_line(self):
        machine, big = big_memory_args(self.mem, self.machine, self.extra_args)
        cmd = [qemu_binary(), "-machine", machine, "-nodefaults", "-display", "none",
               "-no-reboot", "-m", self.mem, "-smp", str(self.smp)] + big
        if self.debug_exit:
            cmd += ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
        if self.serial == "socket":
            # QEMU connects to our socket as a client (server=off), at start.
            cmd += ["-chardev", f"socket,id=ser0,path={self.serial_path},server=off",
                    "-serial", "chardev:ser0"]
        else:
            cmd += ["-serial", "stdio"]
        if self.use_qmp:
            cmd += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if self.boot == "pvh":
            cmd += ["-kernel", self.kernel]
            if self.append:
                cmd += ["-append", self.append]
        elif self.boot == "uefi":
            cmd += self._uefi_args()
        else:
            raise ValueError(f"unknown boot path {self.boot!r} (pvh or uefi)")
        for dev in self.devices:
            cmd += ["-device", dev]
        return self.launcher + cmd + self.extra_args

    def _uefi_args(self):
        """A private ESP (loader, kernel, cmdline.txt) and VARS copy per guest."""
        loader = os.path.join(ESP, "EFI", "BOOT", "BOOTX64.EFI")
        if not os.path.exists(loader):
            raise GuestError(f"{loader} is missing: run make")
        esp = os.path.join(self.tmp, "esp")
        os.makedirs(os.path.join(esp, "EFI", "BOOT"))
        shutil.copy(loader, os.path.join(esp, "EFI", "BOOT", "BOOTX64.EFI"))
        shutil.copy(self.kernel, os.path.join(esp, "blimp.elf"))
        with open(os.path.join(esp, "cmdline.txt"), "w") as f:
            f.write(self.append + "\n")
        vars_copy = os.path.join(self.tmp, "OVMF_VARS.fd")
        shutil.copy(OVMF_VARS, vars_copy)
        return ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
                "-drive", f"format=raw,file=fat:rw:{esp}"]

    def start(self):
        """Start QEMU and connect to it. If anything fails on the way (no QMP
        answer, an interrupt), QEMU is ended before the exception leaves:
        a caller whose start() raised has nothing to close."""
        _handle_sigterm()
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        self.serial_path = os.path.join(self.tmp, "serial.sock")
        self.cmd = self.command_line()
        listener = None
        if self.serial == "socket":
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.serial_path)
            listener.listen(1)
        self.start_time = time.monotonic()
        with _open_lock:
            _open_vms.add(self)
        try:
            parent = os.getpid()
            # QEMU's stderr apart from the console: a message of QEMU's
            # ("virtio: zero sized buffers are not allowed") written while the
            # guest is mid-line would otherwise land inside a serial line.
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, bufsize=0,
                                         preexec_fn=lambda: _die_with_parent(parent))
            self.stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
            self.stderr_reader.start()
            if listener:
                listener.settimeout(30)
                try:
                    self.serial_sock, _ = listener.accept()
                except socket.timeout:
                    self.fail("QEMU did not connect to the serial socket")
                finally:
                    listener.close()
                # QEMU's stdout (empty unless something is put on it) is
                # drained into lines, so it can never fill and stall QEMU.
                threading.Thread(target=self._read_stream, args=(self._read_stdout,),
                                 daemon=True).start()
            self.reader = threading.Thread(target=self._read_serial, daemon=True)
            self.reader.start()
            if self.use_qmp:
                try:
                    self.qmp = qmp_client.QMP(self.qmp_path)
                except OSError as e:
                    # QEMU refused its command line or died: its stderr says why.
                    try:
                        self.proc.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
                    self.join_readers(2)
                    self.fail(f"no QMP connection to QEMU ({e}; exit status {self.proc.poll()})")
        except BaseException:
            self.close()
            raise
        return self

    def pause_reading(self):
        """Stop taking serial output (socket serial only): the guest's bytes
        pile up in the socket until resume_reading()."""
        if self.serial != "socket":
            raise ValueError("pause_reading needs serial='socket'")
        self.reading.clear()

    def resume_reading(self):
        self.reading.set()

    def _read_serial(self):
        if self.serial == "socket":
            def recv(size):
                self.reading.wait()
                try:
                    return self.serial_sock.recv(size)
                except OSError:
                    return b""
            self._read_stream(recv)
        else:
            self._read_stream(self._read_stdout)

    def _read_stdout(self, size):
        return os.read(self.proc.stdout.fileno(), size)

    def _read_stderr(self):
        """QEMU's own messages, kept in stderr_lines (never in lines)."""
        pending = b""
        while True:
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                self._add_stderr(raw)
        if pending:
            self._add_stderr(pending)
        with self.cond:
            self.cond.notify_all()

    def _add_stderr(self, raw):
        with self.cond:
            self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\r"))
            self.cond.notify_all()

    def qemu_stderr(self, n=20):
        """The last n lines QEMU itself wrote to stderr."""
        with self.cond:
            return "\n".join(self.stderr_lines[-n:])

    def _read_stream(self, read):
        pending = b""
        while True:
            chunk = read(65536)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                self._add_line(raw)
        if pending:
            # Cut off when QEMU stopped (killed by close(), or it died): kept
            # as a line, but not judged as an event the guest meant to send.
            self._add_line(pending, complete=False)
        with self.cond:
            self.cond.notify_all()

    def _add_line(self, raw, complete=True):
        # OVMF writes ANSI escapes and \r; the kernel writes \r\n.
        line = raw.decode("utf-8", "replace").replace("\r", "")
        now = time.monotonic()
        with self.cond:
            self.lines.append(line)
            try:
                ev = parse_event(line) if complete else None
            except EventFormatError as e:
                self.bad_lines.append(str(e))
                ev = None
            if ev is not None:
                ev["_host_time"] = now - self.start_time
                self.events.append(ev)
            self.cond.notify_all()

    # ------------------------------------------------------------- waiting
    def tail(self, n=40):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def fail(self, msg):
        err = self.qemu_stderr()
        raise GuestError(f"{msg}\n--- last serial lines ({self.name}) ---\n{self.tail()}\n---"
                         + (f"\n--- QEMU's stderr ({self.name}) ---\n{err}\n---" if err else ""))

    def exit_status(self):
        """QEMU's exit status, None while it runs (a subclass whose QEMU
        someone else starts says it its own way: blimp.libvirt)."""
        return self.proc.poll()

    def wait_for(self, predicate, timeout, what):
        """Wait until predicate() (called with the lock held) is true. Fails at
        once, naming the line, if the guest has printed a malformed event."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.bad_lines:
                    # The event being waited for may be the malformed one:
                    # say so now rather than time out on it.
                    break
                result = predicate()
                if result:
                    return result
                if not self.reader.is_alive() and self.exit_status() is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(min(remaining, 0.5))
        if self.bad_lines:
            self.fail(f"the guest printed a malformed event line while {what} was awaited: "
                      f"{self.bad_lines[0]}")
        status = self.exit_status()
        if status is not None:
            self.fail(f"QEMU exited with status {status} while waiting for {what}")
        self.fail(f"timed out after {timeout}s waiting for {what}")

    def wait_event(self, name, timeout=60, where=None):
        """The next unconsumed event called `name` (matching `where`, a dict of
        field values or a function); events before it stay unconsumed."""
        def match(ev):
            if ev["ev"] != name:
                return False
            if callable(where):
                return where(ev)
            return all(ev.get(k) == v for k, v in (where or {}).items())

        def find():
            for i in range(self.consumed, len(self.events)):
                if match(self.events[i]):
                    self.consumed = i + 1
                    return self.events[i]
            return None
        return self.wait_for(find, timeout, f"event {name!r}" + (f" with {where}" if where else ""))

    def events_named(self, name):
        with self.cond:
            return [e for e in self.events if e["ev"] == name]

    def wait_line(self, text, timeout=60):
        """The first serial line containing `text`."""
        def find():
            for line in self.lines:
                if text in line:
                    return line
            return None
        return self.wait_for(find, timeout, f"a serial line containing {text!r}")

    # ------------------------------------------------------------- talking
    def send(self, text):
        if self.serial_sock:
            self.serial_sock.sendall(text.encode())
            return
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def shell(self, line, timeout=60, expect_rc=0):
        """Type a command and wait for its "cmd" event; returns (event, output lines).
        An unknown command produces "cmd_error" instead; pass expect_rc=None to accept it."""
        with self.cond:
            start_line = len(self.lines)
            self.consumed = len(self.events)
        self.send(line + "\n")
        name = line.split()[0]

        def done():
            for i in range(self.consumed, len(self.events)):
                e = self.events[i]
                if (e["ev"] == "cmd" and e["name"] == name) or e["ev"] == "cmd_error":
                    self.consumed = i + 1
                    return e
            return None
        ev = self.wait_for(done, timeout, f"the end of command {line!r}")
        with self.cond:
            out = self.lines[start_line:]
        if expect_rc is not None and ev.get("rc") != expect_rc:
            self.fail(f"command {line!r} ended with {ev}, expected rc {expect_rc}")
        return ev, out

    def shell_event(self, command, timeout=60):
        """Run a shell command that reports its state in an event of its own
        name (`pfa`, `balloon`: docs/events.md) and return that event."""
        self.shell(command, timeout)
        return self.events_named(command.split()[0])[-1]

    def poweroff(self, timeout=60):
        """Type `poweroff` and return QEMU's exit status."""
        self.send("poweroff\n")
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=60):
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"QEMU still running after {timeout}s")
        self.join_readers()
        return status

    def join_readers(self, timeout=5):
        """After QEMU exited: wait until its last output (serial and stderr) is in."""
        self.reader.join(timeout)
        stderr_reader = getattr(self, "stderr_reader", None)
        if stderr_reader:
            stderr_reader.join(timeout)

    def poll(self, reached, timeout, failure, period, on_poll=None):
        """Call reached() every `period` s until it is true, and return what
        it returned. on_poll(done), if given, runs after each call (the bench
        samples QEMU's RSS there). Past `timeout`, fails with failure()."""
        deadline = time.monotonic() + timeout
        while True:
            done = reached()
            if on_poll:
                on_poll(bool(done))
            if done:
                return done
            if time.monotonic() > deadline:
                self.fail(failure())
            time.sleep(period)

    def wait_actual(self, want_bytes, timeout=120, why="", period=0.01, on_poll=None):
        """Poll query-balloon until `actual` == want_bytes (BALLOON_CHANGE is
        rate-limited to one a second, so events would be slow to say it)."""
        actual = None

        def reached():
            nonlocal actual
            actual = self.qmp.execute("query-balloon")["actual"]
            return actual == want_bytes
        self.poll(reached, timeout, lambda: f"query-balloon actual {actual} never reached {want_bytes} "
                  f"in {timeout} s" + (f" ({why})" if why else ""), period, on_poll)
        return actual

    def balloon_hold(self, held, timeout=600):
        """Ask QMP for a balloon of `held` bytes (the guest keeps its RAM
        less that) and wait until blimp says it holds them (`balloon_done`
        with that target, in 4 KiB pages) and QEMU agrees (query-balloon's
        actual); returns the balloon_done event, whose `ms` is the guest's
        time for the step. Events from before the request cannot answer."""
        ram = mem_bytes(self.mem)
        with self.cond:
            self.consumed = len(self.events)
        self.qmp.execute("balloon", value=ram - held)
        done = self.wait_event("balloon_done", timeout=timeout, where={"target": held // 4096})
        if done["held"] != held // 4096:
            self.fail(f"balloon_done holds {done['held']} pages, the target is {held // 4096}")
        self.wait_actual(ram - held, timeout=timeout, why=f"a balloon of {held >> 20} MiB")
        return done

    def wait_rss_below(self, limit, timeout=60, period=0.1, on_poll=None):
        """Wait until QEMU's resident memory is at most `limit` bytes; returns it."""
        self.poll(lambda: self.rss() <= limit, timeout,
                  lambda: f"QEMU RSS {self.rss() / MIB:.1f} MiB never came down to "
                  f"{limit / MIB:.1f} MiB in {timeout} s", period, on_poll)
        return self.rss()

    def rss(self):
        """Resident memory of the QEMU process in bytes (VmRSS)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise GuestError("no VmRSS for the QEMU process")

    def close(self):
        """End QEMU (SIGKILL: nothing of the guest is kept) and remove this
        guest's files. Safe to call more than once, and on a half-started guest."""
        self.reading.set()
        if self.qmp:
            self.qmp.close()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.serial_sock:
            self.serial_sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        with _open_lock:
            _open_vms.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
