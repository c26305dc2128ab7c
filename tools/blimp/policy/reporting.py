"""reporting: set no targets; the guests give back free memory themselves
with free page reporting (virtio-balloon `free-page-reporting=on`), and the
host never asks for more. The budget is not enforced: the manager logs when
the guests' maxima exceed it.
"""
from .base import Decision, Policy


class Reporting(Policy):
    name = "reporting"

    def decide(self, host, guests):
        return {g.name: Decision(None, "no target: free page reporting returns free memory")
                for g in guests}
