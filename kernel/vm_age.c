/*
 * vm_age: the aging hand, and what it learns — each region's working set
 * and idle pages.
 *
 * Every AGE_PERIOD_MS of the workloads' time (a tick: time in vm_run,
 * Denning's virtual time — see age()) the hand visits the next share of
 * the resident pages, region by region, so that each is visited once per
 * vm.age_ms (default 1 s, a round). At each visit it reads and clears the
 * PTE's Accessed bit (INVLPG with it, in paging_page_bits):
 *
 *   set    the page was used since the last visit: its used_tick is now,
 *          it is young (reclaim counts it referenced), and it moves to the
 *          back of the replacement vm_ring (replace_touch), so the ring's
 *          order approaches least recently used;
 *   clear  it was not: no longer young.
 *
 * Why the hand exists: without it, a reclaim that runs while nothing else
 * can (the balloon's step) finds every bit set, clears them all in its own
 * sweep, and then takes pages in FIFO order — the hot set first, as it was
 * touched first. The window matters: at 0.37 s a hot page touched 8 times
 * a second was found unused 5 % of the time, and 10 % of a squeezed
 * workload's major faults were on its hot set.
 *
 * The working set (Denning): WS(t, tau) is the pages used in the last tau.
 * Counted per region over each round: a resident page whose used_tick is
 * at most vm.ws_ms old is in it; one at least vm.idle_ms old is idle (what
 * a host could take without the workload noticing). The estimate is late
 * by up to one round (a use is seen at the next visit), so tau should be a
 * few rounds. Pages in swap are in neither: a use would have faulted them in.
 *
 * Cost: about 0.53 us a page under TCG; a round visits every resident page
 * once, so a resident gigabyte costs about 14 % of the CPU at a 1 s round
 * (bench/wsscan.py: 138 ms per GiB per round, against 46 ms for Linux's
 * clear_refs + smaps scan; README, bench section). `ws` and the `ws` event
 * report the time spent per round.
 */
#include <stdio.h>
#include "vm_internal.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "mm.h"
#include "shell.h"
#include "work.h"
#include "arch/x86_64/paging.h"

CMDLINE_OPTION(vm_age_ms, "vm.age_ms",
	       "the aging hand visits every resident page once in this many ms (default 1000)");
CMDLINE_OPTION(vm_ws_ms, "vm.ws_ms", "the working set's window tau, in ms (default 5000)");
CMDLINE_OPTION(vm_idle_ms, "vm.idle_ms", "a page unused this long is idle (default 10000 ms)");
CMDLINE_OPTION(vm_ws_margin, "vm.ws_margin",
	       "percent of the working sets kept on top of them: what can be taken leaves it (default 10)");

#define AGE_PERIOD_MS 200
#define AGE_MIN_BATCH 1024
#define AGE_MAX_TICKS 0x7fff  /* used_tick is 16 bits: older is "very old" */

static uint64_t round_ms = 1000, ws_ms = 5000, idle_ms = 10000, margin_pct = 10;
static uint16_t tick;
static unsigned age_area;
static uint64_t age_vpn;
static uint64_t round_ns, round_pages;  /* this round so far */
static uint64_t last_round_ns, last_round_pages, rounds;
static uint64_t round_start_ms;

static void age(struct timer *t);
static struct timer age_timer = { .fn = age };

uint16_t vm_age_tick(void)
{
	return tick;
}

unsigned vm_ws_margin_pct(void)
{
	return (unsigned)margin_pct;
}

bool vm_ws_known(const struct vm_area *a)
{
	return a->ws_rounds >= 2 && a->ws_rounds * round_ms >= ws_ms;
}

void vm_age_start(void)
{
	round_ms = cmdline_get_u64("vm.age_ms", 1000);
	if (round_ms < AGE_PERIOD_MS)
		round_ms = AGE_PERIOD_MS;
	ws_ms = cmdline_get_u64("vm.ws_ms", 5000);
	idle_ms = cmdline_get_u64("vm.idle_ms", 10000);
	margin_pct = cmdline_get_u64("vm.ws_margin", 10);
	if (margin_pct > 100)
		margin_pct = 100;
	timer_arm(&age_timer, AGE_PERIOD_MS * 1000000ULL);
}

/* One visit: the Accessed bit, the page's age, its share of the counts. */
static void visit(struct vm_area *a, uint64_t vpn)
{
	struct vm_page *pg = &a->page[vpn];
	int bits = paging_page_bits(page_va(a, vpn), true);
	if (bits > 0 && (bits & PAGING_ACCESSED)) {
		pg->flags |= VM_PAGE_YOUNG;
		pg->used_tick = tick;
		replace_touch(&vm_ring, pg->rslot);
		vm_st.aged++;
	} else {
		pg->flags &= ~VM_PAGE_YOUNG;
	}
	uint16_t old = (uint16_t)(tick - pg->used_tick);
	if (old > AGE_MAX_TICKS) { /* keep it old when the counter wraps */
		old = AGE_MAX_TICKS;
		pg->used_tick = (uint16_t)(tick - AGE_MAX_TICKS);
	}
	uint64_t ms = (uint64_t)old * AGE_PERIOD_MS;
	a->ws_acc += ms <= ws_ms;
	a->idle_acc += ms >= idle_ms;
}

