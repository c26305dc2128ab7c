"""blimp: the host side of blimp, one package for the tests, the bench, the
scenario runner and the device fuzzer.

    units        MIB, PAGE and friends
    events       the guest's `@ev {json}` lines, parsed and checked (docs/events.md)
    qmp          a small QMP client
    vm           BlimpVM: boot a guest under QEMU and drive it
    scenario     narrated ballooning experiments (tools/scenario.py runs one)
    libvirt      blimp as a libvirt domain, a private libvirtd (tests/qemu/test_libvirt.py)
    fuzz_device  device-fuzzing campaigns (tools/fuzz_device.py)
    policy       several guests under one memory budget: sampling, pluggable
                 policies, the daemon (python3 -m blimp.policy; docs/policy.md)

How it is found: scripts in tools/ import it from their own folder (Python
puts a script's folder first on sys.path); pytest gets `tools` from
pytest.ini's `pythonpath`; bench/bench.py adds tools/ itself, the one
sys.path.insert of the tree.
"""
