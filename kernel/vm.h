/*
 * vm: virtual memory that is not the direct map — regions backed on demand
 * by frames from the page-frame allocator, given up under pressure to swap
 * (kernel/swap.h), and brought back on the next touch.
 *
 * A region (struct vm_area) is a window of virtual addresses at
 * VM_VIRT_BASE + id * VM_AREA_SPAN. Nothing in it is mapped at first:
 *
 *   first touch          a hardware page fault (#PF). The handler takes a
 *                        zeroed frame, maps it, and the CPU retries the
 *                        instruction: a minor fault, done on the fault's
 *                        own stack when a frame is to be had at once.
 *   touch of a page      a major fault: the page must be read back from
 *   that went to swap    swap, which waits for the disk. The handler does
 *                        not wait there (interrupts off, on the page-fault
 *                        stack): it makes the faulting code jump out to
 *                        vm_run, which reads the page with interrupts on
 *                        and runs the code again. So does a minor fault
 *                        that must first reclaim memory.
 *   reclaim              the enhanced second-chance clock (kernel/replace.c,
 *                        or FIFO / plain clock with vm.policy=) picks a
 *                        victim by the Accessed and Dirty bits of its
 *                        page-table entry. A clean page whose copy in swap
 *                        is still good is dropped without I/O; a dirty one
 *                        is written (clustered with its neighbours in the
 *                        victim list) and then its frame is freed.
 *
 * Reclaim runs when free memory falls below a low watermark, in a work item
 * until it is back above a high one (like Linux's kswapd); synchronously
 * when a fault finds no frame; and when the balloon would stall at its
 * reserve floor (balloon.reclaim=off turns that off). docs/paging.md follows
 * one page through all of it, by file and function.
 *
 * The code that touches a region runs inside vm_run, and must be
 * restartable: a major fault abandons it mid-way (longjmp) and calls it
 * again from the top once the page is back, so it must keep its progress in
 * memory it commits only after each access completes.
 *
 * Single CPU, main loop only (the fault handler runs synchronously inside
 * vm_run's code, never concurrently with the rest of the kernel).
 */
#ifndef BLIMP_VM_H
#define BLIMP_VM_H

#include <stdbool.h>
#include <stdint.h>

#define VM_VIRT_BASE 0x0000500000000000ULL
#define VM_AREA_SPAN (64ULL << 30)        /* 64 GiB of addresses per region */
#define VM_AREAS 8

struct vm_page;

struct vm_area {
	unsigned id;
	bool used;
	uint64_t base, npages;
	struct vm_page *page;              /* npages entries (vm.c) */
	uint64_t resident;                 /* pages mapped now */
	uint64_t swapped;                  /* pages whose only copy is in swap */
	uint64_t minflt, majflt;           /* faults on this region */
	uint64_t lost;                     /* pages whose swap copy could not be read */
	/* The working-set estimate (kernel/vm_age.c), from the aging hand's
	 * last full round: resident pages used within vm.ws_ms, and unused
	 * for vm.idle_ms or more; ws_rounds counts the rounds seen. */
	uint64_t ws, idle, ws_rounds;
	uint64_t ws_acc, idle_acc;         /* the round in progress */
	uint64_t maj_per_s;                /* major faults per second over the last round */
	uint64_t round_majflt;             /* majflt when that round began */
	/* Page-fault-frequency allotment (kernel/pff.h), set by the region's
	 * owner: pages reclaim leaves it while other regions have more than
	 * theirs. 0: none (reclaim takes from it like from any other). */
	uint64_t allot;
	uint64_t ra_next;                  /* readahead: the page after the last one read */
	unsigned ra_window;                /* readahead: pages to read at the next fault */
};

