"""Host tests of the Python tools (no QEMU). A package, so that its test_policy.py
and tests/qemu/test_policy.py can be collected in one pytest run."""
