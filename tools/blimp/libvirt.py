"""libvirt: blimp as a libvirt domain, and a private libvirtd to run it in.

    domain_xml(...)      the domain: TCG, q35, direct kernel boot of blimp.elf,
                         the balloon with stats, free page reporting and
                         deflate-on-OOM, a logged serial console, a swap disk
    PrivateLibvirtd      a libvirtd + virtlogd of our own (see its comment),
                         and a reaper that kills the QEMUs libvirt left if
                         the process that started them dies (SIGKILL too)
    LibvirtGuest         a BlimpVM whose QEMU libvirt starts: events come from
                         the console log, commands go through libvirt's
                         console stream (what `virsh console` uses)

Printing a domain for `virsh define` (README, "blimp under libvirt"):

    python3 tools/blimp/libvirt.py --kernel $PWD/build/blimp.elf \\
        --swap /var/lib/libvirt/images/blimp-swap.img --log /var/log/blimp.log > blimp.xml
"""
import argparse
import atexit
import glob
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from xml.sax.saxutils import escape

if __package__:
    from .vm import BlimpVM, qemu_binary
else:  # run as a script: only domain_xml is needed
    BlimpVM = object

    def qemu_binary():  # blimp.vm's, which a script cannot import
        return os.environ.get("BLIMP_QEMU") or "qemu-system-x86_64"

DOMAIN_TEMPLATE = """\
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{mem_mib}</memory>
  <currentMemory unit='MiB'>{mem_mib}</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
{disks}    <serial type='pty'>
      <target port='0'/>{log}
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='virtio' autodeflate='on' freePageReporting='on'>
      <stats period='1'/>
    </memballoon>
  </devices>
</domain>
"""

DISK_TEMPLATE = """\
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{path}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
"""


def emulator_path():
    """libvirt wants the emulator as an absolute path: qemu_binary() found."""
    found = shutil.which(qemu_binary())
    if not found:
        raise FileNotFoundError(f"no QEMU at {qemu_binary()!r} (BLIMP_QEMU or PATH)")
    return os.path.abspath(found)


def domain_xml(name="blimp", kernel="build/blimp.elf", cmdline="", mem_mib=256, swap=None,
               console_log=None, emulator=None):
    """The domain XML. `swap`: a raw image attached as virtio-blk (the guest's
    blk0; add vm.swap=0 to cmdline to swap on it from boot). `console_log`:
    a file libvirt (virtlogd) writes everything of the serial console to,
    whether or not anyone is attached to it. `emulator`: the QEMU binary,
    by default emulator_path()."""
    def attr(text):
        return escape(text, {"'": "&apos;"})
    disks = DISK_TEMPLATE.format(path=attr(swap)) if swap else ""
    log = f"\n      <log file='{attr(console_log)}' append='on'/>" if console_log else ""
    return DOMAIN_TEMPLATE.format(name=escape(name), mem_mib=mem_mib, kernel=escape(kernel),
                                  cmdline=escape(cmdline), disks=disks, log=log,
                                  emulator=escape(emulator or emulator_path()))



