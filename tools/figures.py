#!/usr/bin/env python3
"""Draw the teaching figures in docs/ from this text (matplotlib only).

    /usr/bin/python3 tools/figures.py [OUTDIR]     (default: docs/; `make pictures`)

  memory-levels.png     guest virtual, guest physical and host memory, with the
                        balloon between them (README, docs/glossary.md)
  buddy.png             a buddy allocator splitting a block for one frame and
                        merging it back; what frag_permille counts (docs/allocator.md)
  inflate-sequence.png  one inflate, from QMP to `actual` (docs/inflate.md)

Each PNG carries a fingerprint of the function that drew it
("Comment: blimp-figure:HASH"); tests/host/test_pictures.py fails when a
shipped figure is older than its code.
"""
import hashlib
import inspect
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One colour per frame state, the same in every figure.
STATE = {"kernel": "#9e9e9e", "used": "#4c72b0", "free": "#ffffff", "reported": "#c7e9c0",
         "ballooned": "#dd8452", "workload": "#8172b3"}


# Text over a lifeline stays readable.
PLAIN = dict(facecolor="white", edgecolor="none", pad=0.5)


def fingerprint(fn):
    """A short hash of the drawing function's source: a changed figure, a new hash."""
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def save(fig, outdir, name, fn):
    path = os.path.join(outdir, name)
    fig.savefig(path, dpi=110, bbox_inches="tight",
                metadata={"Title": name, "Comment": f"blimp-figure:{fingerprint(fn)}"})
    plt.close(fig)
    print(f"figure: {path}")


def frames(ax, y, states, x0=0.0, w=0.5, h=0.6, labels=None):
    """A row of frames (boxes) at height y, coloured by state."""
    for i, s in enumerate(states):
        ax.add_patch(Rectangle((x0 + i * w, y), w, h, facecolor=STATE[s], edgecolor="black", lw=0.6,
                               hatch="////" if s == "ballooned" else None))
        if labels and labels[i]:
            ax.text(x0 + (i + 0.5) * w, y + h / 2, labels[i], ha="center", va="center", fontsize=6)


def arrow(ax, a, b, colour="black", style="-|>", ls="-", rad=0.0):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=9, color=colour, lw=0.9,
                                 linestyle=ls, connectionstyle=f"arc3,rad={rad}"))


