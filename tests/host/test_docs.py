"""The docs name files, functions and events; these tests fail when the code moves on.

A reader follows docs/*.md and the README into the code ("`balloon_step`
in `balloon_core.c`"): every file they name must exist, every function they
name must be in the file they say, and every event the kernel can emit must
be in docs/events.md (and every event documented there must be emitted).
Host-only, no QEMU: it reads the tree as git has it.
"""
import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
CODE_SUFFIXES = (".c", ".h", ".S", ".py", ".ld", ".mk", ".sh", ".scn")

# Files the docs name that are not ours, or that were renamed and are named in a
# history on purpose (findings.md and fuzzing.md tell what happened, when).
NOT_OURS = {
    "kalloc.c",                                       # xv6's allocator, for comparison
    "include/standard-headers/linux/virtio_balloon.h",  # QEMU's tree
    "hw/virtio/virtio-balloon.c", "hw/virtio/virtio.c", "virtio.c", "virtio-pci.c", "hw/i386/microvm.c",
    "system/physmem.c",                               # QEMU's tree
    "tools/blimpvm.py",                               # history: now tools/blimp/vm.py
    "balloon_report.c",                               # history: split in balloon_stats.c and others
}

# How the kernel emits an event: the name is the first string literal.
EMITTERS = r"\b(?:event_emit|balloon_event|wl_event)\(\s*(?:\w+\s*,\s*)?\"([a-z_0-9]+)\""


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.split() if (ROOT / f).is_file()]


FILES = tracked()
CODE = {f: (ROOT / f).read_text(errors="replace") for f in FILES
        if f.endswith(CODE_SUFFIXES) or f == "Makefile"}
ALL_CODE = "\n".join(CODE.values())


def resolve(name):
    """Tracked files a doc may mean by NAME: the path itself, or any path ending in /NAME."""
    return [f for f in FILES if f == name or f.endswith("/" + name)]


def doc_text(doc):
    return re.sub(r"\s+", " ", doc.read_text())  # a name may be split across lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_file_a_doc_names_exists(doc):
    missing = []
    for m in re.finditer(r"`([\w./-]+\.(?:c|h|S|py|scn|mk|sh|ld))`", doc_text(doc)):
        name = m.group(1)
        if name not in NOT_OURS and not resolve(name):
            missing.append(name)
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {sorted(set(missing))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_function_a_doc_names_exists(doc):
    missing = [m.group(1) for m in re.finditer(r"`([A-Za-z_]\w*)\(\)`", doc_text(doc))
               if not re.search(r"\b" + re.escape(m.group(1)) + r"\b", ALL_CODE)]
    assert not missing, f"{doc.relative_to(ROOT)} names functions no source has: {sorted(set(missing))}"


# "`fn` in `file.c`", "`file.c`, `fn`", "`fn` (`file.c`": the doc says where fn is.
PLACED = [r"`(?P<fn>\w+)(?:\(\))?` in `(?P<file>[\w./-]+\.[chS])`",
          r"`(?P<file>[\w./-]+\.[chS])`, `(?P<fn>\w+)(?:\(\))?`",
          r"`(?P<fn>\w+)(?:\(\))?` \(`(?P<file>[\w./-]+\.[chS])`"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_a_function_is_in_the_file_the_doc_says(doc):
    text, wrong = doc_text(doc), []
    for pattern in PLACED:
        for m in re.finditer(pattern, text):
            fn, name = m.group("fn"), m.group("file")
            files = resolve(name)
            if not files or name in NOT_OURS:
                continue  # a missing file is the test above's finding
            if not any(re.search(r"\b" + re.escape(fn) + r"\b", CODE.get(f, "")) for f in files):
                holders = sorted(f for f, t in CODE.items() if f.endswith((".c", ".h", ".S"))
                                 and re.search(r"\b" + re.escape(fn) + r"\s*\(", t))
                wrong.append(f"`{fn}` is not in {name}" + (f" (it is in {', '.join(holders)})" if holders else ""))
    assert not wrong, f"{doc.relative_to(ROOT)}: " + "; ".join(wrong)


def emitted_events():
    events = {}
    for f, text in CODE.items():
        if f.endswith(".c") and not f.startswith("tests/"):
            for m in re.finditer(EMITTERS, text):
                events.setdefault(m.group(1), f)
    return events


def documented_events():
    text = (ROOT / "docs" / "events.md").read_text()
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, re.M))


def test_every_event_the_kernel_emits_is_in_events_md():
    emitted, documented = emitted_events(), documented_events()
    assert len(emitted) > 40, f"the scan found only {len(emitted)} events: has the emitting API changed? ({EMITTERS})"
    missing = {e: f for e, f in emitted.items() if e not in documented}
    assert not missing, f"events emitted but not in docs/events.md: {missing}"


def test_every_event_in_events_md_is_emitted():
    stale = documented_events() - set(emitted_events())
    assert not stale, f"docs/events.md documents events no code emits: {sorted(stale)}"