# ------------------------------------------------------------ the daemon
# Why a private libvirtd, and how. A privileged libvirtd keeps its state in
# fixed places (/etc/libvirt, /run/libvirt, /var/lib/libvirt,
# /var/cache/libvirt, /var/log/libvirt); a second one there would fight a
# system daemon over its domains and sockets. So ours runs in a mount
# namespace of its own (unshare --mount) where those five folders are bind
# mounts of folders under one temporary root: it has its own config, state,
# logs and domains, and a system libvirtd (if any) never sees it. Its
# sockets are in ROOT/sock, outside the namespace's mounts, so a client
# reaches it with qemu+unix:///system?socket=ROOT/sock/libvirt-sock.
# virtlogd, which writes QEMU's log and the console log, makes the namespace
# and libvirtd joins it (nsenter; libvirtd finds virtlogd at
# /run/libvirt/virtlogd-sock).
#
# The config is the system daemon's, less what a container lacks (the
# per-domain mount namespace, cgroups, a MAC security driver: no AppArmor or
# SELinux here), and with QEMU running as root. Why root: libvirt probes
# QEMU's capabilities (2-5 s a probe under TCG) and caches them, and judges
# the cache by whether KVM is usable by the user QEMU runs as. Where
# /dev/kvm is root's alone (0600, as on this machine: no udev rule gives it
# to group kvm), a probe as libvirt-qemu and the check disagree, the cache
# is stale at every look, and one `virsh start` re-probed QEMU about twenty
# times (95 s). As root both agree; the domain is type 'qemu' (TCG) either
# way. Root also needs no chown of the files it is given
# (dynamic_ownership = 0): the tree's files are never relabelled. Even so,
# every start probes QEMU once more (about 10 s for qemu-system-i386 and
# -x86_64): the cache written by the last daemon is "outdated: host cpuid
# changed" here, so it lives and dies with the daemon's root.
LIBVIRTD_CONF = """\
unix_sock_dir = "{root}/sock"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:{root}/libvirtd.log"
"""
VIRTLOGD_CONF = """\
log_outputs = "3:file:{root}/virtlogd.log"
max_size = 67108864
"""
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
namespaces = [ ]
cgroup_controllers = [ ]
security_driver = "none"
remember_owner = 0
"""
MOUNT_SCRIPT = """\
set -e
mount --bind {root}/etc /etc/libvirt
mount --bind {root}/run /run/libvirt
mount --bind {root}/lib /var/lib/libvirt
mount --bind {root}/cache /var/cache/libvirt
mount --bind {root}/log /var/log/libvirt
exec virtlogd --config /etc/libvirt/virtlogd.conf
"""
MOUNT_POINTS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt",
                "/var/log/libvirt")


def missing():
    """Why the private daemon cannot run here (a sentence), or None."""
    if os.geteuid() != 0:
        return "needs root: the private libvirtd is a privileged one, in a mount namespace of its own"
    for tool in ("libvirtd", "virtlogd", "virsh", "unshare", "nsenter"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return (f"{tool} is not installed (tools/install-deps.sh installs "
                    "libvirt-daemon-system libvirt-clients python3-libvirt)")
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "python3-libvirt is not installed for this Python (tools/install-deps.sh)"
    return None


def kill_qemus(root):
    """SIGKILL every QEMU the daemon under `root` started and left running:
    the domains' and the capability probes'. libvirt daemonizes QEMU, so
    none is in a session or process tree of ours; they are found by the pid
    files libvirt wrote, and by the guests' files (under root) on their
    command line, for a domain whose pid file was not written yet."""
    pids = set()
    for pattern in ("run/qemu/*.pid", "lib/qemu/qmp-*/qmp.pid"):
        for path in glob.glob(os.path.join(root, pattern)):
            try:
                with open(path) as f:
                    pids.add(int(f.read().strip()))
            except (OSError, ValueError):
                pass
    mark = os.path.join(root, "guests", "").encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # gone meanwhile
            continue
        if b"qemu-system" in cmdline and (int(entry) in pids or mark in cmdline):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _reap(root):
    """The reaper (`libvirt.py --reap ROOT`, started with the daemons):
    when the process that started it is gone however it went, SIGKILL
    included, the QEMUs libvirt left are killed and the root removed. The
    daemons themselves die with that process (PR_SET_PDEATHSIG); the QEMUs,
    daemonized, would not. Its stdin is a pipe only that process writes to:
    end of file means it is gone (or stop() is done and closed it)."""
    while sys.stdin.buffer.read(4096):
        pass
    kill_qemus(root)
    shutil.rmtree(root, ignore_errors=True)


class LibvirtError(Exception):
    pass


_open_daemons = set()


def _stop_all():
    for d in list(_open_daemons):
        d.stop()


atexit.register(_stop_all)  # Ctrl-C, or SIGTERM via vm's KeyboardInterrupt


class PrivateLibvirtd:
    """A libvirtd and virtlogd of our own (see above). start() returns self
    once a client can connect; stop() destroys every domain it still runs,
    ends both daemons and removes the root; both are safe to repeat."""

    def __init__(self):
        self.root = None
        self.proc = None
        self.conn = None

    @property
    def uri(self):
        return f"qemu+unix:///system?socket={self.root}/sock/libvirt-sock"

    def start(self, timeout=300):
        import libvirt
        from .vm import _handle_sigterm
        _handle_sigterm()
        # libvirt prints every error on stderr besides raising it; here the
        # exception is enough (an aborted console stream's last recv raises).
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        self.root = tempfile.mkdtemp(prefix="blimp-libvirt-")
        _open_daemons.add(self)
        for d in ("etc", "run", "lib", "cache", "log", "sock", "guests"):
            os.makedirs(os.path.join(self.root, d))
        for d in MOUNT_POINTS:
            os.makedirs(d, exist_ok=True)  # empty mount points, as the package leaves them
        for name, text in (("libvirtd.conf", LIBVIRTD_CONF), ("virtlogd.conf", VIRTLOGD_CONF),
                           ("qemu.conf", QEMU_CONF)):
            with open(os.path.join(self.root, "etc", name), "w") as f:
                f.write(text.format(root=self.root))
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        parent = os.getpid()
        from .vm import _die_with_parent
        self.out = open(os.path.join(self.root, "daemons.out"), "wb")
        # The reaper outlives this process only to clean up after it (see
        # _reap): it waits for its stdin, whose only writer is us, to close.
        self.reaper = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--reap",
                                        self.root], stdin=subprocess.PIPE, stdout=self.out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        # virtlogd makes the namespace and its mounts, then libvirtd enters
        # it. Each dies with this process (PR_SET_PDEATHSIG survives exec).
        self.procs = []

        def spawn(argv):
            self.procs.append(subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True,
                                               preexec_fn=lambda: _die_with_parent(parent)))
            return self.procs[-1]
        script = MOUNT_SCRIPT.format(root=self.root)
        logd = spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(self.root, "run", "virtlogd-sock")):
            if logd.poll() is not None or time.monotonic() > deadline:
                raise LibvirtError(f"virtlogd did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        self.proc = spawn(["nsenter", f"--mount=/proc/{logd.pid}/ns/mnt", "libvirtd",
                           "--config", "/etc/libvirt/libvirtd.conf"])
        deadline = time.monotonic() + timeout
        sock = os.path.join(self.root, "sock", "libvirt-sock")
        while True:
            if self.proc.poll() is not None:
                raise LibvirtError(f"libvirtd exited with status {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if os.path.exists(sock):
                try:
                    self.conn = libvirt.open(self.uri)
                    self.conn.getVersion()  # the first call probes QEMU
                    return self
                except libvirt.libvirtError as e:
                    last = e
            else:
                last = "no socket yet"
            if time.monotonic() > deadline:
                raise LibvirtError(f"libvirtd did not answer in {timeout} s ({last}):\n"
                                   f"{self.log_tail()}")
            time.sleep(0.1)

    def guest_dir(self, name):
        """A folder for one guest's kernel, disks and console log."""
        d = os.path.join(self.root, "guests", name)
        os.makedirs(d, exist_ok=True)
        return d

    def log_tail(self, n=30):
        """The last lines of the daemons' own logs and of every QEMU log."""
        out = []
        paths = [os.path.join(self.root, f) for f in ("daemons.out", "libvirtd.log")]
        qdir = os.path.join(self.root, "log", "qemu")
        if os.path.isdir(qdir):
            paths += [os.path.join(qdir, f) for f in sorted(os.listdir(qdir))]
        for p in paths:
            try:
                with open(p, errors="replace") as f:
                    lines = f.read().splitlines()[-n:]
            except OSError:
                continue
            out.append(f"--- {p} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self):
        import libvirt
        if self.conn:
            try:
                for dom in self.conn.listAllDomains():
                    if dom.isActive():
                        dom.destroy()
                    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except libvirt.libvirtError:
                pass
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None
        if self.root:
            kill_qemus(self.root)  # only if destroy failed
        for proc in reversed(getattr(self, "procs", [])):  # libvirtd, then virtlogd
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        self.procs, self.proc = [], None
        if getattr(self, "out", None):
            self.out.close()
            self.out = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if getattr(self, "reaper", None):  # nothing left to reap: let it go
            self.reaper.stdin.close()
            try:
                self.reaper.wait(30)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
            self.reaper = None
        _open_daemons.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------ the console
class _Console:
    """One attach of libvirt's console (virDomainOpenConsole, as `virsh
    console`): its own connection and its own thread, which types what it is
    given and then reads (and drops: the log has it) what the console
    prints, as a reading user does. No test thread ever waits on a libvirt
    stream call: a blocking send in one thread and a blocking recv in
    another, on one connection, once hung a clean-clone run for good inside
    libvirt's client (13 minutes in virNetClientSendStream), and libvirtd can
    stop reading a pty until a new client attaches. A console that is stuck
    is left to its thread; the command's wait times out with the guest's
    log, never hangs."""

    def __init__(self, uri, name):
        self.uri, self.name = uri, name
        self.todo = queue.Queue()
        self.used = False
        self.stream = self.conn = None
        self.closed = threading.Event()
        threading.Thread(target=self._run, daemon=True, name=f"console {name}").start()

    def type(self, data):
        self.used = True
        self.todo.put(data)

    def _run(self):
        import libvirt
        try:
            self.conn = libvirt.open(self.uri)
            self.stream = self.conn.newStream(0)
            self.conn.lookupByName(self.name).openConsole(None, self.stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            data = self.todo.get()
            while data and not self.closed.is_set():
                data = data[self.stream.send(data):]
            while not self.closed.is_set() and self.stream.recv(65536):
                pass
        except libvirt.libvirtError:
            pass  # aborted by close(), or the domain is gone: the command's wait says so
        finally:
            if self.closed.is_set():  # closed before it attached: let go of what it opened since
                self._abort()

    def close(self):
        """Abort the stream from a thread of its own, waited for a while: a
        stuck libvirt call must not hold the test."""
        self.closed.set()
        self.todo.put(b"")

        t = threading.Thread(target=self._abort, daemon=True)
        t.start()
        t.join(5)

    def _abort(self):
        for done in (lambda: self.stream and self.stream.abort(), lambda: self.conn and self.conn.close()):
            try:
                done()
            except Exception:  # noqa: BLE001 - libvirtError, or a connection already closed
                pass


# ------------------------------------------------------------ the guest
class LibvirtGuest(BlimpVM):
    """blimp as a libvirt domain, read and driven the way a libvirt user
    would: the serial console's output from the log file libvirt writes
    (virtlogd), which has every line whether or not a client is attached;
    input through libvirt's console stream (virDomainOpenConsole, what
    `virsh console` uses), attached for one command, read while attached,
    and closed again. Between commands nobody reads the console's pty, which
    is how libvirt leaves a console nobody watches.

    Everything BlimpVM offers for lines and events (wait_event, shell,
    shell_event, tail) works; QMP and rss() do not (libvirt owns the monitor)."""

    def __init__(self, daemon, name="blimp", mem_mib=128, cmdline="", swap_mib=0):
        super().__init__(name=name, qmp=False)
        self.daemon, self.mem_mib, self.cmdline, self.swap_mib = daemon, mem_mib, cmdline, swap_mib
        self.dom = None
        self.console = None  # the _Console attached for the command being typed
        self._stop = threading.Event()

    def start(self):
        import libvirt
        from .vm import KERNEL
        d = self.daemon.guest_dir(self.name)
        kernel = os.path.join(d, "blimp.elf")
        shutil.copy(KERNEL, kernel)  # a rebuild during the run does not change it
        swap = None
        cmdline = self.cmdline
        if self.swap_mib:
            swap = os.path.join(d, "swap.img")
            with open(swap, "wb") as f:
                f.truncate(self.swap_mib << 20)
            cmdline = f"vm.swap=0 {cmdline}".strip()
        self.console_log = os.path.join(d, "console.log")
        self.xml = domain_xml(self.name, kernel, cmdline, self.mem_mib, swap, self.console_log)
        self.cmd = ["virsh", "-c", self.daemon.uri, "start", self.name]
        self.start_time = time.monotonic()
        self.dom = self.daemon.conn.defineXML(self.xml)
        try:
            self.dom.create()
        except libvirt.libvirtError as e:
            raise LibvirtError(f"virsh start {self.name}: {e}\n{self.daemon.log_tail()}")
        self.reader = threading.Thread(target=self._read_stream, args=(self._read_log,),
                                       daemon=True)
        self.reader.start()
        return self

    def _read_log(self, size):
        """Bytes of the console log as virtlogd appends them ("" once closed)."""
        while not self._stop.is_set():
            if not hasattr(self, "_log"):
                try:
                    self._log = open(self.console_log, "rb")
                except FileNotFoundError:
                    time.sleep(0.05)
                    continue
            chunk = self._log.read(size)
            if chunk:
                return chunk
            time.sleep(0.05)
        return b""

    def exit_status(self):
        """None while the domain runs; else its state's name."""
        import libvirt
        try:
            state = self.dom.state()[0]
        except libvirt.libvirtError:
            return "gone"
        if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED,
                     libvirt.VIR_DOMAIN_BLOCKED):
            return None
        return {libvirt.VIR_DOMAIN_SHUTOFF: "shut off", libvirt.VIR_DOMAIN_CRASHED: "crashed",
                libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down"}.get(state, f"state {state}")

    def send(self, text):
        """Type text into the console: a new attach per command (shell()
        detaches after each), on a connection and a thread of its own."""
        if self.console is not None and self.console.used:
            self.close_console()
        if self.console is None:
            self.console = _Console(self.daemon.uri, self.name)
        self.console.type(text.encode())

    def close_console(self):
        """Detach from the console: nobody reads it until the next send()."""
        if self.console is not None:
            self.console.close()
            self.console = None

    def shell(self, line, timeout=60, expect_rc=0):
        """As BlimpVM.shell; the console is attached only for the command."""
        try:
            return super().shell(line, timeout, expect_rc)
        finally:
            self.close_console()

    def state(self):
        return self.dom.state()[0]

    def fail(self, msg):
        """As BlimpVM.fail, with the daemons' and QEMU's logs."""
        try:
            super().fail(msg)
        except Exception as e:
            raise type(e)(f"{e}\n{self.daemon.log_tail(15)}") from None

    def mark(self):
        """Events printed so far are not waited for again (after a restore
        or a reset, the next `ready` is the new one)."""
        with self.cond:
            self.consumed = len(self.events)

    def memory_stats(self):
        return self.dom.memoryStats()

    def close(self):
        import libvirt
        self.close_console()
        if self.dom is not None:
            try:
                if self.dom.isActive():
                    self.dom.destroy()
                self.dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
            except libvirt.libvirtError:
                pass
            self.dom = None
        self._stop.set()
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    if sys.argv[1:2] == ["--reap"]:  # PrivateLibvirtd's reaper, not for users
        return _reap(sys.argv[2])
    p = argparse.ArgumentParser(description="print blimp's libvirt domain XML")
    p.add_argument("--name", default="blimp")
    p.add_argument("--kernel", default=os.path.abspath("build/blimp.elf"))
    p.add_argument("--cmdline", default="")
    p.add_argument("--mem", type=int, default=256, help="MiB")
    p.add_argument("--swap", help="raw image for swap (virtio-blk; adds vm.swap=0)")
    p.add_argument("--log", help="file to log the serial console to")
    a = p.parse_args()
    cmdline = ("vm.swap=0 " + a.cmdline if a.swap else a.cmdline).strip()
    print(domain_xml(a.name, a.kernel, cmdline, a.mem, a.swap, a.log), end="")


if __name__ == "__main__":
    main()
