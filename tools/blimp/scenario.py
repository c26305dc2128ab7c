"""scenario: run a ballooning experiment written as a small text file, narrate
it, and draw what happened.

A scenario is one step per line; `#` starts a comment. Sizes take K/M/G,
durations s or ms.

    title TEXT                      the scenario's name
    boot [mem=SIZE] [machine=q35|pc] [path=pvh|uefi] [append="..."] [device=SPEC]...
         [swap=SIZE]                start the guest (once, first); swap= gives it a
                                    blank virtio-blk disk of that size as its first
                                    block device, and vm.swap=0 to use it
    say TEXT                        print a line of narration
    guest COMMAND...                type a shell command; it must succeed
    guest? COMMAND...               the same, but it may fail
    host balloon SIZE               QMP: target guest RAM — the guest keeps SIZE, the
                                    balloon takes the rest (QMP's and query-balloon's sense)
    host balloon-size SIZE          the same said the other way: the balloon holds SIZE,
                                    the guest keeps its RAM less SIZE
    host stats-poll SECONDS         QMP: ask the guest for statistics that often
    wait actual SIZE [timeout=DUR]  until query-balloon shows that guest RAM
    wait rss-below SIZE [timeout=DUR]
    wait event NAME [FIELD=VALUE]... [timeout=DUR]
                                    the next guest event line of that name (docs/events.md)
                                    after the last one waited for, with those fields
    wait running WORKLOAD [timeout=DUR]
                                    until the workload has run a whole second past its
                                    fill (its healthy rate known: thrashing is judged
                                    against it)
    wait ws WORKLOAD SIZE [timeout=DUR]
                                    until the workload's working-set estimate is within
                                    10 % of SIZE (a `workload` event from now on, after
                                    the workload's fill: during it the estimate climbs
                                    through every size)
    sleep DURATION
    expect actual SIZE | actual-above SIZE | actual-below SIZE | rss-below SIZE | rss-above SIZE
    expect event NAME [FIELD=VALUE]... | pfa-ok
    expect ws WORKLOAD SIZE         the workload's latest working-set estimate is
                                    within 10 % of SIZE, and its fill is over
    plot [pages=FIELD,...] [rates=FIELD,...] [guest=FIELD,...]
                                    the picture's extra panels: per workload, from its
                                    `workload` events, pages (ws hot resident allot
                                    swapped idle, in MiB) and rates (acc_per_s on the
                                    left axis; majflt_per_s or fault_pm on the right);
                                    guest= draws the `ws` event's ws, margin, avail
                                    (ws + margin: the guard's line) or resident on the
                                    memory panel. Thrashing episodes and suspensions
                                    are shaded on every panel.

The runner samples QEMU's RSS, the balloon size and the guest's free memory
(from its statistics, only when the guest sent fresh ones: QMP last-update)
once the guest is ready, every 100 ms, and after the
last step; when workloads run (`guest run ...`), also their resident pages
(hot set and the rest) and their pages in swap, from their latest
once-a-second `workload` events; with --plot it draws them over time with the steps marked,
and the panels a `plot` step asks for. A
malformed line is refused with its file and line number before anything
runs.

    /usr/bin/python3 tools/scenario.py tools/scenarios/tour.scn --plot build/run/timeline.png

Predictions (docs/exercises.md): `--predict 'N:expect ...'` runs that
`expect` step after the file's line N (at the end without `N:`), without
editing the file. A prediction that fails does not stop the run: the runner
says "prediction wrong" with the measured value, goes on, and exits with 1
if any prediction was wrong.

    /usr/bin/python3 tools/scenario.py tools/scenarios/reserve-floor.scn --predict '4:expect actual-above 64M'
"""
import argparse
import os
import shlex
import sys
import shutil
import tempfile
import threading
import time
from typing import Callable, NamedTuple, Optional

from .qmp import QMPError
from .units import MIB, PAGE
from .vm import BlimpVM, GuestError

SAMPLE_PERIOD_S = 0.1
BOOT_OPTIONS = {"mem", "machine", "path", "append", "device", "swap"}
DEFAULT_DEVICES = ["virtio-balloon-pci,id=bal0"]
# What a `plot` step may ask for: the `workload` event's fields in pages,
# its rates (accesses on the left axis, one kind of fault on the right), and
# the `ws` event's fields drawn with the memory.
PLOT_PAGES = {"ws": "working-set estimate", "hot": "true hot set", "resident": "resident",
              "allot": "PFF allotment", "swapped": "in swap", "idle": "idle estimate"}
PLOT_RATES = {"acc_per_s": "accesses/s", "majflt_per_s": "major faults/s",
              "fault_pm": "major faults per 1000 accesses"}
PLOT_GUEST = {"ws": "guest working set (all workloads)", "margin": "the guard's margin",
              "avail": "what the balloon may still take (avail)",
              "guard": "working set + margin (where the guard stops the balloon)",
              "resident": "guest resident pages (all workloads)"}
# Values above this in an event are unsigned wrap-arounds of a negative
# number, not data: they are left out of the picture.
WRAPPED = 1 << 62


class ScenarioError(Exception):
    """A scenario file that cannot be run, or an expectation that failed."""


def parse_size(text, where):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.lower().rstrip("b").rstrip("i")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise ScenarioError(f"{where}: '{text}' is not a size (e.g. 512M)")