struct vm_stats {
	uint64_t minflt, majflt;           /* all regions, since boot */
	uint64_t swap_in, swap_out;        /* pages read from / written to swap */
	uint64_t resident;                 /* pages of all regions mapped now */
	uint64_t escapes;                  /* faults finished outside the handler */
	uint64_t run_ns;                   /* time spent in vm_run: the workloads' virtual time */
	uint64_t scanned, freed, written, dropped_clean; /* reclaim, pages */
	uint64_t dropped_cache;            /* clean page-cache pages dropped */
	uint64_t by_class[4];              /* victims by (R,M): index R*2+M */
	uint64_t kswapd_runs, direct_runs, balloon_runs;
	uint64_t write_failures, swap_full, unswappable;
	uint64_t low, high;                /* watermarks, frames */
	uint64_t readahead;                /* pages read with a major fault's, not faulted */
	uint64_t aged, age_ns;             /* Accessed bits the aging hand cleared; its time */
	uint64_t age_skipped;              /* its ticks skipped: the workloads had not run */
	uint64_t ws, idle;                 /* all regions, at the last full round */
	uint64_t spared;                   /* victims left to a region at its allotment */
};

enum vm_reclaim_why { VM_RECLAIM_KSWAPD, VM_RECLAIM_DIRECT, VM_RECLAIM_BALLOON };

/* A region of `npages` pages, nothing resident. 0 and *out, or -EINVAL (0
 * pages, more than VM_AREA_SPAN), -ENOSPC (VM_AREAS in use), -ENOMEM. */
int vm_area_create(uint64_t npages, struct vm_area **out);

/* Unmap and free every frame and swap slot of the region, and forget it. */
void vm_area_destroy(struct vm_area *a);

/* Address of page `vpn` of the region. */
static inline volatile uint64_t *vm_page_addr(const struct vm_area *a, uint64_t vpn)
{
	return (volatile uint64_t *)(uintptr_t)(a->base + (vpn << 12));
}

/*
 * Run body(ctx), which touches region `a` (and only it), taking its page
 * faults. A fault that needs I/O or reclaim abandons body, is resolved here
 * and body is called again (see the top). Returns body's value, or the
 * error of a fault that could not be resolved: -ENOMEM (no frame: memory
 * and swap full), -EIO (the page's copy in swap could not be read: its
 * contents are lost, said on the console with the page's address).
 */
int vm_run(struct vm_area *a, int (*body)(void *ctx), void *ctx);

/* Is page `vpn` in swap only (its next touch a major fault)? */
bool vm_page_in_swap(const struct vm_area *a, uint64_t vpn);

/* Pages of [first, first + count) resident now. */
uint64_t vm_resident_in(const struct vm_area *a, uint64_t first, uint64_t count);

/* Free up to `want` frames: clean page cache first, then cold anonymous
 * pages to swap. Returns how many frames went back to the allocator. */
uint64_t vm_reclaim(uint64_t want, enum vm_reclaim_why why);

/*
 * What could be taken from the guest without hurting a working set, in
 * pages: free memory, the clean page cache, and every region's resident
 * pages outside its working set (all of a region's pages until its
 * estimate has seen a whole window tau), less a margin of vm.ws_margin %
 * (default 10) of the working sets (the estimate is late by up to a round)
 * and less the reserve floor (the kernel's: the balloon never takes it).
 * The balloon's AVAIL statistic, and the working-set guard of its inflate.
 */
struct vm_avail {
	uint64_t free, cache, resident, ws, margin, avail;
};
void vm_avail(struct vm_avail *out);

/* Has the region's working-set estimate seen a whole window tau
 * (vm.ws_ms)? Before, every resident page of it may be in its working set. */
bool vm_ws_known(const struct vm_area *a);

void vm_get_stats(struct vm_stats *st);

/* The aging hand's settings and its last round's cost (kernel/vm_age.c). */
struct vm_ws_params {
	uint64_t round_ms, tau_ms, idle_ms;
	uint64_t rounds, round_pages, round_ns;
};
void vm_ws_params(struct vm_ws_params *p);
/* The `ws` event: the guest's and each region's estimate (once a round
 * while anything is resident, and from the shell's `ws`). */
void vm_ws_emit(void);

#endif
