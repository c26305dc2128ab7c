/*
 * vm: demand-paged regions, their page faults, and reclaim (see vm.h).
 *
 * Every resident page of every region is in one replacement vm_ring
 * (kernel/replace.c), named by its region and page number; the ring's
 * policy reads the Accessed and Dirty bits from the page-table entry
 * through ring_bits(). A page's other state is its struct vm_page: where
 * its copy in swap is, if it has one.
 *
 *   resident, no swap copy         rslot set, swap 0
 *   resident, copy in swap         rslot set, swap = slot + 1: if the PTE is
 *                                  clean the copy is good, and reclaim may
 *                                  drop the frame without writing
 *   in swap only                   rslot NONE, swap = slot + 1
 *   never touched (or lost)        rslot NONE, swap 0 (LOST flag if a read
 *                                  of its copy failed)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vm.h"
#include "vm_internal.h"
#include "addr.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "mm.h"
#include "pagecache.h"
#include "parse.h"
#include "replace.h"
#include "shell.h"
#include "swap.h"
#include "work.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/paging.h"

CMDLINE_OPTION(vm_policy, "vm.policy", "page replacement: esc (enhanced second chance, default), clock or fifo");
CMDLINE_OPTION(vm_low, "vm.low", "free memory below which reclaim starts (default: 1.25 x sqrt(16 x memory in KiB) KiB, Linux's low mark)");
CMDLINE_OPTION(vm_readahead, "vm.readahead",
	       "pages read together on a major fault, the faulting one and the next ones in swap (default 8, 1: off)");
CMDLINE_OPTION(vm_high, "vm.high", "free memory at which background reclaim stops (default: 1.2 x vm.low)");

#define RECLAIM_DIRECT_BATCH 64   /* pages a faulting workload frees itself when memory is low */
#define KSWAPD_BATCH 256          /* pages per kswapd work run: the shell gets its turns */
/* The balloon asks for room a chunk at a time: between chunks the workloads
 * run and mark again what they use, so the clock's Accessed bits mean
 * something when the next chunk is chosen. */
#define BALLOON_CHUNK 1024


struct vm_area vm_areas[VM_AREAS];
struct replace vm_ring;
struct vm_stats vm_st;
static bool ready;
static unsigned readahead;    /* pages per major fault's read, 1 .. RA_MAX */
#define RA_MAX 32

/* The region vm_run is running code for; NULL outside vm_run. */
static struct vm_area *running;
static jmp_buf run_jmp;
static uint64_t pending_vpn;

static void kswapd(struct work *w);
static struct work kswapd_work = { .fn = kswapd };

/* Reclaim's first try leaves regions at their allotment alone (reclaim_anon). */
static bool sparing;

static bool at_allotment(const struct vm_area *a)
{
	return a->allot && a->resident <= a->allot;
}

/* The ring's view of a page: its PTE's Accessed (R) and Dirty (M) bits. A
 * page of a region reclaim is sparing looks used, and keeps its bits: the
 * policy passes over it to the other regions' pages, unused ones first. */
static int ring_bits(void *ctx, uint32_t slot, uint64_t page, bool clear_r)
{
	(void)ctx;
	(void)slot;
	const struct vm_area *a = &vm_areas[page >> VPN_BITS];
	uint64_t vpn = page & ((1ULL << VPN_BITS) - 1);
	bool spare = sparing && at_allotment(a);
	int b = paging_page_bits(page_va(a, vpn), clear_r && !spare);
	if (spare && b >= 0)
		return REPLACE_R | ((b & PAGING_DIRTY) ? REPLACE_M : 0);
	if (b < 0)
		return b; /* a resident page that is not mapped: a bug, stop the scan */
	uint16_t *flags = &a->page[vpn].flags;
	bool young = *flags & VM_PAGE_YOUNG;
	if (clear_r)
		*flags &= ~VM_PAGE_YOUNG;
	return ((b & PAGING_ACCESSED) || young ? REPLACE_R : 0) | ((b & PAGING_DIRTY) ? REPLACE_M : 0);
}
static const struct replace_ops ring_ops = { ring_bits, NULL };

static bool vm_page_fault(struct interrupt_frame *f, uint64_t cr2);

/* Any allocation that would fail (the heap, `alloc`, DMA memory) reclaims
 * before the balloon deflates: at least a write cluster's worth, so a
 * stream of single-frame allocations does not write one page at a time. */