def parse_duration(text, where):
    try:
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        if text.endswith("s"):
            return float(text[:-1])
        return float(text)
    except ValueError:
        raise ScenarioError(f"{where}: '{text}' is not a duration (e.g. 2s, 500ms)")


def split_options(words, where, allowed):
    """key=value words -> dict (repeatable keys become lists)."""
    opts = {}
    for w in words:
        if "=" not in w:
            raise ScenarioError(f"{where}: expected key=value, got '{w}'")
        k, v = w.split("=", 1)
        if k not in allowed:
            raise ScenarioError(f"{where}: unknown option '{k}' (known: {', '.join(sorted(allowed))})")
        opts.setdefault(k, []).append(v)
    return opts


def balloon_qom_path(devices, where):
    """The QOM path of the scenario's balloon device, from its id= in the
    boot step's device list: the runner sets and reads its statistics there."""
    for dev in devices:
        driver, *props = dev.split(",")
        if driver.startswith("virtio-balloon"):
            ids = [p[3:] for p in props if p.startswith("id=")]
            if not ids:
                raise ScenarioError(f"{where}: the balloon device needs an id ('{dev},id=NAME'): "
                                    "the runner reads the guest's statistics through it")
            return f"/machine/peripheral/{ids[-1]}"
    raise ScenarioError(f"{where}: no virtio-balloon device among {devices}")


def boot_devices(opts):
    return opts.get("device", DEFAULT_DEVICES)


# ------------------------------------------------- checking each kind of step
# Each takes the step's words after the verb and raises ScenarioError,
# naming `where`, if they cannot be run.
def check_nothing(args, where):
    pass


def check_boot(args, where):
    opts = split_options(args, where, BOOT_OPTIONS)
    balloon_qom_path(boot_devices(opts), where)
    for size in opts.get("swap", []):
        parse_size(size, where)


def check_guest(args, where):
    if not args:
        raise ScenarioError(f"{where}: 'guest' and 'guest?' need a command")


def check_host(args, where):
    if len(args) != 2 or args[0] not in ("balloon", "balloon-size", "stats-poll"):
        raise ScenarioError(f"{where}: expected 'host balloon SIZE', 'host balloon-size SIZE' "
                            "or 'host stats-poll SECONDS'")
    if args[0] in ("balloon", "balloon-size"):
        parse_size(args[1], where)


def wait_timeout(args, where):
    """The timeout=DURATION words after a wait's argument (120 s without)."""
    timeout = 120.0
    for extra in args[3 if args[0] == "ws" else 2:]:
        if extra.startswith("timeout="):
            timeout = parse_duration(extra[8:], where)
        elif args[0] != "event" or "=" not in extra:
            raise ScenarioError(f"{where}: unexpected '{extra}' (only "
                                f"{'FIELD=VALUE or ' if args[0] == 'event' else ''}timeout=DURATION)")
    return timeout


def event_fields(args, where):
    """The FIELD=VALUE words after an event's name (not timeout=), as a dict."""
    fields = {}
    for extra in args[2:]:
        if "=" not in extra:
            raise ScenarioError(f"{where}: expected FIELD=VALUE after the event's name, got '{extra}'")
        k, v = extra.split("=", 1)
        if k != "timeout":
            fields[k] = v
    return fields


def event_matches(ev, fields):
    """Whether the event has those field values, compared as the guest wrote
    them (true/false for booleans)."""
    def text(v):
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return all(k in ev and text(ev[k]) == v for k, v in fields.items())


def check_wait(args, where):
    if len(args) < 2 or args[0] not in ("actual", "rss-below", "event", "ws", "running") or \
            (args[0] == "ws" and len(args) < 3):
        raise ScenarioError(f"{where}: expected 'wait actual|rss-below SIZE', 'wait event NAME', "
                            "'wait ws WORKLOAD SIZE' or 'wait running WORKLOAD'")
    if args[0] == "ws":
        parse_size(args[2], where)
    elif args[0] not in ("event", "running"):
        parse_size(args[1], where)
    wait_timeout(args, where)


def ws_near(ev, name, pages):
    """Whether a `workload` event is NAME's, past its fill, with a
    working-set estimate within 10 % of PAGES. (During the fill the estimate
    climbs through every size: under a CPU hog working-set.scn once took
    220 MiB on the way up to 600 for the hot set's 200.)"""
    return ev["name"] == name and ev["accesses"] > 0 and abs(ev["ws"] - pages) <= 0.1 * pages


def check_sleep(args, where):
    if len(args) != 1:
        raise ScenarioError(f"{where}: expected 'sleep DURATION'")
    parse_duration(args[0], where)


SIZE_EXPECTATIONS = ("actual", "actual-above", "actual-below", "rss-below", "rss-above")


def check_expect(args, where):
    if not args or args[0] not in SIZE_EXPECTATIONS + ("event", "pfa-ok", "ws"):
        raise ScenarioError(f"{where}: expected 'expect actual|actual-above|actual-below|rss-below|rss-above SIZE', "
                            "'expect event NAME', 'expect ws WORKLOAD SIZE' or 'expect pfa-ok'")
    if args[0] in SIZE_EXPECTATIONS:
        if len(args) != 2:
            raise ScenarioError(f"{where}: 'expect {args[0]}' needs a size")
        parse_size(args[1], where)
    elif args[0] == "event":
        if len(args) < 2:
            raise ScenarioError(f"{where}: 'expect event' needs an event's name")
        event_fields(args, where)
    elif args[0] == "ws":
        if len(args) != 3:
            raise ScenarioError(f"{where}: expected 'expect ws WORKLOAD SIZE'")
        parse_size(args[2], where)


