"""static: fixed targets, what a person does with `virsh setmem` once.

Each guest gets the size given for it (targets={name: bytes}); a guest not
named gets an equal share of the budget. Nothing the guests say changes it.
"""
from .base import Decision, Policy, mib


class Static(Policy):
    name = "static"

    def __init__(self, targets=None):
        self.targets = dict(targets or {})

    def decide(self, host, guests):
        unnamed = [g for g in guests if g.name not in self.targets]
        named = sum(min(self.targets[g.name], g.max_bytes) for g in guests if g.name in self.targets)
        share = (host.budget - named) // len(unnamed) if unnamed else 0
        out = {}
        for g in guests:
            if g.name in self.targets:
                out[g.name] = Decision(self.targets[g.name], f"fixed at {mib(self.targets[g.name])}")
            else:
                out[g.name] = Decision(share, f"an equal share of what the budget leaves: {mib(share)}")
        return out
