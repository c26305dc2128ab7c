"""fuzz_device: campaigns of blimp fuzzing the virtio-balloon device in QEMU.

blimp booted with `fuzz` drives the balloon with generated programs and prints
every operation ("fz <op>"); see fuzz/devfuzz.h and docs/fuzzing.md. This tool
runs it and judges each run:

  crash      QEMU exited on its own: abort, assertion, signal, error exit
  hang       no serial output for --hang seconds and QMP does not answer,
             or it answers and the guest goes on soon after: QEMU was busy
             inside one of its device accesses
  guest      blimp itself panicked or faulted (exit status 37 or 39),
             stopped printing while QEMU still answers, or printed a
             malformed event line (named in the detail)

  finding    a guest-side oracle fired: DEVICE_NEEDS_RESET after a valid
             program, patterns lost in memory the device was never given, a
             used entry naming no buffer in flight
  ok         none of these

A run that is not ok is kept in a findings folder: ops.log (the op log,
replayable), serial.log, qemu.stderr (QEMU's own messages), qemu.cmd (the
QEMU command line), summary.json.

  fuzz_device.py campaign --seconds 600 [--configs reporting,hint,...]
  fuzz_device.py run --seed 5 --ops 3000 --config reporting
  fuzz_device.py replay FINDING/ops.log --config reporting
  fuzz_device.py minimize FINDING/ops.log --config reporting   (writes ops.min.log)
  fuzz_device.py compare OTHER_QEMU    replay every finding of this QEMU's last
                                       campaign here and on OTHER_QEMU: which
                                       are version-specific (compare.json)

The transport and ring shape: --packed (packed virtqueues), --machine
microvm (the balloon on virtio-mmio version 2), --machine microvm
--legacy-mmio (mmio version 1), --machine microvm --packed; each names one
of the configurations below (packed, mmio, mmio-packed, mmio-legacy), which
--config and --configs also take. BLIMP_QEMU selects the QEMU.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time

from .vm import QEMU_ENV, ROOT, BlimpVM, GuestError, qemu_binary, qemu_device_has, qemu_version, qemu_version_line

# One folder per QEMU version, so campaigns on 7.2 and 10.0 can run side by
# side and be compared (`compare`).
FINDINGS = os.path.join(ROOT, "build", "fuzz", "device-findings", "qemu-" + ".".join(map(str, qemu_version())))

# Every configuration has ioeventfd=off where the device has that property
# (QEMU 10.0; 7.2's balloon has none): a kick is then handled by the vCPU
# thread inside the guest's write to the notify register, so the device has
# acted before the guest's next op and a replay sees what the run saw. With
# ioeventfd QEMU 10.0 handles the kick in its main loop, after the guest
# has gone on: the op after which blimp sees NEEDS_RESET, and so a
# program's length, varied by one between a run and its replay (7.2 under
# TCG handles it in the vCPU thread anyway).
BALLOON = "virtio-balloon-pci,id=bal0" + \
    (",ioeventfd=off" if qemu_device_has("virtio-balloon-pci", "ioeventfd") else "")
MMIO_V2 = ["-global", "virtio-mmio.force-legacy=false", "-global", "virtio-mmio.ioeventfd=off"]
MMIO_V1 = ["-global", "virtio-mmio.force-legacy=true", "-global", "virtio-mmio.ioeventfd=off"]
# QEMU configurations a campaign cycles through: (devices, extra args).
CONFIGS = {
    # reporting on, page poison offered (QEMU's default)
    "reporting": ([BALLOON + ",free-page-reporting=on"], []),
    # reporting on, page poison not offered
    "reporting-nopoison": ([BALLOON + ",free-page-reporting=on,page-poison=off"], []),
    # free page hinting in an iothread, with reporting
    "hint": ([BALLOON + ",free-page-hint=on,iothread=io1,free-page-reporting=on"],
             ["-object", "iothread,id=io1"]),
    # the modern-only device (1af4:1045), defaults otherwise
    "modern": ([BALLOON + ",disable-legacy=on,deflate-on-oom=on"], []),
    # packed virtqueues (VIRTIO_F_RING_PACKED offered; the fuzzer takes it)
    "packed": ([BALLOON + ",free-page-reporting=on,packed=on"], []),
    # virtio-mmio on microvm: version 2, version 2 with packed rings, and
    # legacy version 1 (7.2's default; set either way so both QEMUs agree).
    # ioeventfd=off for the reason given above.
    "mmio": (["virtio-balloon-device,id=bal0,free-page-reporting=on"], MMIO_V2),
    "mmio-packed": (["virtio-balloon-device,id=bal0,free-page-reporting=on,packed=on"], MMIO_V2),
    "mmio-legacy": (["virtio-balloon-device,id=bal0,free-page-reporting=on"], MMIO_V1),
}
# The machine of each configuration: q35 unless named here.
MACHINE = {"mmio": "microvm", "mmio-packed": "microvm", "mmio-legacy": "microvm"}
# How long a replay that ran every op waits for QEMU to exit before it
# calls the run "ok" (an ok replay costs this much). A device in an
# iothread acts after the guest's last command returned; otherwise QEMU's
# device work is done in the vCPU thread before the command ends.
SETTLE_S = {"sync": 0.3, "iothread": 2.0}
GUEST_EXIT = {37: "blimp panicked", 39: "blimp took an unexpected exception"}
# Known QEMU bugs: a crash whose output holds this text is that finding.
KNOWN = {"tcg_handle_interrupt": "QEMU-1 (docs/findings.md)"}


def boot(config, append, mem="256M"):
    devices, extra = CONFIGS[config]
    return BlimpVM(mem=mem, append=append, devices=devices, extra_args=extra, name=f"fuzz-{config}",
                   machine=MACHINE.get(config, "q35")).start()


def shape_config(config, machine=None, packed=False, legacy_mmio=False):
    """The configuration named by the shape flags, or `config` when none is given."""
    if legacy_mmio and machine != "microvm":
        raise ValueError("--legacy-mmio needs --machine microvm (legacy PCI is not fuzzed)")
    if machine == "microvm":
        if legacy_mmio and packed:
            raise ValueError("legacy virtio-mmio has no packed rings")
        return "mmio-legacy" if legacy_mmio else "mmio-packed" if packed else "mmio"
    if machine not in (None, "q35"):
        raise ValueError(f"unknown machine {machine} (q35 or microvm)")
    return "packed" if packed else config


def ops_of(vm):
    return [ln[3:] for ln in list(vm.lines) if ln.startswith("fz ")]


def _without_program(line):
    """"/path/qemu-system-x86_64: msg" -> "qemu-system-x86_64: msg"."""
    head, sep, rest = line.partition(": ")
    if sep and "/" in head and " " not in head:
        return os.path.basename(head) + sep + rest
    return line


def judge(vm, finished, hang):
    """Classify a run: (kind, signature, detail)."""
    status = vm.proc.poll()
    text = "\n".join(vm.lines + vm.stderr_lines)
    known = next((name for key, name in KNOWN.items() if key in text), None)
    # QEMU's own fatal messages (on its stderr, which blimp.vm keeps apart
    # from the serial port) mean a crash even if the process has not
    # finished exiting yet. Its warnings ("virtio: zero sized buffers are
    # not allowed") do not.
    err = list(vm.stderr_lines)
    qemu_fatal = any(ln.startswith(("ERROR:", "Bail out!")) for ln in err)
    if (status is not None and not finished) or qemu_fatal:
        if status in GUEST_EXIT:
            return "guest", GUEST_EXIT[status], vm.tail(30)
        fatal = [ln for ln in err if "ssertion" in ln or "Aborted" in ln or "ERROR" in ln]
        sig = (fatal or err[-1:] or [f"QEMU exit status {status}"])[0]
        # The binary's path (argv[0], which QEMU puts before its messages)
        # differs between QEMUs; the signature is the message.
        sig = _without_program(sig)
        return "crash", (known + ": " if known else "") + sig, "\n".join(err[-5:]) or vm.tail(10)
    if vm.bad_lines:
        # blimp's own output is broken: a finding in the guest, and the
        # events after it cannot be trusted to judge the device.
        return "guest", "malformed event line", vm.bad_lines[0]
    if hang == "qemu":
        return "hang", "no serial output and no QMP answer", vm.tail(10)
    if hang == "busy":
        return "hang", "QEMU busy in one device access past the hang limit (the guest then went on)", vm.tail(10)
    if hang:
        return "guest", "no serial output while QEMU still answers QMP", vm.tail(10)
    findings = [e for e in vm.events if e["ev"] == "fuzz_finding"]
    if findings:
        f = findings[0]  # events.parse_event checked its fields
        return "finding", f["kind"], f["detail"]
    return "ok", "", ""


class FuzzRefused(RuntimeError):
    """The guest would not fuzz this configuration (its fuzz_error event):
    a set-up problem to report, never a finding."""


def check_refused(vm):
    err = next((e for e in vm.events if e["ev"] == "fuzz_error"), None)
    if err:
        raise FuzzRefused(f"the guest refused to fuzz: {err['reason']}")


def wait_started(vm, timeout=60):
    """Wait until the fuzzer has the device (fuzz_device), or raise FuzzRefused."""
    deadline = time.monotonic() + timeout
    while not any(e["ev"] == "fuzz_device" for e in vm.events):
        check_refused(vm)
        if time.monotonic() > deadline or vm.proc.poll() is not None:
            raise FuzzRefused(f"the fuzzer did not start within {timeout} s")
        time.sleep(0.05)


def wait_run(vm, hang_s, done_event="fuzz_done"):
    """Wait for `done_event` while the guest makes progress. Returns (finished,
    hang): hang is "qemu" when QMP stops answering too, "guest" when QEMU
    answers but the guest printed nothing for hang_s seconds and still
    prints nothing a while later, "busy" when it then goes on (one op, a
    device access, took QEMU that long: its work ended about when QMP was
    asked, so QMP answered at once; the shapes campaign's `packed` seed 103
    on 7.2 was such a QEMU-2 run, once called a guest stall), else None."""
    last_len, last_change = 0, time.monotonic()
    while True:
        if any(e["ev"] == done_event for e in vm.events):
            return True, None
        check_refused(vm)
        if vm.bad_lines:
            return False, None  # judge() names the line
        if vm.proc.poll() is not None:
            vm.join_readers()
            return any(e["ev"] == done_event for e in vm.events), None
        n = len(vm.lines)
        if n != last_len:
            last_len, last_change = n, time.monotonic()
        elif time.monotonic() - last_change > hang_s:
            # QEMU busy in device code holds its big lock: QMP answers late
            # or not at all. Only a prompt answer blames the guest.
            t = time.monotonic()
            try:
                vm.qmp.sock.settimeout(10)
                vm.qmp.execute("query-status")
            except Exception:
                return False, "qemu"
            if time.monotonic() - t >= 2:
                return False, "qemu"
            # QMP answered at once. A guest stuck for good stays silent; one
            # that was waiting on QEMU prints again soon.
            grace = time.monotonic() + min(10.0, hang_s)
            while time.monotonic() < grace and len(vm.lines) == n and vm.proc.poll() is None:
                time.sleep(0.1)
            return False, "busy" if len(vm.lines) != n else "guest"
        time.sleep(0.2)


def save(kind, sig, detail, vm, config, ops, label, extra=None):
    folder = os.path.join(FINDINGS, f"{config}-{label}-{kind}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "ops.log"), "w") as f:
        f.write(f"# config: {config}\n# {kind}: {sig}\n" + "\n".join(ops) + "\n")
    with open(os.path.join(folder, "serial.log"), "w") as f:
        f.write("\n".join(vm.lines) + "\n")
    with open(os.path.join(folder, "qemu.stderr"), "w") as f:
        f.write("\n".join(vm.stderr_lines) + "\n")
    with open(os.path.join(folder, "qemu.cmd"), "w") as f:
        f.write(shlex.join(vm.cmd) + "\n")
    summary = {"kind": kind, "signature": sig, "detail": detail, "config": config, "ops": len(ops),
               "qemu": qemu_version_line()}
    summary.update(extra or {})
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return folder


def run_seed(seed, ops, config, hang_s=30, bad=70, keep=True):
    """One generated run; returns a result dict (and keeps a finding)."""
    vm = boot(config, f"fuzz fuzz.seed={seed} fuzz.ops={ops} fuzz.bad={bad}")
    t0 = time.monotonic()
    try:
        finished, hang = wait_run(vm, hang_s)
        kind, sig, detail = judge(vm, finished, hang)
        done = next((e for e in vm.events if e["ev"] == "fuzz_done"), {})
        log = ops_of(vm)
        res = {"seed": seed, "config": config, "kind": kind, "signature": sig, "ops": len(log),
               "seconds": round(time.monotonic() - t0, 2), "programs": done.get("programs"),
               "needs_reset_bad": done.get("needs_reset_bad"), "needs_reset_valid": done.get("needs_reset_valid")}
        if kind != "ok" and keep:
            res["folder"] = save(kind, sig, detail, vm, config, log, f"seed{seed}", res)
        return res
    finally:
        vm.close()


def replay(ops, config, hang_s=30):
    """Run an op log through `fz` commands; returns (kind, signature, vm lines)."""
    vm = boot(config, "fuzz.replay")
    try:
        wait_started(vm)
        finished, hang = True, None
        for op in ops:
            if vm.proc.poll() is not None:
                finished = False
                break
            try:
                vm.shell("fz " + op, timeout=hang_s, expect_rc=None)
            except GuestError:
                finished = False
                if vm.proc.poll() is None:
                    try:
                        vm.qmp.sock.settimeout(5)
                        vm.qmp.execute("query-status")
                        hang = "guest"
                    except Exception:
                        hang = "qemu"
                break
        if finished:
            # QEMU may still be dying: an iothread acts after the guest's
            # last command, and an abort takes a while to end the process.
            # Deciding "ok" while it was on its way out once turned the kept
            # QEMU-1 reproducer into a pass, so wait for the exit, bounded.
            try:
                vm.proc.wait(SETTLE_S["iothread" if "iothread" in " ".join(CONFIGS[config][1])
                                      else "sync"])
            except subprocess.TimeoutExpired:
                pass
            finished = vm.proc.poll() is None
        if vm.proc.poll() is not None:
            vm.join_readers()  # the crash message is in the last output
        kind, sig, _ = judge(vm, finished, hang)
        return kind, sig, list(vm.lines)
    finally:
        vm.close()


def read_log(path):
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def log_config(path):
    """The configuration a saved log names in a "# config: NAME" line, if any."""
    with open(path) as f:
        for ln in f:
            if ln.startswith("#") and "config:" in ln:
                name = ln.split("config:", 1)[1].split()[0].rstrip(":,")
                if name in CONFIGS:
                    return name
    return None


def minimize(ops, config, log=print, hang_s=10):
    """Delta debugging (ddmin) over op lines: the shortest log found that
    still gives the same kind and signature."""
    kind, sig, _ = replay(ops, config, hang_s)
    if kind == "ok":
        raise SystemExit("the log does not reproduce anything: nothing to minimize")
    log(f"reproduces: {kind}: {sig} ({len(ops)} ops)")
    tests = 0

    def same(candidate):
        nonlocal tests
        tests += 1
        k, s, _ = replay(candidate, config, hang_s)
        return k == kind and s == sig

    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        reduced = False
        for start in range(0, len(ops), chunk):
            complement = ops[:start] + ops[start + chunk:]
            if complement and same(complement):
                ops, n, reduced = complement, max(n - 1, 2), True
                log(f"  {len(ops)} ops ({tests} replays)")
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(ops), n * 2)
    return ops, kind, sig, tests


def campaign(seconds, configs, ops, seed0, hang_s, bad):
    t_end = time.monotonic() + seconds
    results, seed = [], seed0
    print(f"campaign on {qemu_version_line()}: {seconds} s over {', '.join(configs)}; {ops} ops a run, "
          f"seeds from {seed0}", flush=True)
    while time.monotonic() < t_end:
        for config in configs:
            if time.monotonic() >= t_end:
                break
            r = run_seed(seed, ops, config, hang_s, bad)
            results.append(r)
            extra = f" -> {r['folder']}" if "folder" in r else ""
            print(f"  seed {seed:6d} {config:20s} {r['kind']:8s} {r['ops']:5d} ops {r['seconds']:6.1f} s "
                  f"{r['signature']}{extra}", flush=True)
        seed += 1
    total_ops = sum(r["ops"] for r in results)
    total_s = sum(r["seconds"] for r in results)
    by_kind = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r)
    summary = {"qemu": qemu_version_line(), "runs": len(results), "ops": total_ops, "seconds": round(total_s, 1),
               "ops_per_second": round(total_ops / total_s, 1) if total_s else 0, "configs": configs,
               "by_kind": {k: len(v) for k, v in by_kind.items()},
               "signatures": sorted({f"{r['kind']}: {r['signature']}" for r in results if r["kind"] != "ok"})}
    os.makedirs(FINDINGS, exist_ok=True)
    with open(os.path.join(FINDINGS, "campaign.json"), "w") as f:
        json.dump({"summary": summary, "runs": results}, f, indent=1)
    print(f"campaign: {summary['runs']} runs, {total_ops} ops in {summary['seconds']} s of runs "
          f"({summary['ops_per_second']} ops/s); {summary['by_kind']}")
    for s in summary["signatures"]:
        print(f"  {s}")
    return summary


def replay_on(binary, log, config, hang_s=10):
    """Replay `log` on QEMU `binary` in a process of its own (the
    configurations depend on the QEMU: ioeventfd); (kind, signature)."""
    env = dict(os.environ, **{QEMU_ENV: binary})
    tool = os.path.join(ROOT, "tools", "fuzz_device.py")
    done = subprocess.run([sys.executable, tool, "replay", log, "--config", config, "--hang", str(hang_s)],
                          env=env, capture_output=True, text=True, timeout=600)
    last = (done.stdout.strip().splitlines() or ["error: no output"])[-1]
    if done.returncode == 0:
        return "ok", ""
    kind, _, sig = last.partition(": ")
    return kind, sig


def same_bug(sig_a, sig_b):
    """Do two signatures name the same failure, whatever the QEMU's source
    layout ("../../softmmu/physmem.c:3372: f: Assertion" on 7.2 is
    "system/physmem.c:3561: f: Assertion" on 10.0)?"""
    def norm(sig):
        return re.sub(r"\S+\.(?:c|h|inc):\d+: ", "", sig)
    return norm(sig_a) == norm(sig_b)


def verdict(a, b):
    """What two replays of one log, (kind, signature) here and on the other
    QEMU, say about the finding."""
    if a[0] == "ok" and b[0] == "ok":
        return "neither (not reproducible by replay)"
    if b[0] == "ok":
        return "only here"
    if a[0] == "ok":
        return "only on the other"
    if a[0] == b[0] == "crash" and not same_bug(a[1], b[1]):
        return "both, but a different failure"
    return "both"


def compare(other, log=print):
    """Every finding of this QEMU's last campaign, replayed here and on
    `other`: a finding that reproduces on one only is version-specific."""
    with open(os.path.join(FINDINGS, "campaign.json")) as f:
        runs = json.load(f)["runs"]
    here = qemu_binary()
    rows = []
    for r in runs:
        if "folder" not in r:
            continue
        ops_log = os.path.join(r["folder"], "ops.log")
        a = replay_on(here, ops_log, r["config"])
        b = replay_on(other, ops_log, r["config"])
        v = verdict(a, b)
        rows.append({"log": ops_log, "config": r["config"], "campaign": f"{r['kind']}: {r['signature']}",
                     "here": f"{a[0]}: {a[1]}" if a[0] != "ok" else "ok", "other": f"{b[0]}: {b[1]}" if b[0] != "ok"
                     else "ok", "verdict": v})
        log(f"{r['config']:12s} {v:20s} here {rows[-1]['here']}\n{'':34s}other {rows[-1]['other']}")
    out = {"here": qemu_version_line(), "other": other, "findings": rows}
    with open(os.path.join(FINDINGS, "compare.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


def main():
    try:
        _main()
    except FuzzRefused as e:
        print(f"fuzz_device: {e}", file=sys.stderr)
        sys.exit(2)


def _main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("campaign")
    c.add_argument("--seconds", type=float, default=600)
    c.add_argument("--configs", default=",".join(CONFIGS))
    c.add_argument("--ops", type=int, default=3000)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--hang", type=float, default=30)
    c.add_argument("--bad", type=int, default=70)
    r = sub.add_parser("run")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--ops", type=int, default=2000)
    r.add_argument("--config", default="reporting", choices=CONFIGS)
    r.add_argument("--bad", type=int, default=70)
    parsers = [c, r]
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("other", help="the other QEMU binary")
    for name in ("replay", "minimize"):
        p = sub.add_parser(name)
        p.add_argument("log")
        p.add_argument("--config", choices=CONFIGS,
                       help="QEMU configuration (default: the log's \"# config:\" line, else reporting)")
        p.add_argument("--hang", type=float, default=10, help="seconds without progress that count as a hang")
        parsers.append(p)
    for p in parsers:
        p.add_argument("--machine", choices=("q35", "microvm"),
                       help="microvm: the balloon on virtio-mmio (version 2 unless --legacy-mmio)")
        p.add_argument("--packed", action="store_true", help="packed virtqueues (packed=on)")
        p.add_argument("--legacy-mmio", action="store_true", help="virtio-mmio version 1 (with --machine microvm)")
    a = ap.parse_args()
    shaped = getattr(a, "machine", None) is not None or getattr(a, "packed", False) or getattr(a, "legacy_mmio", False)
    if shaped:
        try:
            shape = shape_config(None, a.machine, a.packed, a.legacy_mmio)
        except ValueError as e:
            ap.error(str(e))
        if a.cmd == "campaign":
            a.configs = shape or "reporting"
        else:
            a.config = shape or "reporting"
    if a.cmd == "campaign":
        configs = a.configs.split(",")
        unknown = [x for x in configs if x not in CONFIGS]
        if unknown:
            ap.error(f"unknown configuration {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
        campaign(a.seconds, configs, a.ops, a.seed, a.hang, a.bad)
    elif a.cmd == "run":
        print(json.dumps(run_seed(a.seed, a.ops, a.config, bad=a.bad), indent=1))
    elif a.cmd in ("replay", "minimize") and a.config is None:
        a.config = log_config(a.log) or "reporting"
    if a.cmd == "compare":
        compare(a.other)
        return
    if a.cmd == "replay":
        kind, sig, lines = replay(read_log(a.log), a.config, a.hang)
        refused = sum(1 for ln in lines if ln.startswith("fz> refused"))
        if refused:
            # A log replayed on another shape (PCI ops on mmio) does nothing.
            print(f"note: the guest refused {refused} ops (see serial output); is --config {a.config} the log's shape?",
                  file=sys.stderr)
        print(f"{kind}: {sig}" if kind != "ok" else "ok: nothing happened")
        sys.exit(0 if kind == "ok" else 1)
    elif a.cmd == "minimize":
        ops, kind, sig, tests = minimize(read_log(a.log), a.config, hang_s=a.hang)
        out = os.path.splitext(a.log)[0] + ".min.log"
        with open(out, "w") as f:
            f.write(f"# minimized by tools/fuzz_device.py ({tests} replays)\n# config: {a.config}\n"
                    f"# reproduces: {kind}: {sig}\n")
            f.write("\n".join(ops) + "\n")
        print(f"{len(ops)} ops reproduce {kind}: {sig}; written to {out}")