def memory_levels(outdir):
    """Three levels of memory and the balloon between them."""
    fig, ax = plt.subplots(figsize=(11, 6.2))
    ax.set_xlim(-3.2, 12.5)
    ax.set_ylim(-0.6, 7.6)
    ax.axis("off")
    n = 20
    guest = ["kernel", "kernel", "used", "used", "workload", "workload", "free", "free", "reported",
             "reported", "ballooned", "ballooned", "ballooned", "ballooned", "used", "workload", "free",
             "reported", "ballooned", "ballooned"]
    # Guest physical: what the allocator manages, frame by frame.
    ax.text(-3.1, 3.3, "guest physical\n(frames, kernel/pfa.c)", fontsize=9, va="center", weight="bold")
    frames(ax, 3.0, guest)
    # Guest virtual: the direct map covers every frame at virtual == physical,
    # except ballooned ones (unmapped, so a stray use faults); workloads' pages
    # live at their own addresses, mapped on first touch.
    ax.text(-3.1, 6.0, "guest virtual\n(page tables)", fontsize=9, va="center", weight="bold")
    direct = [s if s != "ballooned" else "free" for s in guest]
    for i, s in enumerate(guest):
        if s == "ballooned":
            ax.add_patch(Rectangle((i * 0.5, 6.0), 0.5, 0.6, facecolor="white", edgecolor="grey", lw=0.6, ls=":"))
        else:
            ax.add_patch(Rectangle((i * 0.5, 6.0), 0.5, 0.6, facecolor=STATE[direct[i]], edgecolor="black",
                                   lw=0.6, alpha=0.55))
            arrow(ax, (i * 0.5 + 0.25, 5.98), (i * 0.5 + 0.25, 3.62), colour="grey")
    ax.text(0, 6.75, "direct map: virtual == physical (0 .. RAM); ballooned frames unmapped (dotted)",
            fontsize=8)
    ax.text(10.4, 6.0, "workload region\n0x5000_0000_0000 ...", fontsize=8, va="bottom")
    for j, i in enumerate([4, 5, 15]):
        ax.add_patch(Rectangle((10.4 + j * 0.5, 5.4), 0.5, 0.5, facecolor=STATE["workload"], edgecolor="black",
                               lw=0.6))
        arrow(ax, (10.65 + j * 0.5, 5.38), (i * 0.5 + 0.25, 3.62), colour=STATE["workload"], rad=0.15)
    ax.text(10.4, 5.05, "mapped on first touch\n(a page fault)", fontsize=7)
    # Host: QEMU backs guest frames with its own memory, on demand.
    ax.text(-3.1, 0.3, "host memory\n(QEMU's RSS)", fontsize=9, va="center", weight="bold")
    for i, s in enumerate(guest):
        backed = s in ("kernel", "used", "workload", "free")  # a free frame once touched: still backed
        if backed:
            ax.add_patch(Rectangle((i * 0.5, 0.0), 0.5, 0.6, facecolor="#bdbdbd", edgecolor="black", lw=0.6))
            arrow(ax, (i * 0.5 + 0.25, 2.98), (i * 0.5 + 0.25, 0.62), colour="black")
        else:
            ax.add_patch(Rectangle((i * 0.5, 0.0), 0.5, 0.6, facecolor="white", edgecolor="grey", lw=0.6, ls=":"))
    ax.text(0, -0.45, "a host page wherever the guest has touched a frame, free ones included (the host cannot "
            "tell they are free); reported and ballooned frames have none", fontsize=8)
    # The balloon, between guest and host.
    bx0, bx1 = 5.0, 7.0
    ax.add_patch(Rectangle((bx0 - 0.05, 1.9), bx1 - bx0 + 0.1, 0.7, facecolor=STATE["ballooned"], alpha=0.3,
                           edgecolor=STATE["ballooned"]))
    ax.text((bx0 + bx1) / 2, 2.25, "balloon: frame numbers\ngiven to the host", fontsize=7.5, ha="center",
            va="center")
    ax.text(10.4, 1.6, "inflate: the guest gives frames;\nQEMU discards their host pages\n"
            "(madvise DONTNEED): RSS falls.\ndeflate: the frames come back,\nzeroed on next touch.",
            fontsize=7.5, va="center")
    # Legend of states.
    for k, s in enumerate(["kernel", "used", "workload", "free", "reported", "ballooned"]):
        ax.add_patch(Rectangle((-3.1 + k * 1.9 + 2.2, 7.15), 0.3, 0.3, facecolor=STATE[s], edgecolor="black", lw=0.6,
                               hatch="////" if s == "ballooned" else None))
        ax.text(-3.1 + k * 1.9 + 2.6, 7.3, s if s != "reported" else "free, reported", fontsize=7.5, va="center")
    ax.text(-3.1, 7.3, "frame states:", fontsize=8, va="center")
    save(fig, outdir, "memory-levels.png", memory_levels)


def buddy(outdir):
    """A 16-frame block split down to one frame, and merged back when it is freed."""
    fig, ax = plt.subplots(figsize=(11, 5.8))
    ax.set_xlim(-3.4, 8.6)
    ax.set_ylim(-2.9, 5.6)
    ax.axis("off")
    w = 0.5
    rows = [  # (order, [(first frame, order, state)])
        ("one free block of order 4 (16 frames)", [(0, 4, "free")]),
        ("split: two buddies of order 3", [(0, 3, "free"), (8, 3, "free")]),
        ("split the first again: order 2", [(0, 2, "free"), (4, 2, "free"), (8, 3, "free")]),
        ("... order 1", [(0, 1, "free"), (2, 1, "free"), (4, 2, "free"), (8, 3, "free")]),
        ("... order 0: frame 0 is handed out", [(0, 0, "used"), (1, 0, "free"), (2, 1, "free"), (4, 2, "free"),
                                               (8, 3, "free")]),
    ]
    for r, (what, blocks) in enumerate(rows):
        y = 4.6 - r * 1.05
        ax.text(-3.3, y + 0.25, what, fontsize=8, va="center")
        for first, order, state in blocks:
            size = 1 << order
            ax.add_patch(Rectangle((first * w, y), size * w, 0.5, facecolor=STATE[state], edgecolor="black", lw=0.9))
            ax.text((first + size / 2) * w, y + 0.25, f"o{order}", fontsize=7, ha="center", va="center")
        if r:
            arrow(ax, (8.15, y + 1.0), (8.15, y + 0.55), colour="dimgrey")
    ax.text(8.3, 2.5, "alloc", fontsize=8, rotation=90, va="center")
    ax.text(-3.3, -0.3, "Freeing frame 0: its buddy (frame 1) is free, so they merge into order 1; that block's "
            "buddy (frames 2-3) is free:\nmerge into order 2, then 3, then 4 — the block is whole again. "
            "A block's buddy is at (first frame XOR 2^order).", fontsize=8, va="top")
    # frag_permille, on an example.
    ax.text(-3.3, -1.35, "frag_permille (the `pfa` command) = free frames NOT in free blocks of at least 2 MiB "
            "(order 9), per 1000 free frames:", fontsize=8, va="top", weight="bold")
    ax.text(-3.3, -1.85, "e.g. 10 000 free frames, of which 7 168 in fourteen free 2 MiB blocks: "
            "(10 000 - 7 168) x 1000 / 10 000 = 283.\n0 means every free frame could go back to the host as a huge page; "
            "1000 means none could (pfa_fragmentation_permille, kernel/pfa.c).", fontsize=8, va="top")
    save(fig, outdir, "buddy.png", buddy)