static uint64_t pfa_reclaim(void *ctx, uint64_t frames)
{
	(void)ctx;
	return vm_reclaim(frames > SWAP_SLOTS_RUN_MAX ? frames : SWAP_SLOTS_RUN_MAX, VM_RECLAIM_DIRECT);
}

/*
 * The free memory below which reclaim starts, in frames, unless vm.low says:
 * Linux's formula (min_free_kbytes = sqrt(16 x memory in KiB), low mark 1.25
 * times that; 3.5 MiB in a 512 MiB guest), so a squeeze leaves both kernels
 * the same room for the workload. It was half the balloon's reserve floor
 * (12.8 MiB there): pages kept free that cold pages could have used, and
 * bench/squeeze.py measured 53 major faults per 1000 accesses after the
 * squeeze with it against 45 with 3-4 MiB. The reserve floor is the
 * balloon's business, not reclaim's.
 */
static uint64_t default_low_watermark(uint64_t managed_frames)
{
	uint64_t kib = managed_frames * (PAGE_SIZE / 1024) * 16;
	uint64_t r = kib, next = (kib + 1) / 2; /* Newton's integer square root */
	while (next < r) {
		r = next;
		next = (r + kib / r) / 2;
	}
	uint64_t frames = r * 5 / 4 / (PAGE_SIZE / 1024);
	return frames < 32 ? 32 : frames;
}

