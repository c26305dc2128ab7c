"""sample: one reading of one guest, with every figure checked.

A guest is not trusted: its statistics may be missing, negative, larger than
its memory, or not numbers at all. make_sample() keeps a figure only if it
is a finite non-negative number (and, for a memory size, at most the
guest's memory); anything else becomes None and a line in `problems`, which
the manager logs with the guest's name. Policies read only Sample fields,
never the raw dict.

QEMU's guest-stats names (qom-get of the balloon's `guest-stats`) and what
they become here (bytes unless said; -1 is QEMU's "the guest did not say"):

    stat-free-memory       free       stat-swap-in      swap_in (cumulative)
    stat-available-memory  avail      stat-swap-out     swap_out (cumulative)
    stat-disk-caches       caches     stat-major-faults majflt (cumulative count)
    stat-total-memory      total      stat-minor-faults minflt (cumulative count)
"""
import math
import re
from dataclasses import dataclass, field
from typing import Optional

from blimp.units import GIB, KIB, MIB

MEMORY_STATS = {"free": "stat-free-memory", "avail": "stat-available-memory",
                "caches": "stat-disk-caches", "total": "stat-total-memory"}
COUNTER_STATS = {"swap_in": "stat-swap-in", "swap_out": "stat-swap-out",
                 "majflt": "stat-major-faults", "minflt": "stat-minor-faults"}


@dataclass
class Sample:
    """One guest at one moment. Memory in bytes, counters cumulative, t in s."""
    t: float
    actual: Optional[int] = None      # the guest's size now (query-balloon)
    rss: Optional[int] = None         # QEMU's resident memory
    overhead: Optional[int] = None    # of rss, QEMU's own (not guest RAM)
    free: Optional[int] = None
    avail: Optional[int] = None
    caches: Optional[int] = None
    total: Optional[int] = None
    swap_in: Optional[int] = None
    swap_out: Optional[int] = None
    majflt: Optional[int] = None
    minflt: Optional[int] = None
    ws: Optional[int] = None          # working set, bytes (blimp's `ws` event)
    ws_avail: Optional[int] = None    # takeable without hurting the working set
    stamp: Optional[float] = None     # the guest's last-update (s), for freshness
    problems: list = field(default_factory=list)


def _number(value):
    """value as an int if it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def check_figure(name, value, limit, problems, of="the guest's memory"):
    """A figure kept if a number in [0, limit] (limit None: no upper bound).
    None or -1 (absent) gives None silently; anything else wrong gives None
    and a complaint naming the figure and the value."""
    if value is None:
        return None
    n = _number(value)
    if n is None:
        problems.append(f"{name}={value!r} is not a number")
        return None
    if n == -1:
        return None
    if n < 0:
        problems.append(f"{name}={value!r} is negative")
        return None
    if limit is not None and n > limit:
        problems.append(f"{name}={value!r} is larger than {of} ({limit} bytes)")
        return None
    return n


def make_sample(t, raw, max_bytes, actual=None, rss=None, ws=None, ws_avail=None, overhead=None):
    """A Sample from QEMU's guest-stats answer `raw` ({"stats": {...},
    "last-update": s}, or anything else: a non-dict gives an empty sample and
    a complaint). max_bytes is the guest's memory, the bound of every size;
    QEMU's overhead is bounded by its rss."""
    problems = []
    s = Sample(t=t, problems=problems)
    if not isinstance(raw, dict):
        problems.append(f"guest-stats is {type(raw).__name__}, not an object: {raw!r:.80}")
        raw = {}
    stats = raw.get("stats", {})
    if not isinstance(stats, dict):
        problems.append(f"guest-stats 'stats' is {type(stats).__name__}: {stats!r:.80}")
        stats = {}
    for attr, key in MEMORY_STATS.items():
        setattr(s, attr, check_figure(key, stats.get(key), max_bytes, problems))
    for attr, key in COUNTER_STATS.items():
        setattr(s, attr, check_figure(key, stats.get(key), None, problems))
    s.stamp = check_figure("last-update", raw.get("last-update"), None, problems)
    s.actual = check_figure("actual", actual, max_bytes, problems)
    s.rss = check_figure("rss", rss, None, problems)
    s.overhead = check_figure("overhead", overhead, s.rss, problems, of="QEMU's rss")
    s.ws = check_figure("ws", ws, max_bytes, problems)
    s.ws_avail = check_figure("ws_avail", ws_avail, max_bytes, problems)
    return s


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)


def parse_size(text):
    """'1G', '512M', '1536MiB', '4096' (bytes) -> bytes; ValueError otherwise."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (say 512M, 1G, 1536MiB or bytes)")
    unit = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": GIB * KIB}[m.group(2).lower()]
    return int(float(m.group(1)) * unit)