def inflate_sequence(outdir):
    """One inflate, as a sequence diagram: who talks to whom, in order."""
    lanes = ["host (QMP client)", "QEMU (balloon device)", "guest: interrupt", "guest: balloon_step",
             "guest: allocator"]
    x = {name: i * 2.6 for i, name in enumerate(lanes)}
    steps = [  # (from, to, text)
        (0, 1, '{"execute":"balloon","arguments":{"value":BYTES}}'),
        (1, 1, "num_pages = (RAM - BYTES) / 4096 in config space"),
        (1, 2, "configuration-change interrupt (INTx or MSI-X)"),
        (2, 3, "intx_handler: ISR read, work queued; config_changed reads num_pages"),
        (3, 4, "pfa_balloon_take: up to balloon.batch frames, 2 MiB blocks first"),
        (4, 3, "the frames, now BALLOONED"),
        (3, 3, "unmap them from the direct map (a stray use now faults)"),
        (3, 1, "their frame numbers on the inflate queue; notify (a kick)"),
        (1, 1, "madvise(DONTNEED) per page: QEMU's RSS falls"),
        (1, 2, "used-buffer interrupt"),
        (2, 3, "work queued: reap the acknowledged batch"),
        (3, 1, "write actual (pages held) in config space"),
        (3, 3, "more batches until actual == num_pages: balloon_done"),
        (0, 1, '{"execute":"query-balloon"} answers RAM - actual x 4096 bytes'),
    ]
    fig, ax = plt.subplots(figsize=(12, 7))
    top, dy = len(steps) + 0.8, 1.0
    ax.set_xlim(-1.2, x[lanes[-1]] + 1.6)
    ax.set_ylim(-0.8, top + 0.8)
    ax.axis("off")
    for name in lanes:
        ax.plot([x[name], x[name]], [-0.3, top], color="grey", lw=0.8, ls="--")
        ax.text(x[name], top + 0.25, name, ha="center", va="bottom", fontsize=8.5, weight="bold",
                bbox=dict(facecolor="#f0f0f0", edgecolor="grey"))
    for i, (a, b, text) in enumerate(steps):
        y = top - 0.7 - i * dy
        xa, xb = x[lanes[a]], x[lanes[b]]
        if a == b:  # an action within one party: a small loop
            arrow(ax, (xa, y + 0.15), (xa + 0.35, y - 0.2), rad=-0.8)
            ax.text(xa + 0.45, y - 0.02, f"{i + 1}. {text}", fontsize=7.5, va="center", bbox=PLAIN)
        else:
            arrow(ax, (xa, y), (xb, y))
            ax.text(min(xa, xb) + 0.1, y + 0.12, f"{i + 1}. {text}", fontsize=7.5, va="bottom", bbox=PLAIN)
    ax.text(-1.1, -0.7, "Steps 5-12 repeat per batch, with up to balloon.inflight batches in flight; "
            "docs/inflate.md follows each step through the code.", fontsize=8)
    save(fig, outdir, "inflate-sequence.png", inflate_sequence)


FIGURES = {"memory-levels.png": memory_levels, "buddy.png": buddy, "inflate-sequence.png": inflate_sequence}


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs")
    os.makedirs(outdir, exist_ok=True)
    for fn in FIGURES.values():
        fn(outdir)


if __name__ == "__main__":
    main()