static int vm_init(void)
{
	if (ready)
		return 0;
	uint64_t n = kernel_pfa.st.managed;
	if (n > UINT32_MAX - 1)
		n = UINT32_MAX - 1;
	struct replace_slot *slots = malloc(n * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	const char *name = cmdline_get("vm.policy");
	int policy = name ? replace_policy_parse(name) : REPLACE_ESC;
	if (policy < 0 || policy == REPLACE_LRU || policy == REPLACE_OPT) {
		printf("vm: vm.policy=%s: not one of esc, clock, fifo; using esc\n", name);
		policy = REPLACE_ESC;
	}
	if (replace_init(&vm_ring, (enum replace_policy)policy, &ring_ops, NULL, slots, (uint32_t)n) < 0) {
		free(slots);
		return -ENOMEM;
	}
	vm_ring.aged = true; /* the aging hand clears R (age()); reclaim only reads it */
	uint64_t low = default_low_watermark(kernel_pfa.st.managed);
	vm_st.low = cmdline_get_size("vm.low", low << PAGE_SHIFT) >> PAGE_SHIFT;
	vm_st.high = cmdline_get_size("vm.high", (vm_st.low * 6 / 5) << PAGE_SHIFT) >> PAGE_SHIFT;
	if (vm_st.high < vm_st.low)
		vm_st.high = vm_st.low;
	uint64_t ra = cmdline_get_u64("vm.readahead", 8);
	readahead = ra < 1 ? 1 : ra > RA_MAX ? RA_MAX : (unsigned)ra;
	page_fault_set_handler(vm_page_fault);
	pfa_set_reclaim_handler(&kernel_pfa, pfa_reclaim, NULL);
	vm_age_start();
	ready = true;
	return 0;
}

/* ---------------------------------------------------------------- regions */

int vm_area_create(uint64_t npages, struct vm_area **out)
{
	if (npages == 0 || npages > VM_AREA_SPAN >> PAGE_SHIFT)
		return -EINVAL;
	int rc = vm_init();
	if (rc < 0)
		return rc;
	struct vm_area *a = NULL;
	for (unsigned i = 0; i < VM_AREAS && !a; i++)
		if (!vm_areas[i].used)
			a = &vm_areas[i];
	if (!a)
		return -ENOSPC;
	struct vm_page *page = malloc(npages * sizeof(*page));
	if (!page)
		return -ENOMEM;
	for (uint64_t i = 0; i < npages; i++)
		page[i] = (struct vm_page){ .rslot = REPLACE_NONE };
	unsigned id = (unsigned)(a - vm_areas);
	*a = (struct vm_area){ .id = id, .used = true, .base = VM_VIRT_BASE + id * VM_AREA_SPAN,
			       .npages = npages, .page = page };
	*out = a;
	return 0;
}

void vm_area_destroy(struct vm_area *a)
{
	for (uint64_t vpn = 0; vpn < a->npages; vpn++) {
		struct vm_page *pg = &a->page[vpn];
		if (pg->rslot != REPLACE_NONE) {
			replace_remove(&vm_ring, pg->rslot);
			uint64_t pa = paging_unmap_page(page_va(a, vpn));
			pfa_free_block(&kernel_pfa, pa >> PAGE_SHIFT, 0, __builtin_return_address(0));
			vm_st.resident--;
		}
		if (pg->swap)
			swap_free(pg->swap - 1);
	}
	free(a->page);
	*a = (struct vm_area){ 0 };
}

bool vm_page_in_swap(const struct vm_area *a, uint64_t vpn)
{
	const struct vm_page *pg = &a->page[vpn];
	return pg->rslot == REPLACE_NONE && pg->swap;
}

uint64_t vm_resident_in(const struct vm_area *a, uint64_t first, uint64_t count)
{
	uint64_t n = 0;
	for (uint64_t v = first; v < first + count && v < a->npages; v++)
		n += a->page[v].rslot != REPLACE_NONE;
	return n;
}

/* Map frame `pfn` at page `vpn` and make it the ring's newest page. */
static int map_in(struct vm_area *a, uint64_t vpn, uint64_t pfn)
{
	int rc = paging_map_page(page_va(a, vpn), pfn << PAGE_SHIFT);
	if (rc < 0)
		return rc;
	int64_t slot = replace_insert(&vm_ring, PAGE_ID(a, vpn));
	if (slot < 0) { /* one slot per managed frame: cannot be full */
		paging_unmap_page(page_va(a, vpn));
		return (int)slot;
	}
	a->page[vpn].rslot = (uint32_t)slot;
	a->page[vpn].flags |= VM_PAGE_YOUNG; /* it is being used: that is why it came in */
	a->page[vpn].used_tick = vm_age_tick();
	a->resident++;
	vm_st.resident++;
	return 0;
}

/* ---------------------------------------------------------------- faults */

/* Where a fault that cannot be finished in the handler carries on: the
 * handler points the interrupted code's RIP here, on its own stack. */
static void vm_escape(void)
{
	longjmp(run_jmp, 1);
}

/* The #PF handler (arch/x86_64/idt.c): interrupts off, page-fault stack. */
static bool vm_page_fault(struct interrupt_frame *f, uint64_t cr2)
{
	struct vm_area *a = running;
	if (!a || cr2 < a->base || cr2 - a->base >= a->npages << PAGE_SHIFT || (f->error_code & 1))
		return false; /* not ours, or a protection fault: a bug, reported */
	uint64_t vpn = (cr2 - a->base) >> PAGE_SHIFT;
	struct vm_page *pg = &a->page[vpn];
	if (!pg->swap && !(pg->flags & VM_PAGE_LOST) && kernel_pfa.st.free > vm_st.low) {
		/* A minor fault with memory to spare: finish it here. */
		int64_t pfn = pfa_alloc_block_flags(&kernel_pfa, 0, PFA_NO_OOM);
		if (pfn >= 0) {
			page_zero(phys_to_virt((uint64_t)pfn << PAGE_SHIFT));
			if (map_in(a, vpn, (uint64_t)pfn) == 0) {
				a->minflt++;
				vm_st.minflt++;
				if (kernel_pfa.st.free <= vm_st.low)
					work_queue(&kswapd_work);
				return true;
			}
			pfa_free_block(&kernel_pfa, (uint64_t)pfn, 0, __builtin_return_address(0));
		}
	}
	/* Needs I/O or reclaim: out to vm_run, which finishes it with
	 * interrupts on and runs the code again. The new stack pointer is
	 * where a call would have left it (16-byte aligned, minus the return
	 * address); nothing below the faulting frame is in use. */
	pending_vpn = vpn;
	vm_st.escapes++;
	f->rip = (uint64_t)(uintptr_t)vm_escape;
	f->rsp = (f->rsp & ~15ULL) - 8;
	return true;
}

/* A frame for a fault: wake background reclaim when memory runs low, reclaim
 * here when it is lower still, and let the balloon deflate (the OOM handler)
 * only when nothing else is left. */
static int64_t fault_frame(void)
{
	if (kernel_pfa.st.free <= vm_st.low) {
		work_queue(&kswapd_work);
		vm_reclaim(RECLAIM_DIRECT_BATCH, VM_RECLAIM_DIRECT);
	}
	int64_t pfn = pfa_alloc_block_flags(&kernel_pfa, 0, PFA_NO_OOM);
	if (pfn < 0 && vm_reclaim(RECLAIM_DIRECT_BATCH, VM_RECLAIM_DIRECT) > 0)
		pfn = pfa_alloc_block_flags(&kernel_pfa, 0, PFA_NO_OOM);
	if (pfn < 0)
		pfn = pfa_alloc_block(&kernel_pfa, 0);
	return pfn;
}

/*
 * Readahead: the pages after `vpn` that are in swap only, in the slots right
 * after its own (reclaim wrote them together, so they were neighbours then
 * too), up to vm.readahead pages in all, each with a free frame to spare
 * above the low watermark (below it, reclaim would only take them back):
 * frames for them into out[]; how many.
 */
static unsigned readahead_frames(struct vm_area *a, uint64_t vpn, uint64_t *out)
{
	/* Only for a scan: a fault right after the last page read grows the
	 * window (2, 4, ... vm.readahead), any other closes it. Read ahead of
	 * random faults, the neighbours are rarely wanted and each costs a
	 * read and a frame (a squeeze's uniform cold accesses read 7 times
	 * what Linux did, with readahead always on). */
	if (vpn == a->ra_next && a->ra_window)
		a->ra_window = a->ra_window * 2 > readahead ? readahead : a->ra_window * 2;
	else
		a->ra_window = 1;
	unsigned n = 0;
	uint64_t slot = a->page[vpn].swap;
	for (unsigned i = 1; i < a->ra_window && vpn + i < a->npages; i++) {
		const struct vm_page *q = &a->page[vpn + i];
		if (q->rslot != REPLACE_NONE || q->swap != slot + i || !swap_valid(q->swap - 1) ||
		    kernel_pfa.st.free <= vm_st.low)
			break;
		int64_t f = pfa_alloc_block_flags(&kernel_pfa, 0, PFA_NO_OOM);
		if (f < 0)
			break;
		out[n++] = (uint64_t)f;
	}
	a->ra_next = vpn + 1 + n;
	return n;
}

static int fault_in(struct vm_area *a, uint64_t vpn)
{
	struct vm_page *pg = &a->page[vpn];
	if (pg->rslot != REPLACE_NONE)
		return 0;
	if (pg->flags & VM_PAGE_LOST)
		return -EIO;
	int64_t pfn = fault_frame();
	if (pfn < 0)
		return -ENOMEM;
	uint64_t ra_pfn[RA_MAX];
	unsigned n_ra = 0;
	if (pg->swap) {
		n_ra = readahead_frames(a, vpn, ra_pfn);
		int rc = -EIO;
		if (n_ra) {
			uint64_t run[RA_MAX + 1] = { (uint64_t)pfn }; /* the faulting page, then the next ones */
			memcpy(run + 1, ra_pfn, n_ra * sizeof(run[0]));
			rc = swap_read_run(pg->swap - 1, run, n_ra + 1);
			if (rc < 0) {
				for (unsigned i = 0; i < n_ra; i++)
					pfa_free_block(&kernel_pfa, ra_pfn[i], 0, __builtin_return_address(0));
				n_ra = 0;
			}
		}
		if (rc < 0)
			rc = swap_read(pg->swap - 1, (uint64_t)pfn);
		if (rc < 0) {
			pfa_free_block(&kernel_pfa, (uint64_t)pfn, 0, __builtin_return_address(0));
			printf("vm: page %#lx of region %u: its copy in swap slot %lu could not be read (%d); "
			       "its contents are lost\n", (unsigned long)page_va(a, vpn), a->id,
			       (unsigned long)(pg->swap - 1), rc);
			event_emit("vm_lost", "\"region\":%u,\"va\":\"%#lx\",\"slot\":%lu,\"rc\":%d", a->id,
				   (unsigned long)page_va(a, vpn), (unsigned long)(pg->swap - 1), rc);
			pg->swap = 0;
			pg->flags |= VM_PAGE_LOST;
			a->swapped--;
			a->lost++;
			return -EIO;
		}
	} else {
		page_zero(phys_to_virt((uint64_t)pfn << PAGE_SHIFT));
	}
	/* Pages read ahead come in as the ring's newest, their Accessed bit
	 * clear: not used before the next reclaim, they go first, for free. */
	for (unsigned i = 0; i < n_ra; i++) {
		uint64_t q = vpn + 1 + i;
		if (map_in(a, q, ra_pfn[i]) < 0) {
			pfa_free_block(&kernel_pfa, ra_pfn[i], 0, __builtin_return_address(0));
			continue;
		}
		a->page[q].flags &= ~VM_PAGE_YOUNG; /* nobody asked for it yet */
		a->page[q].used_tick = (uint16_t)(vm_age_tick() - 0x7fff);
		a->swapped--;
		vm_st.swap_in++;
		vm_st.readahead++;
	}
	int rc = map_in(a, vpn, (uint64_t)pfn);
	if (rc < 0) {
		pfa_free_block(&kernel_pfa, (uint64_t)pfn, 0, __builtin_return_address(0));
		return rc;
	}
	if (pg->swap) {
		/* The copy stays: while the page is clean it is still good. */
		a->swapped--;
		a->majflt++;
		vm_st.majflt++;
		vm_st.swap_in++;
	} else {
		a->minflt++;
		vm_st.minflt++;
	}
	return 0;
}

int vm_run(struct vm_area *a, int (*body)(void *ctx), void *ctx)
{
	uint64_t t0 = clock_ns();
	int rc;
	for (;;) {
		if (setjmp(run_jmp) == 0) {
			running = a;
			rc = body(ctx);
			running = NULL;
			break;
		}
		running = NULL; /* came back from vm_escape */
		rc = fault_in(a, pending_vpn);
		if (rc < 0)
			break;
	}
	vm_st.run_ns += clock_ns() - t0;
	return rc;
}

/* ---------------------------------------------------------------- reclaim */

struct victim {
	struct vm_area *a;
	uint64_t vpn, pfn;
};

struct tally {
	uint64_t scanned, freed, written, dropped_clean, dropped_cache;
	bool swap_full, no_swap, io_error;
};

/* A victim that could not go: mapped again, the ring's newest page. */
static void put_back(const struct victim *v)
{
	if (map_in(v->a, v->vpn, v->pfn) < 0) /* its page table is still there */
		printf("vm: cannot map page %#lx back\n", (unsigned long)page_va(v->a, v->vpn));
}

static void free_frame(const struct victim *v)
{
	pfa_free_block(&kernel_pfa, v->pfn, 0, __builtin_return_address(0));
}

/* Write victims v[0..n) to swap in runs of adjacent slots, then free their
 * frames; what cannot be written goes back. */
static void write_out(struct victim *v, unsigned n, struct tally *t)
{
	uint64_t pfns[SWAP_SLOTS_RUN_MAX];
	for (unsigned i = 0; i < n; i++)
		pfns[i] = v[i].pfn;
	unsigned done = 0;
	while (done < n) {
		uint64_t first;
		int k = swap_write(pfns + done, n - done, &first);
		if (k < 0) {
			if (k == -ENOSPC)
				t->swap_full = true;
			else
				t->io_error = true;
			for (unsigned i = done; i < n; i++)
				put_back(&v[i]);
			return;
		}
		for (int i = 0; i < k; i++) {
			struct victim *x = &v[done + i];
			x->a->page[x->vpn].swap = first + (uint64_t)i + 1;
			x->a->swapped++;
			free_frame(x);
		}
		t->written += (uint64_t)k;
		t->freed += (uint64_t)k;
		done += (unsigned)k;
	}
}

/* A page taken from the vm_ring but left alone (reclaim stopped): back in the
 * vm_ring as its newest page, still mapped. */
static void reinsert(struct vm_area *a, uint64_t vpn)
{
	int64_t slot = replace_insert(&vm_ring, PAGE_ID(a, vpn));
	a->page[vpn].rslot = slot < 0 ? REPLACE_NONE : (uint32_t)slot; /* cannot be full */
}

/* Pages of regions above their allotment, beyond it. */
static uint64_t slack(void)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < VM_AREAS; i++) {
		const struct vm_area *a = &vm_areas[i];
		if (a->used)
			n += a->allot ? (a->resident > a->allot ? a->resident - a->allot : 0) : a->resident;
	}
	return n;
}

