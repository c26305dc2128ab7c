"""libvirt_backend: a guest reached through libvirt instead of a QMP socket.

The same Backend (backend.py), from libvirt's calls:

    max_bytes()    virDomainGetMaxMemory (KiB)
    stats()        virDomainMemoryStats, turned into QEMU's guest-stats shape
                   so that sample.py checks both the same way
    actual()       its "actual" (the balloon size, KiB)
    rss()          its "rss" (QEMU's resident set, KiB; libvirt reads /proc)
    set_target(b)  virDomainSetMemoryFlags(KiB, VIR_DOMAIN_AFFECT_LIVE)

libvirt renames the virtio tags: its "available" is the guest's total
(MEMTOT, QEMU's stat-total-memory) and its "usable" is AVAIL (QEMU's
stat-available-memory); "unused" is free memory. Sizes are KiB, counters
counts. The statistics period is set with virDomainSetMemoryStatsPeriod.

python3-libvirt is imported only when no domain object is given, so the
host tests run with a stand-in domain and no libvirt installed.
"""
from .backend import Backend, GuestGone

VIR_DOMAIN_AFFECT_LIVE = 1
KIB_STATS = {"unused": "stat-free-memory", "usable": "stat-available-memory",
             "available": "stat-total-memory", "disk_caches": "stat-disk-caches",
             "swap_in": "stat-swap-in", "swap_out": "stat-swap-out"}
COUNT_STATS = {"major_fault": "stat-major-faults", "minor_fault": "stat-minor-faults"}


def _kib(v):
    """KiB to bytes for a number; anything else passed on for sample.py to refuse."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    return v * 1024


class LibvirtBackend(Backend):
    def __init__(self, name, domain=None, uri="qemu:///system", ws=None, period=1):
        self.name, self.ws_kind = name, ws
        if domain is None:
            try:
                import libvirt
            except ImportError:
                raise GuestGone("python3-libvirt is not installed")
            try:
                domain = libvirt.open(uri).lookupByName(name)
            except libvirt.libvirtError as e:
                raise GuestGone(f"libvirt {uri}: {e}")
        self.dom = domain
        self._try(self.dom.setMemoryStatsPeriod, period, VIR_DOMAIN_AFFECT_LIVE)
        self._max = self._try(self.dom.maxMemory) * 1024

    def _try(self, call, *args):
        try:
            return call(*args)
        except Exception as e:  # libvirt.libvirtError, without importing libvirt
            if type(e).__name__ == "libvirtError":
                raise GuestGone(f"{call.__name__}: {e}")
            raise

    def _stats(self):
        m = self._try(self.dom.memoryStats)
        return m if isinstance(m, dict) else {}

    def max_bytes(self):
        return self._max

    def stats(self):
        m = self._stats()
        stats = {q: _kib(m.get(k, -1)) if m.get(k, -1) != -1 else -1 for k, q in KIB_STATS.items()}
        stats.update({q: m.get(k, -1) for k, q in COUNT_STATS.items()})
        self._last = m
        return {"stats": stats, "last-update": m.get("last_update")}

    def actual(self):
        return _kib(self._stats().get("actual"))

    def rss(self):
        return _kib(self._last.get("rss")) if getattr(self, "_last", None) else None

    def ws(self, raw):
        if self.ws_kind != "avail" or not isinstance(raw, dict) or not isinstance(raw.get("stats"), dict):
            return None, None
        return None, raw["stats"].get("stat-available-memory")

    def set_target(self, nbytes):
        self._try(self.dom.setMemoryFlags, int(nbytes) // 1024, VIR_DOMAIN_AFFECT_LIVE)
