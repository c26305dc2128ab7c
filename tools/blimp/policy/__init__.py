"""policy: a host tool that shares one memory budget among several guests.

    sample     one reading of a guest (guest-stats, balloon size, QEMU's RSS),
               checked: a nonsense figure becomes None and a complaint
    base       the policy interface (GuestView, HostView, Decision, Policy)
    static, reporting, mom, window, ws
               the policies, one file each (docs/policy.md gives each rule)
    backend    how a guest is reached: the Backend interface, QMPBackend (a
               QMP socket), BlimpVMBackend (a guest of blimp.vm)
    libvirt_backend  LibvirtBackend (a libvirt domain; python3-libvirt)
    manager    the loop: sample, decide, clamp, fit the budget, set, log
    __main__   the daemon: python3 -m blimp.policy --budget 1G --policy window
               --guest NAME=/path/qmp.sock ...

Every decision is logged (logger "blimp.policy") with its reason; so is
every clamp, every budget cut and every guest dropped.
"""
from .base import Decision, GuestView, HostView, Policy
from .sample import Sample, parse_size

POLICIES = ("static", "reporting", "mom", "window", "ws")


def make_policy(name, **options):
    """A policy object by name (POLICIES); options go to its constructor."""
    if name == "static":
        from .static import Static as cls
    elif name == "reporting":
        from .reporting import Reporting as cls
    elif name == "mom":
        from .mom import Mom as cls
    elif name == "window":
        from .window import Window as cls
    elif name == "ws":
        from .ws import WorkingSet as cls
    else:
        raise ValueError(f"unknown policy {name!r} (one of {', '.join(POLICIES)})")
    return cls(**options)


__all__ = ["Decision", "GuestView", "HostView", "Policy", "Sample", "parse_size",
           "POLICIES", "make_policy"]