/*
 * Up to `want` resident pages out, by the ring's policy. Victims are chosen
 * TAKE_MAX at a time (one sweep of the vm_ring per pass, replace_take), then
 * go: clean ones with a good copy are dropped, dirty ones are written in
 * runs of SWAP_SLOTS_RUN_MAX adjacent slots.
 *
 * Allotments (page-fault frequency, kernel/pff.h): while some region has
 * more than its allotment, the others are spared — their pages look used to
 * the policy (ring_bits), and a victim of a region that reached its
 * allotment meanwhile goes back. When the slack is gone, or only used
 * pages of it are left, everyone's pages are fair game again.
 */
#define TAKE_MAX 1024
static void reclaim_anon(uint64_t want, struct tally *t)
{
	static uint64_t ids[TAKE_MAX];
	struct victim batch[SWAP_SLOTS_RUN_MAX];
	sparing = slack() > 0;
	while (t->freed < want && vm_ring.n_used > 0 && !t->swap_full && !t->no_swap && !t->io_error) {
		uint64_t max = want - t->freed < TAKE_MAX ? want - t->freed : TAKE_MAX;
		int64_t got = replace_take(&vm_ring, ids, (uint32_t)max);
		if (got <= 0)
			break;
		unsigned nb = 0;
		int64_t i;
		for (i = 0; i < got; i++) {
			struct victim v = { &vm_areas[ids[i] >> VPN_BITS], ids[i] & ((1ULL << VPN_BITS) - 1), 0 };
			if (t->swap_full || t->no_swap || t->io_error) {
				reinsert(v.a, v.vpn);
				continue;
			}
			if (sparing && at_allotment(v.a)) {
				reinsert(v.a, v.vpn);
				vm_st.spared++;
				continue;
			}
			struct vm_page *pg = &v.a->page[v.vpn];
			uint64_t va = page_va(v.a, v.vpn);
			int bits = paging_page_bits(va, false);
			if (bits >= 0 && !(bits & PAGING_DIRTY) && pg->swap && swap_valid(pg->swap - 1)) {
				/* Clean, and its copy in swap is good: no I/O. */
				pg->rslot = REPLACE_NONE;
				v.pfn = paging_unmap_page(va) >> PAGE_SHIFT;
				v.a->resident--;
				vm_st.resident--;
				v.a->swapped++;
				free_frame(&v);
				t->freed++;
				t->dropped_clean++;
				continue;
			}
			if (!swap_active()) {
				reinsert(v.a, v.vpn);
				t->no_swap = true;
				continue;
			}
			pg->rslot = REPLACE_NONE;
			v.pfn = paging_unmap_page(va) >> PAGE_SHIFT; /* from here nobody can touch it */
			v.a->resident--;
			vm_st.resident--;
			if (pg->swap) { /* dirtied since: the old copy is stale */
				swap_free(pg->swap - 1);
				pg->swap = 0;
			}
			batch[nb++] = v;
			if (nb == SWAP_SLOTS_RUN_MAX) {
				write_out(batch, nb, t);
				nb = 0;
			}
		}
		if (nb)
			write_out(batch, nb, t);
		if (sparing && ((uint64_t)got < max || slack() == 0)) {
			sparing = false; /* the slack is gone, or in use: from everyone now */
			continue;
		}
		if ((uint64_t)got < max)
			break; /* the vm_ring ran out of unused pages: let them be used a while (replace_take) */
	}
	sparing = false;
}

