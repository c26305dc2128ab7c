"""units: the sizes every host tool counts in."""
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
PAGE = 4096   # the guest's page, and the balloon's (VIRTIO_BALLOON_PFN_SHIFT)
