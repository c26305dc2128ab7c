"""boot_blocks: what QEMU translates to boot blimp on microvm, by function.

Under TCG most of microvm's boot to `ready` is QEMU translating code that
runs once (docs/clock.md): a block costs about 10 us the first time and
next to nothing after. Wall and even CPU times spread 2-10x on a loaded
host; the blocks translated do not. This boots blimp once on microvm with
the balloon over mmio, as bench.py's microvm row does, with QEMU's
`-d in_asm` log, and counts the blocks and guest instructions from reset
to the first block of shell_start (the first function run after the
`ready` event), by the ELF's function symbols; qboot's show as addresses
(`?f0000`), and the floor runs them too.

    PYTHONPATH=tools /usr/bin/python3 bench/boot_blocks.py [--kernel build/blimp.elf] [--top 40]
"""
import argparse
import bisect
import collections
import os
import re
import subprocess
import tempfile

from blimp.vm import KERNEL, BlimpVM

STOP_AT = "shell_start"
IN_ASM_LINE = re.compile(r"^0x([0-9a-f]+):")


def function_symbols(kernel):
    """(address, name) of the ELF's functions, sorted."""
    out = subprocess.run(["nm", "-n", kernel], capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    return syms


def count_blocks(log, syms):
    """Blocks and instructions per function, in the order first translated,
    up to the first block of STOP_AT; and whether STOP_AT was reached."""
    addrs = [a for a, _ in syms]

    def name(addr):
        i = bisect.bisect_right(addrs, addr) - 1
        return syms[i][1] if i >= 0 and addr - syms[i][0] < 0x10000 else f"?{addr >> 12 << 12:x}"

    blocks, insns = collections.Counter(), collections.Counter()
    current, new_block = None, False
    with open(log, errors="replace") as f:
        for line in f:
            if line.startswith("IN:"):
                new_block = True
                continue
            m = IN_ASM_LINE.match(line)
            if not m:
                continue
            if new_block:
                current, new_block = name(int(m.group(1), 16)), False
                if current == STOP_AT:
                    return blocks, insns, True
                blocks[current] += 1
            insns[current] += 1
    return blocks, insns, False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default=KERNEL)
    ap.add_argument("--top", type=int, default=40, help="functions listed, most blocks first")
    ap.add_argument("--ram-mib", type=int, default=2048)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="boot-blocks-") as tmp:
        log = os.path.join(tmp, "in_asm.log")
        with BlimpVM(machine="microvm", mem=f"{args.ram_mib}M", devices=["virtio-balloon-device"],
                     kernel=args.kernel, name="boot-blocks", extra_args=["-d", "in_asm", "-D", log]) as vm:
            vm.wait_event("ready", timeout=120)
            vm.wait_for(lambda: STOP_AT.encode() in open(log, "rb").read(), 30, f"{STOP_AT} in the log")
        blocks, insns, reached = count_blocks(log, function_symbols(args.kernel))
    if not reached:
        raise SystemExit(f"{STOP_AT} was never translated: is {args.kernel} the kernel that ran?")
    print(f"blocks translated from reset to ready: {sum(blocks.values())}, "
          f"guest instructions {sum(insns.values())}")
    for fn, n in blocks.most_common(args.top):
        print(f"{n:6d} {insns[fn]:7d}  {fn}")


if __name__ == "__main__":
    main()