static const char *const why_names[] = { "kswapd", "direct", "balloon" };

uint64_t vm_reclaim(uint64_t want, enum vm_reclaim_why why)
{
	/* Reclaim can print, and printing can allocate (newlib's buffers):
	 * an allocation failing in there must not start reclaim again. */
	static bool reclaiming;
	if (!ready || want == 0 || reclaiming)
		return 0;
	/* A chunk beyond what brings free memory back to the reserve floor:
	 * faulting workloads keep it between the watermarks, below the floor,
	 * and a chunk that only refilled that would never let the balloon on
	 * (it stalled for minutes under a fault storm). */
	uint64_t deficit = kernel_pfa.reserve_floor > kernel_pfa.st.free ? kernel_pfa.reserve_floor - kernel_pfa.st.free : 0;
	if (why == VM_RECLAIM_BALLOON && want > BALLOON_CHUNK + deficit)
		want = BALLOON_CHUNK + deficit;
	uint64_t t0 = clock_ns();
	uint64_t class0[4];
	memcpy(class0, vm_ring.st.by_class, sizeof(class0));
	reclaiming = true;
	uint64_t scanned0 = vm_ring.st.scanned;
	struct tally t = { 0 };
	/* Clean cache first: it costs no I/O now, only a re-read if wanted. */
	t.dropped_cache = pagecache_shrink(want);
	t.freed = t.dropped_cache;
	reclaim_anon(want, &t);
	t.scanned = vm_ring.st.scanned - scanned0; /* page-table entries looked at */
	reclaiming = false;

	uint64_t cls[4];
	for (int i = 0; i < 4; i++) {
		cls[i] = vm_ring.st.by_class[i] - class0[i];
		vm_st.by_class[i] += cls[i];
	}
	vm_st.scanned += t.scanned;
	vm_st.freed += t.freed;
	vm_st.written += t.written;
	vm_st.dropped_clean += t.dropped_clean;
	vm_st.dropped_cache += t.dropped_cache;
	vm_st.swap_out += t.written;
	vm_st.swap_full += t.swap_full;
	vm_st.unswappable += t.no_swap;
	vm_st.write_failures += t.io_error;
	if (why == VM_RECLAIM_KSWAPD)
		vm_st.kswapd_runs++;
	else if (why == VM_RECLAIM_DIRECT)
		vm_st.direct_runs++;
	else
		vm_st.balloon_runs++;

	static struct event_ratelimit rl;
	if ((t.scanned || t.dropped_cache) && event_ratelimit_ok(&rl, clock_ms(), 4))
		event_emit("reclaim", "\"why\":\"%s\",\"want\":%lu,\"scanned\":%lu,\"freed\":%lu,\"written\":%lu,"
			   "\"dropped_clean\":%lu,\"dropped_cache\":%lu,\"classes\":[%lu,%lu,%lu,%lu],\"swap_full\":%s,\"us\":%lu,"
			   "\"free\":%lu,\"suppressed\":%u",
			   why_names[why], (unsigned long)want, (unsigned long)t.scanned, (unsigned long)t.freed,
			   (unsigned long)t.written, (unsigned long)t.dropped_clean, (unsigned long)t.dropped_cache,
			   (unsigned long)cls[0],
			   (unsigned long)cls[1], (unsigned long)cls[2], (unsigned long)cls[3],
			   t.swap_full ? "true" : "false", (unsigned long)((clock_ns() - t0) / 1000),
			   (unsigned long)kernel_pfa.st.free, event_ratelimit_suppressed(&rl));
	static struct event_ratelimit full_rl;
	if (t.swap_full && event_ratelimit_ok(&full_rl, clock_ms(), 1)) {
		printf("vm: swap is full: %lu of %lu pages wanted could be freed\n", (unsigned long)t.freed,
		       (unsigned long)want);
		event_emit("swap_full", "\"want\":%lu,\"freed\":%lu,\"suppressed\":%u", (unsigned long)want,
			   (unsigned long)t.freed, event_ratelimit_suppressed(&full_rl));
	}
	return t.freed;
}