/* A round ended: what each region counted becomes its estimate. */
static void publish(void)
{
	uint64_t res = 0, ws = 0, idle = 0, now = clock_ms();
	uint64_t ms = now > round_start_ms ? now - round_start_ms : 1;
	round_start_ms = now;
	for (unsigned i = 0; i < VM_AREAS; i++) {
		struct vm_area *a = &vm_areas[i];
		if (!a->used)
			continue;
		/* A region created during the round gets its first rate next round. */
		a->maj_per_s = a->ws_rounds ? (a->majflt - a->round_majflt) * 1000 / ms : 0;
		a->round_majflt = a->majflt;
		a->ws = a->ws_acc;
		a->idle = a->idle_acc;
		a->ws_acc = a->idle_acc = 0;
		a->ws_rounds++;
		res += a->resident;
		ws += a->ws;
		idle += a->idle;
	}
	last_round_ns = round_ns;
	last_round_pages = round_pages;
	round_ns = round_pages = 0;
	rounds++;
	vm_st.ws = ws;
	vm_st.idle = idle;
	if (res)
		vm_ws_emit();
}

static void age(struct timer *t)
{
	/* The hand moves in the workloads' time (Denning's virtual time), not
	 * the wall clock's: while something else has the CPU (a long balloon
	 * step, reclaim) no page could be used, and a tick then would call
	 * the hot set unused and hand it to reclaim. */
	static uint64_t credit_ns, seen_run_ns;
	credit_ns += vm_st.run_ns - seen_run_ns;
	seen_run_ns = vm_st.run_ns;
	if (credit_ns < AGE_PERIOD_MS * 1000000ULL * 3 / 4) {
		vm_st.age_skipped++;
		timer_arm(t, AGE_PERIOD_MS * 1000000ULL);
		return;
	}
	credit_ns = credit_ns > AGE_PERIOD_MS * 1000000ULL ? credit_ns - AGE_PERIOD_MS * 1000000ULL : 0;
	uint64_t t0 = clock_ns(), done = 0, looked = 0;
	uint64_t batch = vm_st.resident * AGE_PERIOD_MS / round_ms;
	if (batch < AGE_MIN_BATCH)
		batch = AGE_MIN_BATCH;
	tick++;
	while (done < batch && looked < 4 * batch && vm_st.resident) {
		struct vm_area *a = &vm_areas[age_area];
		if (!a->used || age_vpn >= a->npages) {
			age_area = (age_area + 1) % VM_AREAS;
			age_vpn = 0;
			looked++;
			if (age_area == 0)
				publish();
			continue;
		}
		uint64_t end = age_vpn + batch < a->npages ? age_vpn + batch : a->npages;
		for (; age_vpn < end && done < batch; age_vpn++) {
			looked++;
			if (a->page[age_vpn].rslot == REPLACE_NONE)
				continue;
			visit(a, age_vpn);
			done++;
		}
	}
	uint64_t ns = clock_ns() - t0;
	vm_st.age_ns += ns;
	round_ns += ns;
	round_pages += done;
	timer_arm(t, AGE_PERIOD_MS * 1000000ULL);
}

void vm_ws_emit(void)
{
	char regions[EVENT_LINE_MAX - 320];
	size_t len = 0;
	uint64_t res = 0, maj = 0;
	regions[0] = 0;
	for (unsigned i = 0; i < VM_AREAS; i++) {
		const struct vm_area *a = &vm_areas[i];
		if (!a->used)
			continue;
		res += a->resident;
		maj += a->maj_per_s;
		int n = snprintf(regions + len, sizeof(regions) - len,
				 "%s{\"region\":%u,\"resident\":%lu,\"ws\":%lu,\"idle\":%lu,\"known\":%s,"
				 "\"allot\":%lu,\"majflt_per_s\":%lu}", len ? "," : "", i,
				 (unsigned long)a->resident, (unsigned long)a->ws, (unsigned long)a->idle,
				 vm_ws_known(a) ? "true" : "false", (unsigned long)a->allot, (unsigned long)a->maj_per_s);
		if (n < 0 || (size_t)n >= sizeof(regions) - len) {
			regions[len] = 0; /* no half region: the ones that fit */
			break;
		}
		len += (size_t)n;
	}
	struct vm_avail av;
	vm_avail(&av);
	event_emit("ws", "\"resident\":%lu,\"ws\":%lu,\"idle\":%lu,\"majflt_per_s\":%lu,\"avail\":%lu,\"margin\":%lu,"
		   "\"tau_ms\":%lu,\"idle_ms\":%lu,\"round_ms\":%lu,\"rounds\":%lu,\"round_pages\":%lu,\"round_us\":%lu,\"regions\":[%s]",
		   (unsigned long)res, (unsigned long)vm_st.ws, (unsigned long)vm_st.idle, (unsigned long)maj,
		   (unsigned long)av.avail, (unsigned long)av.margin, (unsigned long)ws_ms,
		   (unsigned long)idle_ms, (unsigned long)round_ms, (unsigned long)rounds,
		   (unsigned long)last_round_pages, (unsigned long)(last_round_ns / 1000), regions);
}

void vm_ws_params(struct vm_ws_params *p)
{
	p->round_ms = round_ms;
	p->tau_ms = ws_ms;
	p->idle_ms = idle_ms;
	p->rounds = rounds;
	p->round_pages = last_round_pages;
	p->round_ns = last_round_ns;
}