def plot_options(args, where):
    """A plot step's choices: {"pages": [...], "rates": [...], "guest": [...]}."""
    known = {"pages": PLOT_PAGES, "rates": PLOT_RATES, "guest": PLOT_GUEST}
    opts = split_options(args, where, set(known))
    chosen = {}
    for k, vals in opts.items():
        fields = [f for f in vals[-1].split(",") if f]
        for f in fields:
            if f not in known[k]:
                raise ScenarioError(f"{where}: {k}= knows no '{f}' (known: {', '.join(known[k])})")
        chosen[k] = fields
    rates = chosen.get("rates", [])
    if len([f for f in rates if f != "acc_per_s"]) > 1:
        raise ScenarioError(f"{where}: rates= draws one kind of fault on its right axis: "
                            "majflt_per_s or fault_pm, not both")
    return chosen


def check_plot(args, where):
    plot_options(args, where)


def parse_line(raw, where):
    """One line of a scenario, checked: (verb, args), or None for a blank
    line or a comment."""
    text = raw.strip()
    first = text.split(None, 1)[:1]
    if first and first[0] in STEPS and STEPS[first[0]].free_text:
        verb = first[0]
        args = [text.split(None, 1)[1] if " " in text else ""]  # free text: quotes and # kept
    else:
        line = raw.split("#", 1)[0].strip()
        if not line:
            return None
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise ScenarioError(f"{where}: {e}")
        verb, args = words[0], words[1:]
    kind = STEPS.get(verb)
    if kind is None:
        raise ScenarioError(f"{where}: unknown step '{verb}'")
    kind.check(args, where)
    return verb, args


PREDICTION = "prediction"  # how a --predict step's `where` begins


def add_predictions(steps, path, predictions):
    """The steps with each --predict 'N:expect ...' put after the file's
    line N (at the end without N:). Each is checked like a file's line; its
    `where` says it is a prediction, so the runner reports it instead of
    stopping on it."""
    with open(path) as f:
        n_lines = len(f.readlines())
    steps = list(steps)
    for i, text in enumerate(predictions, 1):
        where = f"{PREDICTION} {i} ('{text}')"
        after, _, line = text.partition(":")
        if after.strip().isdigit():
            after = int(after)
            if not 1 <= after <= n_lines:
                raise ScenarioError(f"{where}: {path} has no line {after} (it has {n_lines})")
        else:
            after, line = n_lines, text
        step = parse_line(line, where)
        if step is None or step[0] != "expect":
            raise ScenarioError(f"{where}: a prediction is an 'expect' step (expect actual-above 64M, ...)")
        # After the last of the file's steps at or before line N (theirs is
        # the `where` "PATH:LINE"), and after predictions already put there.
        at = 0
        for k, (w, _, _) in enumerate(steps):
            if not w.startswith(PREDICTION) and int(w.rsplit(":", 1)[1]) <= after:
                at = k + 1
        if not any(v == "boot" for _, v, _ in steps[:at]):
            raise ScenarioError(f"{where}: line {after} is before the 'boot' step: nothing to measure yet")
        while at < len(steps) and steps[at][0].startswith(PREDICTION):
            at += 1
        steps.insert(at, (where, step[0], step[1]))
    return steps


def parse(path):
    """The steps of a scenario file, checked: [(where, verb, args)]."""
    steps = []
    with open(path) as f:
        lines = f.readlines()
    for n, raw in enumerate(lines, 1):
        where = f"{path}:{n}"
        step = parse_line(raw, where)
        if step is None:
            continue
        verb, args = step
        kind = STEPS[verb]
        booted = any(s[1] == "boot" for s in steps)
        if verb == "boot" and booted:
            raise ScenarioError(f"{where}: a scenario boots once")
        if kind.needs_guest and not booted:
            raise ScenarioError(f"{where}: '{verb}' before 'boot'")
        steps.append((where, verb, args))
    if not any(s[1] == "boot" for s in steps):
        raise ScenarioError(f"{path}: no 'boot' step")
    return steps


