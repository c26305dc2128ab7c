#!/usr/bin/env python3
"""Run blimp's device-fuzzing campaigns: blimp.fuzz_device, as a script
(usage there, and in docs/fuzzing.md)."""
import sys

from blimp.fuzz_device import main

if __name__ == "__main__":
    sys.exit(main())
