#!/bin/sh
# QEMU-1 (docs/findings.md): QEMU 7.2 under TCG aborts when a guest answers
# free page hint requests during migration. Prints REPRODUCED or NOT REPRODUCED.
set -u
cd "$(dirname "$0")/../../.."
make -s build/blimp.elf >/dev/null || exit 2
PYTHONPATH=tools exec /usr/bin/python3 - <<'PY'
import os, sys, time, tempfile
from blimp.vm import BlimpVM
out = os.path.join(tempfile.mkdtemp(), "migration.bin")
vm = BlimpVM(mem="1024M", append="balloon.hint balloon.no_reporting",
             devices=["virtio-balloon-pci,id=bal0,free-page-hint=on,iothread=io1"],
             extra_args=["-object", "iothread,id=io1"]).start()
try:
    vm.wait_event("ready", timeout=30)
    vm.shell("alloc 512M", timeout=120)
    vm.shell("free all", timeout=120)
    try:
        vm.qmp.execute("migrate", uri=f"exec:cat > {out}")
        deadline = time.monotonic() + 60
        while vm.qmp.execute("query-migrate").get("status") not in ("completed", "failed"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except Exception:
        pass
    vm.proc.wait(10)
except Exception:
    pass
status = vm.proc.poll()
aborted = any("tcg_handle_interrupt" in line for line in vm.lines + vm.stderr_lines)
vm.close()
print(("REPRODUCED" if aborted else "NOT REPRODUCED") + f": QEMU exit status {status}")
sys.exit(0 if aborted else 1)
PY