/* Background reclaim: from below the low watermark back up to the high one,
 * a batch per run so other work gets its turns. */
static void kswapd(struct work *w)
{
	uint64_t free = kernel_pfa.st.free;
	if (!ready || free >= vm_st.high)
		return;
	uint64_t want = vm_st.high - free < KSWAPD_BATCH ? vm_st.high - free : KSWAPD_BATCH;
	if (vm_reclaim(want, VM_RECLAIM_KSWAPD) > 0 && kernel_pfa.st.free < vm_st.high)
		work_queue(w);
}

void vm_avail(struct vm_avail *out)
{
	*out = (struct vm_avail){ .free = kernel_pfa.st.free, .cache = pagecache_pages() };
	uint64_t outside = 0;
	for (unsigned i = 0; i < VM_AREAS; i++) {
		const struct vm_area *a = &vm_areas[i];
		if (!a->used)
			continue;
		/* What the region keeps: its working set, or its page-fault-frequency
		 * allotment when that is larger — a thrashing workload touches fewer
		 * pages in tau than it needs, so its estimate falls while its
		 * faults say it needs more (found by pff.scn under load: the guard
		 * let the balloon take what PFF had just allotted). Never more than
		 * is resident: the estimate is a round old, and reclaim may have
		 * taken some of it since. */
		uint64_t ws = vm_ws_known(a) ? a->ws : a->resident;
		if (a->allot > ws)
			ws = a->allot;
		if (ws > a->resident)
			ws = a->resident;
		out->resident += a->resident;
		out->ws += ws;
		outside += a->resident - ws;
	}
	out->margin = out->ws * vm_ws_margin_pct() / 100;
	uint64_t total = out->free + out->cache + outside, keep = out->margin + kernel_pfa.reserve_floor;
	out->avail = total > keep ? total - keep : 0;
}

