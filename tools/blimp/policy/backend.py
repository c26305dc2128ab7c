"""backend: how the manager reaches a guest.

A Backend answers five questions and takes one order; anything that means
the guest is gone (QEMU exited, the socket closed, the process vanished)
raises GuestGone, and the manager drops the guest:

    max_bytes()    the guest's memory (-m), the top of its target
    stats()        QEMU's guest-stats answer as it came: {"stats": {...},
                   "last-update": s}; not checked here (sample.py does that)
    actual()       the guest's size now (query-balloon's `actual`)
    rss()          the resident memory of the guest's QEMU, None if unknown
    overhead()     of that, what is QEMU's own (its code, heap, TCG's
                   translation cache) rather than guest RAM; None if unknown
    ws(raw)        (ws bytes, ws_avail bytes) if the guest reports a
                   working set, else (None, None); raw is stats()'s answer
    set_target(b)  QMP `balloon` (libvirt: virDomainSetMemory)

QMPBackend speaks QMP to one QEMU (and reads /proc/PID for rss and
overhead); libvirt_backend.py answers the same from libvirt's calls, with
no overhead figure (libvirt gives no PID's smaps: the daemon's
`overhead=SIZE` stands in, docs/policy.md).
"""
import os
import socket
import struct

from blimp import qmp as qmp_client


class GuestGone(Exception):
    """The guest cannot be reached any more."""


class Backend:
    name = "?"

    def max_bytes(self):
        raise NotImplementedError

    def stats(self):
        raise NotImplementedError

    def actual(self):
        raise NotImplementedError

    def rss(self):
        return None

    def overhead(self):
        return None

    def ws(self, raw):
        return None, None

    def set_target(self, nbytes):
        raise NotImplementedError

    def close(self):
        pass


def rss_of(pid):
    """VmRSS of a process in bytes; GuestGone if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        raise GuestGone(f"process {pid} is gone")
    return None  # a zombie has no VmRSS


def ram_rss(pid, mem_bytes):
    """Bytes of guest RAM resident in the host: the Rss of QEMU's mappings of
    exactly mem_bytes (its RAM block, anonymous or file-backed), from
    /proc/PID/smaps; None if QEMU has no such mapping. GuestGone if the
    process is gone."""
    size, found = None, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Size":
                    size = int(v.split()[0]) * 1024
                elif k == "Rss" and size == mem_bytes:
                    found = (found or 0) + int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        raise GuestGone(f"process {pid} is gone")
    return found


def peer_pid(sock):
    """The PID at the other end of a unix socket (SO_PEERCRED), None if unknown."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[0] or None
    except OSError:
        return None


class QMPBackend(Backend):
    """One QEMU over QMP. Give a socket path, or an open blimp.qmp.QMP (a
    test whose BlimpVM already holds the one QMP connection QEMU allows).
    ws="avail" declares that the guest's AVAIL is working-set based (blimp);
    `balloon` is the balloon's QOM path, found if not given.
    polling: seconds between the guest's statistics updates (QEMU asks)."""

    def __init__(self, name, path=None, qmp=None, pid=None, ws=None, balloon=None, polling=1,
                 timeout=10.0):
        self.name, self.ws_kind = name, ws
        try:
            self.qmp = qmp if qmp is not None else qmp_client.QMP(path, timeout=timeout)
        except (qmp_client.QMPError, OSError) as e:
            raise GuestGone(f"cannot connect to {path}: {e}")
        self.pid = pid if pid is not None else peer_pid(self.qmp.sock)
        self.path = balloon or self._find_balloon()
        self._call("qom-set", path=self.path, property="guest-stats-polling-interval", value=polling)
        self._max = self._call("query-memory-size-summary")["base-memory"]

    def _call(self, command, **args):
        try:
            return self.qmp.execute(command, **args)
        except (OSError, socket.timeout) as e:
            raise GuestGone(f"{command}: {e}")
        except qmp_client.QMPError as e:
            if "closed" in str(e):
                raise GuestGone(str(e))
            raise

    def _find_balloon(self):
        for top in ("/machine/peripheral", "/machine/peripheral-anon"):
            for child in self._call("qom-list", path=top):
                if child.get("type", "").startswith("child<virtio-balloon"):
                    return f"{top}/{child['name']}"
        raise GuestGone("no virtio-balloon device")

    def max_bytes(self):
        return self._max

    def stats(self):
        return self._call("qom-get", path=self.path, property="guest-stats")

    def actual(self):
        return self._call("query-balloon")["actual"]

    def rss(self):
        if self.pid is None:
            return None
        if not os.path.exists(f"/proc/{self.pid}"):
            raise GuestGone(f"QEMU (pid {self.pid}) is gone")
        return rss_of(self.pid)

    def overhead(self):
        """VmRSS less the guest RAM mapping's Rss: QEMU's own memory, read
        at every sample because it grows (the translation cache fills as
        the guest runs new code)."""
        if self.pid is None:
            return None
        rss, ram = rss_of(self.pid), ram_rss(self.pid, self._max)
        if rss is None or ram is None:
            return None
        return max(0, rss - ram)

    def ws(self, raw):
        if self.ws_kind != "avail" or not isinstance(raw, dict) or not isinstance(raw.get("stats"), dict):
            return None, None
        return None, raw["stats"].get("stat-available-memory")

    def set_target(self, nbytes):
        self._call("balloon", value=int(nbytes))

    def close(self):
        self.qmp.close()


class BlimpVMBackend(QMPBackend):
    """A guest started here with blimp.vm.BlimpVM (tests, bench): its QMP
    connection and PID, its AVAIL as the working-set figure, and the working
    set itself from the latest `ws` event on its console."""

    def __init__(self, vm, ws="avail", **kw):
        self.vm = vm
        super().__init__(vm.name, qmp=vm.qmp, pid=vm.proc.pid, ws=ws, **kw)

    def rss(self):
        if self.vm.proc.poll() is not None:
            raise GuestGone(f"QEMU exited with status {self.vm.proc.returncode}")
        return super().rss()

    def ws(self, raw):
        ws, avail = super().ws(raw)
        evs = self.vm.events_named("ws")
        return (evs[-1]["ws"] * 4096 if evs and isinstance(evs[-1].get("ws"), int) else ws), avail

    def close(self):
        pass  # the VM's owner closes it