class Runner:
    def __init__(self, steps, out=None):
        self.steps, self.out = steps, out
        self.vm = None
        self.balloon_path = None  # the balloon device's QOM path, from the boot step
        self.samples = []   # (t, rss, balloon, guest_free, workloads or None)
        self.marks = []     # (t, label)
        self.rows = []      # summary: (step, seconds, rss MiB, balloon MiB)
        self.ram = 0
        self.stop = threading.Event()
        self.sampler = None
        self.sampler_error = None
        self.swap_dir = None
        self.last_update = None  # the guest statistics' last-update already plotted
        self.title = "scenario"
        self.plot_opts = {}  # from the plot step
        self.events = []     # every guest event, kept when the guest is gone
        self.predictions = []  # (where, right, what was measured)

    def say(self, text):
        print(text, file=self.out or sys.stdout, flush=True)

    def now(self):
        return time.monotonic() - self.t0

    def balloon_bytes(self):
        return self.ram - self.vm.qmp.execute("query-balloon")["actual"]

    def guest_stats(self):
        return self.vm.qmp.execute("qom-get", path=self.balloon_path, property="guest-stats")

    def set_stats_polling(self, seconds):
        self.vm.qmp.execute("qom-set", path=self.balloon_path,
                            property="guest-stats-polling-interval", value=seconds)

    def sample(self):
        """Append one sample of QEMU's RSS, the balloon and the guest's free
        memory; False if QEMU is gone. Any other failure is raised."""
        try:
            rss = self.vm.rss()
            bal = self.balloon_bytes()
            free = None
            st = self.guest_stats()
            # Only a fresh answer counts: QEMU keeps showing the last
            # figures the guest sent, however old (a busy guest answers
            # late), and a line through stale ones lies.
            updated = st.get("last-update")
            if updated and updated != self.last_update:
                self.last_update = updated
                free = st["stats"].get("stat-free-memory")
        except (OSError, QMPError, GuestError):
            if self.vm.proc.poll() is not None:
                return False
            raise
        self.samples.append((self.now(), rss, bal, free if free is not None and free >= 0 else None,
                             self.workload_pages()))
        return True

    def workload_pages(self):
        """(hot resident, other resident, in swap) pages over the running (or
        suspended) workloads, from each one's latest `workload` event; None if none ran."""
        latest = {}
        for ev in self.vm.events_named("workload"):
            latest[ev["name"]] = ev
        # A suspended workload keeps its pages: they count until it stops.
        running = [e for e in latest.values() if e["state"] in ("running", "suspended")]
        if not latest:
            return None
        hot = sum(e["hot_resident"] for e in running)
        return (hot, sum(e["resident"] for e in running) - hot, sum(e["swapped"] for e in running))

    def sample_loop(self):
        try:
            while not self.stop.wait(SAMPLE_PERIOD_S):
                if not self.sample():
                    return
        except (OSError, QMPError, GuestError) as e:
            self.sampler_error = e  # raised by run(), in the main thread

    # ------------------------------------------------- running each kind of step
    # Each takes the step's checked words and returns the line to narrate
    # (None: nothing to mark on the timeline).
    def run_title(self, where, args):
        self.title = args[0]
        self.say(f"== {args[0]}")

    def run_say(self, where, args):
        self.say(f"   {args[0]}")

    def run_boot(self, where, args):
        opts = split_options(args, where, BOOT_OPTIONS)
        mem = opts.get("mem", ["512M"])[-1]
        self.ram = parse_size(mem, where)
        devices = boot_devices(opts)
        self.balloon_path = balloon_qom_path(devices, where)
        append, extra = opts.get("append", [""])[-1], []
        if "swap" in opts:
            # A blank (sparse) disk in a directory of its own, removed with it.
            self.swap_dir = tempfile.mkdtemp(prefix="blimp-swap-")
            image = os.path.join(self.swap_dir, "swap.img")
            with open(image, "wb") as f:
                f.truncate(parse_size(opts["swap"][-1], where))
            devices = ["virtio-blk-pci,drive=swap0"] + devices
            extra = ["-drive", f"if=none,id=swap0,file={image},format=raw"]
            append = f"vm.swap=0 {append}".strip()
        self.vm = BlimpVM(mem=mem, machine=opts.get("machine", ["q35"])[-1],
                          boot=opts.get("path", ["pvh"])[-1], append=append,
                          devices=devices, extra_args=extra)
        self.vm.start()
        ready = self.vm.wait_event("ready", timeout=120)
        self.t0 = time.monotonic() - ready["_host_time"]
        self.set_stats_polling(1)
        # The first point of the plot is taken here and the last in run(),
        # not left to the sampler's period: a scenario may end before its
        # first tick (reserve-floor.scn once did, 0.1 s after boot).
        self.sample()
        self.sampler = threading.Thread(target=self.sample_loop, daemon=True)
        self.sampler.start()
        return f"booted ({ready['boot']}, {ready['mem_usable'] >> 20} MiB usable)"

    def run_guest(self, where, args, must_succeed=True):
        line = " ".join(args)
        ev, out = self.vm.shell(line, timeout=600, expect_rc=None)
        rc = ev.get("rc", -1)
        if must_succeed and rc != 0:
            raise ScenarioError(f"{where}: guest command '{line}' failed ({rc}): {' / '.join(out[-3:])}")
        text = [l for l in out if l and not l.startswith("@ev") and not l.startswith("blimp>")]
        return f"guest: {line} -> {text[-1] if text else 'rc ' + str(rc)}"

    def run_guest_may_fail(self, where, args):
        return self.run_guest(where, args, must_succeed=False)

    def run_host(self, where, args):
        if args[0] in ("balloon", "balloon-size"):
            size = parse_size(args[1], where)
            if args[0] == "balloon-size":
                if size >= self.ram:
                    raise ScenarioError(f"{where}: a balloon of {size >> 20} MiB would leave the "
                                        f"{self.ram >> 20} MiB guest nothing")
                size = self.ram - size
            self.vm.qmp.execute("balloon", value=size)
            return f"host: guest RAM {size >> 20} MiB, balloon {(self.ram - size) >> 20} MiB"
        seconds = int(float(args[1]))
        before = self.guest_stats().get("last-update", 0)
        self.set_stats_polling(seconds)
        # Until the guest has answered a poll made from now on: QEMU stamps each
        # answer with last-update (seconds); a slow guest under TCG may take a while.
        limit = max(30.0, 10.0 * seconds)
        deadline = time.monotonic() + limit
        while True:
            got = self.guest_stats()
            if got.get("last-update", 0) > before:
                break
            if time.monotonic() > deadline:
                raise ScenarioError(f"{where}: the guest answered no statistics poll in {limit:.0f} s")
            time.sleep(0.1)
        st = got["stats"]
        return (f"host: guest statistics: free {st.get('stat-free-memory', -1) >> 20} MiB, "
                f"total {st.get('stat-total-memory', -1) >> 20} MiB, "
                f"huge-page allocations {st.get('stat-htlb-pgalloc', -1)}")

    def run_wait(self, where, args):
        vm, timeout = self.vm, wait_timeout(args, where)
        if args[0] == "actual":
            want = parse_size(args[1], where)
            vm.wait_actual(want, timeout)
            return f"actual is {want >> 20} MiB"
        if args[0] == "rss-below":
            limit = parse_size(args[1], where)
            rss = vm.wait_rss_below(limit, timeout)
            return f"QEMU RSS {rss >> 20} MiB (< {limit >> 20})"
        if args[0] == "running":
            # Two once-a-second events past the fill: one whole period of the
            # workload's own accesses, its best healthy rate measured (thrashing
            # is judged against it). A fixed sleep is not enough under a CPU hog.
            name = args[1]

            def past_fill(e):
                return e["name"] == name and e["accesses"] > 0
            seen = {e["t_ms"] for e in vm.events_named("workload") if past_fill(e)}

            def second_period(e):  # (the wait may hand over events already seen)
                if past_fill(e):
                    seen.add(e["t_ms"])
                return len(seen) >= 2
            ev = vm.wait_event("workload", timeout=timeout, where=second_period) if len(seen) < 2 else \
                [e for e in vm.events_named("workload") if past_fill(e)][1]
            return f"{name} runs past its fill: {ev['acc_per_s']} accesses/s"
        if args[0] == "ws":
            name, want, since = args[1], parse_size(args[2], where) // PAGE, self.now()
            ev = vm.wait_event("workload", timeout=timeout,
                               where=lambda e: e["_host_time"] >= since and ws_near(e, name, want))
            return (f"{name}'s working-set estimate is {ev['ws'] * PAGE / MIB:.0f} MiB "
                    f"(true hot set {ev['hot'] * PAGE / MIB:.0f} MiB)")
        fields = event_fields(args, where)
        ev = vm.wait_event(args[1], timeout=timeout, where=lambda e: event_matches(e, fields))
        return f"event {args[1]}: " + ", ".join(f"{k}={v}" for k, v in ev.items()
                                                 if k not in ("ev", "_host_time"))[:100]

    def run_sleep(self, where, args):
        time.sleep(parse_duration(args[0], where))

    def run_expect(self, where, args):
        vm, kind = self.vm, args[0]
        if kind in ("actual", "actual-above", "actual-below"):
            want, got = parse_size(args[1], where), vm.qmp.execute("query-balloon")["actual"]
            ok = {"actual": got == want, "actual-above": got > want, "actual-below": got < want}[kind]
            how = {"actual": "", "actual-above": "above ", "actual-below": "below "}[kind]
            msg = f"actual {got >> 20} MiB, expected {how}{want >> 20} MiB"
        elif kind in ("rss-below", "rss-above"):
            limit, rss = parse_size(args[1], where), vm.rss()
            ok = rss < limit if kind == "rss-below" else rss > limit
            msg = f"QEMU RSS {rss >> 20} MiB, expected {'below' if kind == 'rss-below' else 'above'} {limit >> 20} MiB"
        elif kind == "event":
            fields = event_fields(args, where)
            ok = any(event_matches(e, fields) for e in vm.events_named(args[1]))
            what = " ".join([args[1]] + [f"{k}={v}" for k, v in fields.items()])
            msg = f"event {what} {'seen' if ok else 'never seen'}"
        elif kind == "ws":
            name, want = args[1], parse_size(args[2], where) // PAGE
            evs = [e for e in vm.events_named("workload") if e["name"] == name]
            got = evs[-1]["ws"] if evs else None
            ok = got is not None and ws_near(evs[-1], name, want)
            msg = (f"{name}'s working-set estimate {got * PAGE / MIB:.0f} MiB, expected {want * PAGE / MIB:.0f} MiB "
                   "within 10 %" if got is not None else f"no workload event of {name}")
        else:
            check = vm.shell_event("pfa")["check"]
            ok, msg = check == "ok", f"allocator invariant check: {check}"
        if not ok:
            raise ScenarioError(f"{where}: expectation failed: {msg}")
        return f"ok: {msg}"

    def run_plot(self, where, args):
        self.plot_opts = plot_options(args, where)

    def step(self, where, verb, args):
        if where.startswith(PREDICTION):
            # A prediction is marked right or wrong; the run goes on.
            try:
                text = STEPS[verb].run(self, where, args)
                right, msg = True, text[len("ok: "):]
            except ScenarioError as e:
                right, msg = False, str(e).split("expectation failed: ", 1)[-1]
            self.predictions.append((where, right, msg))
            return f"{where}: {'right' if right else 'WRONG'}: {msg}"
        return STEPS[verb].run(self, where, args)

    def run(self):
        self.t0 = time.monotonic()
        where = None
        try:
            for where, verb, args in self.steps:
                text = self.step(where, verb, args)
                if self.vm and self.vm.bad_lines:
                    # Events are this tool's input: a malformed one is an error, not a guess.
                    raise ScenarioError(f"{where}: the guest printed a malformed event line: "
                                        f"{self.vm.bad_lines[0]}")
                if self.sampler_error:
                    raise ScenarioError(f"{where}: sampling QEMU failed: {self.sampler_error}")
                if text:
                    t = self.now()
                    rss = self.vm.rss() >> 20
                    bal = self.balloon_bytes() >> 20
                    self.say(f"[{t:6.2f}s] {text}   (QEMU RSS {rss} MiB, balloon {bal} MiB)")
                    self.marks.append((t, text.split(" ->")[0][:40]))
                    self.rows.append((text.split(" ->")[0][:48], t, rss, bal))
        except GuestError as e:
            raise ScenarioError(f"{where}: {e}" if where else str(e))
        finally:
            self.stop.set()
            try:
                if self.sampler:
                    self.sampler.join()
                    self.sample()  # the last state, however soon after the last tick
            finally:
                if self.vm:
                    self.vm.close()
                    self.events = list(self.vm.events)  # what the picture's extra panels draw
                if self.swap_dir:
                    shutil.rmtree(self.swap_dir, ignore_errors=True)
        if self.sampler_error:
            raise ScenarioError(f"sampling QEMU failed: {self.sampler_error}")

    def summary(self):
        self.say("\n step    time    QEMU RSS  balloon  what")
        for i, (step, t, rss, bal) in enumerate(self.rows):
            self.say(f"{i + 1:5d} {t:6.2f}s  {rss:6d} MiB {bal:5d} MiB  {step}")
        if self.predictions:
            right = sum(r for _, r, _ in self.predictions)
            self.say(f"\npredictions: {right} of {len(self.predictions)} right")
            for where, r, msg in self.predictions:
                self.say(f"  {'right' if r else 'WRONG'}: {where}: {msg}")

    def workload_series(self):
        """{name: [workload events]}: each workload's once-a-second events,
        in the order the workloads started; its line ends at its last one."""
        series = {}
        for ev in self.events:
            if ev["ev"] == "workload":
                series.setdefault(ev["name"], []).append(ev)
        return series

    def episodes(self):
        """[(name, kind, start, end)]: each workload's thrashing episodes and
        suspensions. A suspension runs from workload_suspend to
        workload_resume; thrashing from the `thrashing` event to
        `thrashing_end`, or to the workload's first event that no longer says
        it is thrashing (the guest clears the state of a workload it
        suspends). One still open ends with the last sample."""
        end_of_run = self.samples[-1][0] if self.samples else 0
        open_at, spans = {}, []

        def close(key, t):
            if key in open_at:
                spans.append(key + (open_at.pop(key), t))
        for ev in self.events:
            t, kind = ev["_host_time"], ev["ev"]
            if kind == "thrashing":
                open_at.setdefault((ev["name"], "thrashing"), t)
            elif kind == "thrashing_end" or (kind == "workload" and ev.get("thrashing") is False):
                close((ev["name"], "thrashing"), t)
            elif kind == "workload_suspend":
                open_at.setdefault((ev["name"], "suspended"), t)
            elif kind == "workload_resume":
                close((ev["name"], "suspended"), t)
        for key in list(open_at):
            close(key, end_of_run)
        return sorted(spans, key=lambda s: s[2])

    def plot(self, path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        if not self.samples:
            raise ScenarioError("nothing was sampled: no plot")
        work_series = self.workload_series()
        pages = self.plot_opts.get("pages", []) if work_series else []
        rates = self.plot_opts.get("rates", []) if work_series else []
        panels = 1 + bool(pages) + bool(rates)
        fig, axes = plt.subplots(panels, 1, sharex=True, squeeze=False,
                                 figsize=(11, 5.5 + 3.3 * (panels - 1)),
                                 gridspec_kw={"height_ratios": [5.5] + [3.3] * (panels - 1)})
        axes = [a[0] for a in axes]
        self.plot_memory(axes[0])
        # Workload colours apart from the memory panel's (C0-C5).
        palette = ["teal", "darkmagenta", "darkgoldenrod", "navy", "olivedrab"]
        colours = {name: palette[i % len(palette)] for i, name in enumerate(work_series)}
        rest = axes[1:]
        if pages:
            self.plot_pages(rest.pop(0), work_series, pages, colours)
        if rates:
            self.plot_rates(rest.pop(0), work_series, rates, colours)
        spans = self.episodes()
        shades = {"thrashing": dict(color="red", alpha=0.10), "suspended": dict(color="grey", alpha=0.18, hatch="//")}
        thrash = [e for e in self.events if e["ev"] == "thrashing"]
        for n, ax in enumerate(axes):
            for name, kind, t0, t1 in spans:
                ax.axvspan(t0, t1, lw=0, **shades[kind])
            for e in thrash:  # the moment the guest said so, however short the episode
                ax.axvline(e["_host_time"], color="red", lw=1, ls="--", alpha=0.7)
            # The step numbers on every panel, each in the highest row where it
            # overlaps no other (rows in the panel's height: the smaller panels
            # need wider rows); the key under the picture names them.
            row = 0.04 if n == 0 else 0.07
            for i, (mt, rank) in enumerate(zip((m[0] for m in self.marks), mark_rows(self.marks, ax))):
                ax.axvline(mt, color="grey", lw=0.6, alpha=0.5)
                ax.text(mt, 0.99 - row * rank, str(i + 1), fontsize=7, color="dimgrey",
                        ha="center", va="top", transform=ax.get_xaxis_transform())
        if spans:
            # One legend entry per kind of span, named after its workloads.
            from matplotlib.patches import Patch
            kinds = {}
            for name, kind, _, _ in spans:
                kinds.setdefault(kind, [])
                if name not in kinds[kind]:
                    kinds[kind].append(name)
            what = {"thrashing": "thrashing (event thrashing .. thrashing_end)",
                    "suspended": "suspended by load control (workload_suspend .. workload_resume)"}
            handles = [Patch(**shades[k], label=f"{', '.join(names)}: {what[k]}") for k, names in kinds.items()]
            if thrash:
                from matplotlib.lines import Line2D
                names = ", ".join(sorted({e["name"] for e in thrash}))
                handles.append(Line2D([], [], color="red", lw=1, ls="--", label=f"event thrashing ({names})"))
            lines, _ = axes[0].get_legend_handles_labels()
            axes[0].legend(handles=lines + handles, **LEGEND_OUTSIDE, fontsize=8)
        axes[-1].set_xlabel("seconds since boot")
        axes[0].set_title(self.title + "  (numbers: the steps, named below)", fontsize=10)
        self.plot_step_key(axes[-1])
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # The steps' fingerprint in the PNG: a test tells a shipped picture
        # drawn from another version of its scenario (tests/host/test_pictures.py).
        fig.savefig(path, dpi=110, bbox_inches="tight",
                    metadata={"Title": self.title, "Comment": f"blimp-steps:{steps_fingerprint(self.steps)}"})
        plt.close(fig)
        self.say(f"\npicture: {path}")

    def plot_memory(self, ax):
        """QEMU's RSS, the balloon, the guest's free memory and the
        workloads' pages (summed), in MiB; and the `ws` event's fields the
        plot step asked for."""
        t = [s[0] for s in self.samples]
        ax.plot(t, [s[1] / MIB for s in self.samples], label="QEMU RSS (host memory used)", lw=2)
        ax.plot(t, [s[2] / MIB for s in self.samples], label="balloon size", lw=2)
        free = [(s[0], s[3] / MIB) for s in self.samples if s[3] is not None]
        if free:
            ax.plot([f[0] for f in free], [f[1] for f in free],
                    label="guest free memory (guest's statistics, each fresh answer a dot)",
                    lw=1, ls="--", marker="o", ms=3)
        work = [(s[0], s[4]) for s in self.samples if s[4] is not None]
        if work:
            tw = [w[0] for w in work]
            mib = PAGE / MIB
            ax.plot(tw, [w[1][0] * mib for w in work], label="workloads: hot set resident", lw=1.5)
            ax.plot(tw, [w[1][1] * mib for w in work], label="workloads: other pages resident", lw=1.5)
            ax.plot(tw, [w[1][2] * mib for w in work], label="workloads: pages in swap", lw=1.5, ls=":")
        rounds = [e for e in self.events if e["ev"] == "ws" and "margin" in e]
        styles = {"ws": "-", "margin": ":", "avail": "-.", "guard": "--", "resident": (0, (1, 1))}
        for i, field in enumerate(self.plot_opts.get("guest", [])):
            pts = [(e["_host_time"], (e["ws"] + e["margin"]) if field == "guard" else e[field]) for e in rounds]
            pts = [(x, y * PAGE / MIB) for x, y in pts if y < WRAPPED]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color="black", lw=1.2, ls=styles[field],
                        label=f"{PLOT_GUEST[field]} (ws events)")
        ax.set_ylabel("MiB")
        ax.legend(**LEGEND_OUTSIDE, fontsize=8)

    def plot_step_key(self, ax):
        """Under the bottom panel, the step each number stands for, in columns."""
        if not self.marks:
            return
        # Three columns across the panel and its legend (the panel is about
        # 60 % of the figure's width): 40 characters a label fit in each.
        cols = 3
        per_col = -(-len(self.marks) // cols)
        for c in range(cols):
            chunk = list(enumerate(self.marks))[c * per_col:(c + 1) * per_col]
            text = "\n".join(f"{i + 1:2d}  {label}" for i, (_, label) in chunk)
            ax.text(0.6 * c, -0.16, text, transform=ax.transAxes, va="top", ha="left",
                    fontsize=7, family="monospace", color="dimgrey")

    def plot_pages(self, ax, series, fields, colours):
        """Each workload's pages the plot step asked for, in MiB: one colour
        a workload, one line style a field."""
        styles = {"ws": "-", "hot": "--", "resident": "-", "allot": ":", "swapped": "-.", "idle": (0, (1, 1))}
        widths = {"ws": 2.2, "resident": 1.0}
        for name, evs in series.items():
            for field in fields:
                ax.plot(*with_gaps(evs, lambda e: e[field] * PAGE / MIB), color=colours[name], ls=styles[field],
                        lw=widths.get(field, 1.5), alpha=0.55 if field == "resident" else 1,
                        marker="." if field == "ws" else None, ms=4,
                        label=f"{name}: {PLOT_PAGES[field]}")
        if "hot" in fields:
            # Where each `set` put the hot set: the line shows its size, not its place.
            for ev in self.events:
                if ev["ev"] in ("workload_start", "workload_set") and ev["name"] in series and ev["hot"]:
                    at, size = ev["hot_at"] * PAGE / MIB, ev["hot"] * PAGE / MIB
                    ax.annotate(f"{ev['name']}: hot set {at:.0f}..{at + size:.0f} MiB", (ev["_host_time"], size),
                                xytext=(4, -12), textcoords="offset points", fontsize=7,
                                color=colours[ev["name"]])
        ax.set_ylabel("MiB (per workload)")
        ax.set_ylim(bottom=0)
        ax.legend(**LEGEND_OUTSIDE, fontsize=7)

    def plot_rates(self, ax, series, fields, colours):
        """Each workload's accesses a second on the left axis, and the kind of
        fault the plot step asked for on the right, once a second."""
        right = [f for f in fields if f != "acc_per_s"]
        lines = []
        if "acc_per_s" in fields:
            for name, evs in series.items():
                lines += ax.plot(*with_gaps(evs, lambda e: e["acc_per_s"] / 1000),
                                 color=colours[name], lw=1.8, marker=".", ms=4,
                                 label=f"{name}: accesses/s (left)")
            ax.set_ylabel("thousand accesses/s")
            ax.set_ylim(bottom=0)
        if right:
            field = right[0]
            ax2 = ax.twinx() if "acc_per_s" in fields else ax
            for name, evs in series.items():
                # A ratio to accesses means nothing without accesses (a suspended workload).
                lines += ax2.plot(*with_gaps(evs, lambda e: e[field] if field != "fault_pm" or e["acc_per_s"]
                                             else float("nan")),
                                  color=colours[name], lw=1.2, ls="--",
                                  label=f"{name}: {PLOT_RATES[field]}" + (" (right)" if ax2 is not ax else ""))
            ax2.set_ylabel(PLOT_RATES[field])
            ax2.set_ylim(bottom=0)
        ax2 = ax2 if right else ax
        # Outside, right of the twin's axis labels.
        ax2.legend(handles=lines, loc="upper left", bbox_to_anchor=(1.12 if ax2 is not ax else 1.01, 1),
                   borderaxespad=0, fontsize=7)


# Legends beside the panel, never on the data.
LEGEND_OUTSIDE = dict(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def mark_rows(marks, ax, rows=6):
    """For each step mark, the row (0 = top) its number goes in: the highest
    row whose last number is far enough to the left not to overlap it."""
    x0, x1 = ax.get_xlim()
    gap = 0.018 * (x1 - x0)  # about two digits at fontsize 7 on an 11-inch panel
    last = [float("-inf")] * rows
    out = []
    for t, _ in marks:
        free = [r for r in range(rows) if t - last[r] >= gap]
        r = free[0] if free else min(range(rows), key=lambda k: last[k])
        last[r] = t
        out.append(r)
    return out


def steps_fingerprint(steps):
    """A short hash of what a scenario does (its steps, not its comments or
    line numbers): the same for every run of the same scenario."""
    import hashlib
    text = "\n".join(" ".join([verb] + list(args)) for _, verb, args in steps)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def with_gaps(evs, value, gap_s=2.5):
    """(times, values) of once-a-second events with a break (NaN) where
    none came for more than gap_s (a guest too busy to report): a line is
    drawn only between readings, never across a silence."""
    t, v, last = [], [], None
    for e in evs:
        if last is not None and e["_host_time"] - last > gap_s:
            t.append(last + 0.5)
            v.append(float("nan"))
        t.append(e["_host_time"])
        v.append(value(e))
        last = e["_host_time"]
    return t, v


class StepKind(NamedTuple):
    """One kind of step: how its words are checked before anything runs, and
    how it runs. A free-text step keeps its line whole (quotes and #)."""
    check: Callable[[list, str], None]
    run: Callable[[Runner, str, list], Optional[str]]
    needs_guest: bool = True
    free_text: bool = False


STEPS = {
    "title": StepKind(check_nothing, Runner.run_title, needs_guest=False, free_text=True),
    "say": StepKind(check_nothing, Runner.run_say, needs_guest=False, free_text=True),
    "boot": StepKind(check_boot, Runner.run_boot, needs_guest=False),
    "guest": StepKind(check_guest, Runner.run_guest),
    "guest?": StepKind(check_guest, Runner.run_guest_may_fail),
    "host": StepKind(check_host, Runner.run_host),
    "wait": StepKind(check_wait, Runner.run_wait),
    "sleep": StepKind(check_sleep, Runner.run_sleep),
    "expect": StepKind(check_expect, Runner.run_expect),
    "plot": StepKind(check_plot, Runner.run_plot, needs_guest=False),
}


def main():
    ap = argparse.ArgumentParser(description="Run a blimp ballooning scenario.")
    ap.add_argument("scenario")
    ap.add_argument("--plot", help="write the timeline picture here (PNG)")
    ap.add_argument("--predict", action="append", default=[], metavar="[N:]EXPECT",
                    help="an 'expect' step to run after the file's line N (at the end without N:), "
                         "reported right or wrong without stopping the run (repeatable)")
    args = ap.parse_args()
    try:
        runner = Runner(add_predictions(parse(args.scenario), args.scenario, args.predict))
        runner.run()
        runner.summary()
        if args.plot:
            runner.plot(args.plot)
    except (ScenarioError, FileNotFoundError) as e:
        print(f"scenario: {e}", file=sys.stderr)
        return 1
    return 0 if all(r for _, r, _ in runner.predictions) else 1
