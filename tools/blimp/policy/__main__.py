"""The policy daemon:

    cd tools && python3 -m blimp.policy --budget 1G --policy window \\
        --guest a=/tmp/a.qmp --guest b=/tmp/b.qmp,ws=avail [--interval 2]

Each --guest is NAME=QMP_SOCKET[,ws=avail][,floor=SIZE][,target=SIZE][,overhead=SIZE], or
NAME=libvirt:DOMAIN[,...] for a libvirt domain (--libvirt-uri, default
qemu:///system; needs python3-libvirt)
--record FILE appends each step as a JSON line. (ws=avail: the guest's AVAIL is working-set based, as blimp's is; target:
the static policy's size for it; overhead: its QEMU's own memory, a
constant, instead of measuring it from /proc/PID/smaps each step, which a
libvirt domain's cannot; --overhead gives it for every guest). Runs until SIGINT or SIGTERM, logging
every decision on stderr. Exit status 0 on a signal, 2 on bad arguments,
1 if no guest could be reached.
"""
import argparse
import logging
import signal
import sys

from . import POLICIES, make_policy
from .backend import GuestGone, QMPBackend
from .manager import Manager, record_json
from .sample import parse_size


def parse_guest(text):
    """NAME=PATH[,key=value...] -> (name, path, {key: value})."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--guest {text!r}: say NAME=/path/to/qmp.sock")
    name, rest = text.split("=", 1)
    path, *opts = rest.split(",")
    options = {}
    for o in opts:
        k, _, v = o.partition("=")
        if k not in ("ws", "floor", "target", "overhead"):
            raise argparse.ArgumentTypeError(f"--guest {name}: unknown option {k!r}")
        options[k] = v if k == "ws" else parse_size(v)
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--guest {text!r}: empty name or path")
    return name, path, options


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m blimp.policy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", required=True, type=parse_size, help="host memory for all guests (1G, 1536M)")
    ap.add_argument("--policy", choices=POLICIES, default="window")
    ap.add_argument("--guest", action="append", type=parse_guest, required=True,
                    help="NAME=QMP_SOCKET[,ws=avail][,floor=SIZE][,target=SIZE][,overhead=SIZE]")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between steps")
    ap.add_argument("--floor", type=parse_size, default=parse_size("64M"),
                    help="the least target any guest gets (default 64M)")
    ap.add_argument("--overhead", type=parse_size, default=None,
                    help="QEMU's own memory per guest, not counted against the budget "
                    "(default: measured each step from /proc/PID/smaps where possible)")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--libvirt-uri", default="qemu:///system", help="for NAME=libvirt:DOMAIN guests")
    ap.add_argument("--record", metavar="FILE",
                    help="append each step as a JSON line (targets, samples, reasons)")
    ap.add_argument("-q", "--quiet", action="store_true", help="log clamps, cuts and drops only")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("blimp.policy")
    opts = {}
    if args.policy == "static":
        opts["targets"] = {n: o["target"] for n, _, o in args.guest if "target" in o}
    record = open(args.record, "a", buffering=1) if args.record else None

    def on_step(rec):
        if record:
            record.write(record_json(rec, args.budget) + "\n")
    mgr = Manager(make_policy(args.policy, **opts), args.budget, floor=args.floor, on_step=on_step)
    for name, path, o in args.guest:
        try:
            if path.startswith("libvirt:"):
                from .libvirt_backend import LibvirtBackend
                backend = LibvirtBackend(path[len("libvirt:"):], uri=args.libvirt_uri, ws=o.get("ws"))
                backend.name = name
            else:
                backend = QMPBackend(name, path, ws=o.get("ws"))
            mgr.add(backend, floor=o.get("floor"), overhead=o.get("overhead", args.overhead))
        except GuestGone as e:
            log.warning("guest %s not added: %s", name, e)
    if not mgr.guests:
        log.error("no guest could be reached")
        return 1
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, f: stopping.append(s))
    log.info("policy %s, budget %d MiB, %d guests, every %.1f s", args.policy, args.budget >> 20,
             len(mgr.guests), args.interval)
    mgr.run(args.interval, lambda: bool(stopping) or not mgr.guests, steps=args.steps)
    log.info("stopping (%s)", "signal" if stopping else "no guests left" if not mgr.guests else "steps done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
