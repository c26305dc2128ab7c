#!/usr/bin/env python3
"""Run a ballooning scenario file: blimp.scenario, as a script (the file
format is at the top of tools/blimp/scenario.py)."""
import sys

from blimp.scenario import main

if __name__ == "__main__":
    sys.exit(main())
