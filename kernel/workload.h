/*
 * workload: programs that use demand-paged memory (kernel/vm.h) the way an
 * application does, so reclaim, swap and the balloon have something real
 * to squeeze — and that check every byte they get back.
 *
 * A workload is a region of `size` bytes and an access pattern:
 *
 *   uniform   every page equally likely
 *   hotcold   hotpct% of accesses go to the first `hot` bytes, the rest to
 *             the others (each part uniform)
 *   seq       a sequential scan, over and over
 *   loop      a loop over the first `loop` pages
 *   refs      a recorded reference string of page numbers, over and over
 *
 * An access reads eight words of its page, one in each 512-byte sector,
 * and checks them against the page's version (0 for a page never written);
 * with probability write% it then writes the next version's words. So a
 * page that comes back from swap wrong, shifted by a sector, or stale, is
 * caught at its next access, named with its address, version and the word
 * found. By default a workload first writes every page once (fill=0 skips).
 *
 * Workloads run as resumable slices, not threads: a work item (kernel/work.h)
 * gives each running workload a few milliseconds of accesses, then queues
 * itself behind whatever else is waiting (the shell, kswapd, the balloon).
 * An access is the unit of progress: a major fault abandons the slice in
 * the middle of one (vm_run) and the access starts over once the page is
 * back, which is safe because its page and write choice are kept aside
 * until it completes. bench/linux/pressmem.c is the same program for Linux.
 *
 * Shell: run NAME ..., stop NAME, ps. Events: workload_start, workload
 * (once a second per workload), workload_done, workload_error, ps.
 */
#ifndef BLIMP_WORKLOAD_H
#define BLIMP_WORKLOAD_H

#include <stdint.h>

/* The value of word `i` of page `page` at `version` for seed `seed`: 0 for
 * version 0 (a page never written reads as zeros). */
uint64_t workload_pattern(uint64_t seed, uint64_t page, uint32_t version, unsigned i);

#endif
