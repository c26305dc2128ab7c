/*
 * swap: pages written to, and read back from, a virtio-blk device.
 *
 * One swap area, the whole device: slot s is the 4 KiB at byte s * 4096
 * (sectors 8s .. 8s+7). Which slots are free and which hold a good copy is
 * kernel/swap_slots.c; this file does the I/O and keeps both in step:
 *
 *   swap_write   a run of victim frames -> adjacent slots, one request
 *                stream (the device keeps several requests in flight);
 *                the slots become VALID only once the device said OK.
 *   swap_read    one slot -> one frame (a major fault).
 *   swap_free    the page no longer needs its copy.
 *
 * An I/O error marks the slots BAD (never used again) and is returned:
 * the caller still has the frames of a failed write, so nothing is lost.
 * A failed read is the one loss that cannot be avoided; vm.c tells the
 * workload.
 *
 * Turned on by `swap on DEV` in the shell or vm.swap=DEV at boot.
 */
#ifndef BLIMP_SWAP_H
#define BLIMP_SWAP_H

#include <stdbool.h>
#include <stdint.h>
#include "swap_slots.h"

struct swap_stats {
	int dev;                          /* -1: no swap */
	uint64_t pages_out, pages_in;     /* 4 KiB pages written / read */
	uint64_t writes, reads;           /* swap_write / swap_read calls that did I/O */
	uint64_t write_errors, read_errors, full;
	uint64_t write_ns, read_ns;       /* time spent waiting for the device */
	struct swap_slots_stats slots;
};

/* vm.swap=N at boot: called once the block devices are up. */
void swap_boot(void);

/* Use blk device `dev` as the swap area. 0, -ENODEV, -EBUSY (swap is on),
 * -EROFS,
 * -EINVAL (smaller than one slot), -ENOMEM. */
int swap_on(unsigned dev);
bool swap_active(void);

/*
 * Write the frames pfns[0..n) (n <= SWAP_SLOTS_RUN_MAX) to adjacent slots.
 * Returns how many were written (>= 1; fewer than n when free slots are
 * scattered: call again for the rest), the first slot in *first; or
 * -ENOSPC (swap full), -ENODEV (no swap), -EIO (the write failed; its slots
 * are marked bad, the frames are untouched).
 */
int swap_write(const uint64_t *pfns, unsigned n, uint64_t *first);

/* Read slot `slot` into frame `pfn`. 0, or -EIO (slot marked bad) / -EFAULT
 * (the slot holds no good copy). */
int swap_read(uint64_t slot, uint64_t pfn);

/* Read the n adjacent slots from `first` (n <= SWAP_SLOTS_RUN_MAX, each
 * holding a good copy) into frames pfns[0..n), in one request stream:
 * readahead. 0, -EFAULT (a slot without a good copy), or -EIO with no slot
 * marked: the caller reads the page it needs alone (swap_read). */
int swap_read_run(uint64_t first, const uint64_t *pfns, unsigned n);

/* The copy in `slot` is not needed any more. */
void swap_free(uint64_t slot);

/* Does `slot` hold a good copy? */
bool swap_valid(uint64_t slot);

void swap_get_stats(struct swap_stats *st);

#endif