void vm_get_stats(struct vm_stats *out)
{
	*out = vm_st;
}

/* ---------------------------------------------------------------- shell */

static int cmd_vm(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (vm_init() < 0) {
		printf("vm: no memory for the replacement ring\n");
		return -ENOMEM;
	}
	printf("vm: policy %s, watermarks low %lu high %lu pages, free %lu\n", replace_policy_name(vm_ring.policy),
	       (unsigned long)vm_st.low, (unsigned long)vm_st.high, (unsigned long)kernel_pfa.st.free);
	printf("    resident %lu pages; faults minor %lu major %lu (%lu finished outside the handler)\n",
	       (unsigned long)vm_st.resident, (unsigned long)vm_st.minflt, (unsigned long)vm_st.majflt,
	       (unsigned long)vm_st.escapes);
	printf("    reclaim: scanned %lu freed %lu written %lu dropped clean %lu, cache %lu; victims (R,M) "
	       "00:%lu 01:%lu 10:%lu 11:%lu\n", (unsigned long)vm_st.scanned, (unsigned long)vm_st.freed,
	       (unsigned long)vm_st.written, (unsigned long)vm_st.dropped_clean, (unsigned long)vm_st.dropped_cache, (unsigned long)vm_st.by_class[0],
	       (unsigned long)vm_st.by_class[1], (unsigned long)vm_st.by_class[2], (unsigned long)vm_st.by_class[3]);
	printf("    readahead %u pages: %lu read ahead\n", readahead, (unsigned long)vm_st.readahead);
	printf("    aging: %lu Accessed bits cleared, %lu ms spent, %lu ticks skipped (no workload ran); "
	       "%lu victims spared for an allotment\n", (unsigned long)vm_st.aged,
	       (unsigned long)(vm_st.age_ns / 1000000), (unsigned long)vm_st.age_skipped, (unsigned long)vm_st.spared);
	printf("    runs: kswapd %lu direct %lu balloon %lu; swap full %lu, write failures %lu\n",
	       (unsigned long)vm_st.kswapd_runs, (unsigned long)vm_st.direct_runs, (unsigned long)vm_st.balloon_runs,
	       (unsigned long)vm_st.swap_full, (unsigned long)vm_st.write_failures);
	event_emit("vm", "\"policy\":\"%s\",\"low\":%lu,\"high\":%lu,\"free\":%lu,\"resident\":%lu,\"minflt\":%lu,"
		   "\"majflt\":%lu,\"swap_in\":%lu,\"swap_out\":%lu,\"escapes\":%lu,\"scanned\":%lu,\"freed\":%lu,"
		   "\"written\":%lu,\"dropped_clean\":%lu,\"dropped_cache\":%lu,\"cache\":%lu,"
		   "\"classes\":[%lu,%lu,%lu,%lu],\"kswapd_runs\":%lu,"
		   "\"direct_runs\":%lu,\"balloon_runs\":%lu,\"swap_full\":%lu,\"write_failures\":%lu,"
		   "\"aged\":%lu,\"age_ms\":%lu,\"readahead\":%lu,\"spared\":%lu",
		   replace_policy_name(vm_ring.policy), (unsigned long)vm_st.low, (unsigned long)vm_st.high,
		   (unsigned long)kernel_pfa.st.free, (unsigned long)vm_st.resident, (unsigned long)vm_st.minflt,
		   (unsigned long)vm_st.majflt, (unsigned long)vm_st.swap_in, (unsigned long)vm_st.swap_out,
		   (unsigned long)vm_st.escapes, (unsigned long)vm_st.scanned, (unsigned long)vm_st.freed,
		   (unsigned long)vm_st.written, (unsigned long)vm_st.dropped_clean, (unsigned long)vm_st.dropped_cache,
		   (unsigned long)pagecache_pages(), (unsigned long)vm_st.by_class[0],
		   (unsigned long)vm_st.by_class[1], (unsigned long)vm_st.by_class[2], (unsigned long)vm_st.by_class[3],
		   (unsigned long)vm_st.kswapd_runs, (unsigned long)vm_st.direct_runs, (unsigned long)vm_st.balloon_runs,
		   (unsigned long)vm_st.swap_full, (unsigned long)vm_st.write_failures, (unsigned long)vm_st.aged,
		   (unsigned long)(vm_st.age_ns / 1000000), (unsigned long)vm_st.readahead,
		   (unsigned long)vm_st.spared);
	return 0;
}
SHELL_COMMAND(vm, "", "virtual memory: faults, reclaim by (R,M) class, watermarks", cmd_vm);
