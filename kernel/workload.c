/*
 * workload: access patterns over demand-paged regions, run in slices, and
 * the `run`, `stop` and `ps` shell commands (see workload.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workload.h"
#include "addr.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "mm.h"
#include "pagecache.h"
#include "parse.h"
#include "pff.h"
#include "shell.h"
#include "vm.h"
#include "work.h"

#define WORKLOADS VM_AREAS
#define SLICE_NS 4000000ULL   /* per workload per turn */
#define WORDS_CHECKED 8       /* one per 512-byte sector */
#define REFS_MAX 4096

enum pattern { P_UNIFORM, P_HOTCOLD, P_SEQ, P_LOOP, P_REFS, P_COUNT };
static const char *const pattern_names[P_COUNT] = { "uniform", "hotcold", "seq", "loop", "refs" };

CMDLINE_OPTION(vm_pff, "vm.pff", "off: no page-fault-frequency allotments (reclaim is global only)");
CMDLINE_OPTION(vm_pff_high, "vm.pff_high", "major faults per 1000 accesses above which an allotment grows (default 20)");
CMDLINE_OPTION(vm_pff_low, "vm.pff_low", "... below which it shrinks to the working set (default 2)");
CMDLINE_OPTION(vm_thrash, "vm.thrash_pm",
	       "major faults per 1000 accesses that, with accesses collapsed, is thrashing (default 100)");
CMDLINE_OPTION(vm_load_control, "vm.load_control", "off: thrashing is reported, no workload is suspended");

enum wl_state { WL_FREE, WL_RUNNING, WL_DONE, WL_FAILED, WL_STOPPED, WL_SUSPENDED };
static const char *const state_names[] = { "-", "running", "done", "failed", "stopped", "suspended" };

struct workload {
	enum wl_state state;
	char name[16];
	struct vm_area *area;
	enum pattern pattern;
	uint64_t npages, hot, loop;
	uint64_t hot_at;           /* hotcold: the hot set's first page (it wraps around) */
	unsigned prio;             /* load control suspends the lowest first */
	unsigned hot_pct, write_pct;
	unsigned file_pct;         /* accesses that read a page of the cached file instead */
	bool file_check;           /* file pages start with their page number: check it */
	uint64_t file_pages;       /* the file's size when the workload started */
	uint64_t file_reads;
	uint64_t seed, rng;
	uint64_t limit;            /* accesses after the fill; 0: until stopped */
	bool fill;                 /* write every page once first (until filled) */
	bool filled;
	uint32_t *version;         /* per page: what its words must say */
	uint32_t *refs;
	uint64_t nrefs;
	uint64_t pos;              /* fill, seq, loop, refs: the next position */
	/* The access in progress: chosen once, committed when complete. */
	bool cur_valid, cur_write, cur_file;
	bool cur_looked, cur_swapped;  /* was the page in swap when the access began? */
	uint64_t hot_majflt;           /* accesses to the hot set that found their page in swap */
	uint64_t cur_page;
	uint64_t accesses, writes; /* after the fill */
	uint64_t deadline_ns, ticks;
	int error;
	/* Rates over the last second. */
	uint64_t rate_ms, rate_acc, rate_min, rate_maj;
	uint64_t acc_per_s, min_per_s, maj_per_s;
	uint64_t start_ms, end_ms;
	/* Kept when the region is gone (done, stopped). */
	uint64_t minflt, majflt;
	/* Page-fault frequency and thrashing (kernel/pff.h), once a second. */
	struct pff_state pff;
	unsigned fault_pm;         /* the last period's major faults per 1000 accesses */
	/* Load control: suspended for another's thrashing, until `need`
	 * pages can be had (its working set when it stopped). */
	uint64_t suspended_ms, need;
	unsigned grace;            /* periods after a resume that are its refill, not thrashing */
};

static struct workload wls[WORKLOADS];
static struct pff_params pff_params = PFF_DEFAULTS;
static bool pff_on = true, load_control_on = true;

static bool live(const struct workload *w)
{
	return w->state == WL_RUNNING || w->state == WL_SUSPENDED;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t workload_pattern(uint64_t seed, uint64_t page, uint32_t version, unsigned i)
{
	if (version == 0)
		return 0;
	return splitmix64(seed ^ (page << 32) ^ ((uint64_t)version << 3) ^ i);
}

/* xorshift64*: the same generator as bench/linux/pressmem.c. */
static uint64_t next_rand(struct workload *w)
{
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void choose_access(struct workload *w)
{
	if (w->fill && !w->filled) {
		w->cur_page = w->pos;
		w->cur_write = true;
		return;
	}
	uint64_t p;
	switch (w->pattern) {
	case P_HOTCOLD:
		if (next_rand(w) % 100 < w->hot_pct || w->hot == w->npages)
			p = next_rand(w) % w->hot;
		else
			p = w->hot + next_rand(w) % (w->npages - w->hot);
		p = (p + w->hot_at) % w->npages; /* the hot set starts at hot_at */
		break;
	case P_SEQ:
		p = w->pos++ % w->npages;
		break;
	case P_LOOP:
		p = w->pos++ % w->loop;
		break;
	case P_REFS:
		p = w->refs[w->pos++ % w->nrefs];
		break;
	default:
		p = next_rand(w) % w->npages;
	}
	w->cur_page = p;
	w->cur_write = next_rand(w) % 100 < w->write_pct;
	w->cur_file = w->file_pct && next_rand(w) % 100 < w->file_pct;
	if (w->cur_file)
		w->cur_page = next_rand(w) % w->file_pages;
}

/* A read of the file through the page cache (kernel/pagecache.h): a hit
 * costs a copy, a miss a disk read, and under pressure the cache's clean
 * pages are the first thing reclaim takes. */
static int file_access(struct workload *w)
{
	static uint64_t buf[PAGE_SIZE / 8];
	int rc = pagecache_read(w->cur_page, buf);
	if (rc < 0) {
		printf("workload %s: reading page %lu of the file failed (%d)\n", w->name,
		       (unsigned long)w->cur_page, rc);
		return rc;
	}
	if (w->file_check && buf[0] != w->cur_page) {
		printf("workload %s: file page %lu starts with %#lx, not its number\n", w->name,
		       (unsigned long)w->cur_page, (unsigned long)buf[0]);
		event_emit("workload_corrupt", "\"name\":\"%s\",\"file_page\":%lu,\"got\":\"%#lx\"", w->name,
			   (unsigned long)w->cur_page, (unsigned long)buf[0]);
		return -EILSEQ;
	}
	w->file_reads++;
	return 0;
}

static bool in_hot(const struct workload *w, uint64_t p)
{
	return (p + w->npages - w->hot_at) % w->npages < w->hot;
}

static uint64_t hot_resident(const struct workload *w)
{
	if (!w->area)
		return 0;
	uint64_t first = w->npages - w->hot_at < w->hot ? w->npages - w->hot_at : w->hot;
	return vm_resident_in(w->area, w->hot_at, first) + vm_resident_in(w->area, 0, w->hot - first);
}

/* The slice: runs inside vm_run, so it may be abandoned at any fault and
 * called again; progress is only what was committed. */
static int slice(void *ctx)
{
	struct workload *w = ctx;
	for (;;) {
		/* The slice may end between accesses only: an access that
		 * faulted is finished first. A page just brought in has not
		 * had its Accessed bit set yet; ending the slice here would
		 * let reclaim take it as unused and fault it in again. */
		if (!w->cur_valid && (w->ticks++ & 31) == 0 && clock_ns() >= w->deadline_ns)
			return 0;
		bool filling = w->fill && !w->filled;
		if (!filling && w->limit && w->accesses >= w->limit)
			return 1;
		if (!w->cur_valid) {
			choose_access(w);
			w->cur_valid = true;
		}
		if (w->cur_file) {
			int rc = file_access(w);
			if (rc < 0)
				return rc;
			w->cur_valid = false;
			w->accesses++;
			continue;
		}
		uint64_t p = w->cur_page;
		if (!w->cur_looked) {
			w->cur_looked = true;
			w->cur_swapped = vm_page_in_swap(w->area, p);
		}
		volatile uint64_t *pg = vm_page_addr(w->area, p);
		uint32_t v = w->version[p];
		for (unsigned i = 0; i < WORDS_CHECKED; i++) {
			uint64_t want = workload_pattern(w->seed, p, v, i), got = pg[i * 64];
			if (got != want) {
				printf("workload %s: page %lu (%#lx) word %u is %#lx, not %#lx (version %u)\n", w->name,
				       (unsigned long)p, (unsigned long)(uintptr_t)&pg[i * 64], i, (unsigned long)got,
				       (unsigned long)want, v);
				event_emit("workload_corrupt", "\"name\":\"%s\",\"page\":%lu,\"word\":%u,\"version\":%u,"
					   "\"want\":\"%#lx\",\"got\":\"%#lx\"", w->name, (unsigned long)p, i, v,
					   (unsigned long)want, (unsigned long)got);
				return -EILSEQ;
			}
		}
		if (w->cur_write) {
			for (unsigned i = 0; i < WORDS_CHECKED; i++)
				pg[i * 64] = workload_pattern(w->seed, p, v + 1, i);
			w->version[p] = v + 1;
		}
		w->cur_valid = w->cur_looked = false;
		if (!filling && w->cur_swapped && in_hot(w, p))
			w->hot_majflt++;
		if (filling) {
			if (++w->pos == w->npages) {
				w->filled = true;
				w->pos = 0; /* seq, loop and refs start from their beginning */
			}
		} else {
			w->accesses++;
			w->writes += w->cur_write;
		}
	}
}

static void release(struct workload *w)
{
	if (w->area) {
		w->minflt = w->area->minflt;
		w->majflt = w->area->majflt;
		vm_area_destroy(w->area);
		w->area = NULL;
	}
	free(w->version);
	free(w->refs);
	w->version = NULL;
	w->refs = NULL;
	w->end_ms = clock_ms();
}

static uint64_t wl_minflt(const struct workload *w)
{
	return w->area ? w->area->minflt : w->minflt;
}

static uint64_t wl_majflt(const struct workload *w)
{
	return w->area ? w->area->majflt : w->majflt;
}

static void wl_event(const char *ev, const struct workload *w)
{
	event_emit(ev, "\"name\":\"%s\",\"state\":\"%s\",\"pattern\":\"%s\",\"pages\":%lu,\"resident\":%lu,"
		   "\"swapped\":%lu,\"minflt\":%lu,\"majflt\":%lu,\"accesses\":%lu,\"writes\":%lu,"
		   "\"file_reads\":%lu,\"hot\":%lu,\"hot_resident\":%lu,\"hot_majflt\":%lu,\"ws\":%lu,\"idle\":%lu,"
		   "\"region\":%d,\"acc_per_s\":%lu,\"minflt_per_s\":%lu,\"majflt_per_s\":%lu,\"ms\":%lu,"
		   "\"error\":%d,\"hot_at\":%lu,\"prio\":%u,\"fault_pm\":%u,\"allot\":%lu,\"thrashing\":%s",
		   w->name, state_names[w->state], pattern_names[w->pattern], (unsigned long)w->npages,
		   (unsigned long)(w->area ? w->area->resident : 0), (unsigned long)(w->area ? w->area->swapped : 0),
		   (unsigned long)wl_minflt(w), (unsigned long)wl_majflt(w), (unsigned long)w->accesses,
		   (unsigned long)w->writes, (unsigned long)w->file_reads, (unsigned long)w->hot,
		   (unsigned long)hot_resident(w), (unsigned long)w->hot_majflt,
		   (unsigned long)(w->area ? w->area->ws : 0), (unsigned long)(w->area ? w->area->idle : 0),
		   w->area ? (int)w->area->id : -1,
		   (unsigned long)w->acc_per_s, (unsigned long)w->min_per_s,
		   (unsigned long)w->maj_per_s,
		   (unsigned long)((live(w) ? clock_ms() : w->end_ms) - w->start_ms), w->error,
		   (unsigned long)w->hot_at, w->prio, w->fault_pm, (unsigned long)(w->area ? w->area->allot : 0),
		   w->pff.thrashing ? "true" : "false");
}

static unsigned running_count(void)
{
	unsigned n = 0;
	for (unsigned i = 0; i < WORKLOADS; i++)
		n += wls[i].state == WL_RUNNING;
	return n;
}

/* Pages this workload would need to run again: its working set when it
 * stopped (all it had, if the estimate was not known yet). */
static uint64_t working_set(const struct workload *w)
{
	return vm_ws_known(w->area) ? w->area->ws : w->area->resident;
}

/*
 * Load control (Denning): `t` thrashes. Taking memory from everyone makes
 * every workload fault; suspending one gives its memory to the others (its
 * pages go unused, reclaim takes them first). The one suspended is the
 * lowest priority, the latest started among equals; never the last one
 * running — that would only stop the work, not the thrashing. What was
 * done goes into the `thrashing` event.
 */
static const char *load_control(struct workload *t, char *what, size_t len)
{
	if (!load_control_on)
		return "off";
	if (running_count() < 2)
		return "none: the only workload running";
	struct workload *v = NULL;
	for (unsigned i = 0; i < WORKLOADS; i++) {
		struct workload *w = &wls[i];
		if (w->state == WL_RUNNING &&
		    (!v || w->prio < v->prio || (w->prio == v->prio && w->start_ms > v->start_ms)))
			v = w;
	}
	v->state = WL_SUSPENDED;
	v->suspended_ms = clock_ms();
	v->need = working_set(v);
	v->area->allot = 0; /* its pages are the first to go */
	v->pff.thrashing = false;
	v->pff.run = 0;
	printf("load control: %s thrashes; suspending %s (priority %u) until %lu MiB can be had for it\n", t->name,
	       v->name, v->prio, (unsigned long)(v->need >> 8));
	event_emit("workload_suspend", "\"name\":\"%s\",\"prio\":%u,\"because\":\"%s\",\"need\":%lu,"
		   "\"resident\":%lu,\"free\":%lu", v->name, v->prio, t->name, (unsigned long)v->need,
		   (unsigned long)v->area->resident, (unsigned long)kernel_pfa.st.free);
	snprintf(what, len, "suspended %s", v->name);
	return what;
}

/* A suspended workload runs again when its working set can be had without
 * taking anyone else's (vm_avail, its own resident pages counted as its),
 * and every workload running has what it needs (faults below vm.pff_high:
 * the estimates only see resident pages, not the demand of one that is
 * faulting), after RESUME_MIN_MS at least; or at once when it is the only
 * one left. The highest priority first, one at a time. */
#define RESUME_MIN_MS 3000
#define RESUME_GRACE 3
static void resume_check(void)
{
	static uint64_t last_ms;
	uint64_t now = clock_ms();
	if (now - last_ms < 500 && running_count() > 0)
		return;
	last_ms = now;
	struct workload *r = NULL;
	bool thrashing = false;
	for (unsigned i = 0; i < WORKLOADS; i++) {
		struct workload *w = &wls[i];
		thrashing |= w->state == WL_RUNNING && (w->pff.thrashing || w->fault_pm > pff_params.high_pm);
		if (w->state == WL_SUSPENDED &&
		    (!r || w->prio > r->prio || (w->prio == r->prio && w->suspended_ms < r->suspended_ms)))
			r = w;
	}
	if (!r)
		return;
	struct vm_avail av;
	vm_avail(&av);
	uint64_t own = vm_ws_known(r->area) ? r->area->ws : r->area->resident;
	uint64_t room = av.avail + own;
	bool alone = running_count() == 0;
	if (!alone && (thrashing || room < r->need || now - r->suspended_ms < RESUME_MIN_MS))
		return; /* (avail has the margin taken off already) */
	r->state = WL_RUNNING;
	r->pff = (struct pff_state){ .best_rate = r->pff.best_rate };
	r->grace = RESUME_GRACE;
	r->rate_ms = now;
	r->rate_acc = r->accesses;
	r->rate_min = wl_minflt(r);
	r->rate_maj = wl_majflt(r);
	printf("load control: resuming %s after %lu ms: %s\n", r->name, (unsigned long)(now - r->suspended_ms),
	       alone ? "nothing else is running" : "its working set fits again");
	event_emit("workload_resume", "\"name\":\"%s\",\"suspended_ms\":%lu,\"need\":%lu,\"room\":%lu,"
		   "\"alone\":%s", r->name, (unsigned long)(now - r->suspended_ms), (unsigned long)r->need,
		   (unsigned long)room, alone ? "true" : "false");
}

/* A period's page-fault frequency: the allotment moves, thrashing starts or
 * ends. A workload that wants more than the guest can give asks the balloon
 * for memory back (deflate-on-OOM, when the device offers it). */
static void pff_period(struct workload *w, uint64_t dt, uint64_t acc, uint64_t maj)
{
	struct pff_sample in = { .accesses = acc, .majflt = maj, .ms = dt, .resident = w->area->resident,
				 .ws = vm_ws_known(w->area) ? w->area->ws : 0, .size = w->npages };
	struct pff_result r = pff_update(&w->pff, &pff_params, &in);
	if (w->grace) {
		/* Back from a suspension it faults its pages in again: that
		 * is a refill, and would look like thrashing. */
		w->grace--;
		w->pff.thrashing = false;
		w->pff.run = 0;
		r.thrash_start = r.thrash_end = false;
	}
	w->fault_pm = r.fault_pm;
	if (pff_on)
		w->area->allot = w->pff.allot;
	uint64_t asked = 0, got = 0;
	/* Faulting above the bound with fewer pages than its allotment: it is
	 * short, whether the allotment just grew or grew earlier and the memory
	 * never came (the balloon was busy, or took it back). */
	bool short_of_allot = pff_on && r.fault_pm > pff_params.high_pm && in.resident < w->pff.allot;
	if (r.move != PFF_KEEP || short_of_allot) {
		struct vm_avail av;
		vm_avail(&av);
		/* What memory cannot give it without I/O, the balloon may
		 * (deflate-on-OOM; nothing when the device does not offer it). */
		uint64_t need = short_of_allot ? w->pff.allot - in.resident : 0;
		if (need > av.avail) {
			asked = need - av.avail;
			got = pfa_ask_oom(&kernel_pfa, asked);
		}
		if (r.move != PFF_KEEP || asked)
			event_emit("pff", "\"name\":\"%s\",\"move\":\"%s\",\"fault_pm\":%u,\"acc_per_s\":%lu,"
				   "\"allot_before\":%lu,\"allot\":%lu,\"resident\":%lu,\"ws\":%lu,\"avail\":%lu,"
				   "\"asked\":%lu,\"got\":%lu,\"applied\":%s", w->name, pff_move_name(r.move), r.fault_pm,
				   (unsigned long)r.rate, (unsigned long)r.allot_before, (unsigned long)w->pff.allot,
				   (unsigned long)in.resident, (unsigned long)in.ws, (unsigned long)av.avail,
				   (unsigned long)asked, (unsigned long)got, pff_on ? "true" : "false");
	}
	if (r.thrash_start) {
		char what[64];
		const char *action = what;
		if (got) /* memory is coming back: no need to stop anyone */
			snprintf(what, sizeof(what), "none: the balloon gave back %lu pages", (unsigned long)got);
		else
			action = load_control(w, what, sizeof(what));
		printf("workload %s: thrashing: %u of each 1000 accesses fault, %lu accesses/s against %lu at best; "
		       "load control: %s\n", w->name, r.fault_pm, (unsigned long)r.rate,
		       (unsigned long)w->pff.best_rate, action);
		event_emit("thrashing", "\"name\":\"%s\",\"fault_pm\":%u,\"acc_per_s\":%lu,\"best_acc_per_s\":%lu,"
			   "\"majflt_per_s\":%lu,\"resident\":%lu,\"ws\":%lu,\"swapped\":%lu,\"free\":%lu,"
			   "\"periods\":%u,\"load_control\":\"%s\"", w->name, r.fault_pm, (unsigned long)r.rate,
			   (unsigned long)w->pff.best_rate, (unsigned long)(maj * 1000 / dt), (unsigned long)in.resident,
			   (unsigned long)in.ws, (unsigned long)w->area->swapped, (unsigned long)kernel_pfa.st.free,
			   pff_params.periods, action);
	} else if (r.thrash_end) {
		printf("workload %s: no longer thrashing: %u of each 1000 accesses fault, %lu accesses/s\n", w->name,
		       r.fault_pm, (unsigned long)r.rate);
		event_emit("thrashing_end", "\"name\":\"%s\",\"fault_pm\":%u,\"acc_per_s\":%lu,\"best_acc_per_s\":%lu",
			   w->name, r.fault_pm, (unsigned long)r.rate, (unsigned long)w->pff.best_rate);
	}
}

static void sample_rates(struct workload *w)
{
	uint64_t now = clock_ms();
	if (now - w->rate_ms < 1000)
		return;
	uint64_t dt = now - w->rate_ms;
	uint64_t acc = w->accesses - w->rate_acc, maj = wl_majflt(w) - w->rate_maj;
	w->acc_per_s = acc * 1000 / dt;
	w->min_per_s = (wl_minflt(w) - w->rate_min) * 1000 / dt;
	w->maj_per_s = maj * 1000 / dt;
	w->rate_ms = now;
	w->rate_acc = w->accesses;
	w->rate_min = wl_minflt(w);
	w->rate_maj = wl_majflt(w);
	/* The fill's faults are first touches, not a need for memory. */
	if (w->state == WL_RUNNING && (w->filled || !w->fill))
		pff_period(w, dt, acc, maj);
	wl_event("workload", w); /* once a second: a fault storm cannot flood the console */
}

static void run_slices(struct work *wk);
static struct work slices_work = { .fn = run_slices };

static void run_slices(struct work *wk)
{
	bool any = false;
	resume_check();
	for (unsigned i = 0; i < WORKLOADS; i++) {
		struct workload *w = &wls[i];
		if (w->state != WL_RUNNING)
			continue;
		w->deadline_ns = clock_ns() + SLICE_NS;
		int rc = vm_run(w->area, slice, w);
		sample_rates(w);
		if (rc < 0) {
			w->state = WL_FAILED;
			w->error = rc;
			printf("workload %s: stopped: %s (%d)\n", w->name,
			       rc == -ENOMEM ? "out of memory, swap full or off" :
			       rc == -EIO ? "a page could not be read back from swap" :
			       rc == -EILSEQ ? "a page came back with the wrong contents" : "error", rc);
			release(w);
			wl_event("workload_error", w);
		} else if (rc == 1) {
			w->state = WL_DONE;
			release(w);
			printf("workload %s: done, %lu accesses in %lu ms\n", w->name, (unsigned long)w->accesses,
			       (unsigned long)(w->end_ms - w->start_ms));
			wl_event("workload_done", w);
		} else {
			any = true;
		}
	}
	for (unsigned i = 0; i < WORKLOADS; i++)
		if (wls[i].state == WL_SUSPENDED) {
			sample_rates(&wls[i]); /* its once-a-second line goes on: 0 accesses */
			any = true;            /* until it resumes or is stopped */
		}
	if (any)
		work_queue(wk);
}

static struct workload *find(const char *name)
{
	for (unsigned i = 0; i < WORKLOADS; i++)
		if (wls[i].state != WL_FREE && strcmp(wls[i].name, name) == 0)
			return &wls[i];
	return NULL;
}

/* "1,2,3,4" -> refs; every page below npages. */
static int parse_refs(struct workload *w, const char *s)
{
	w->refs = malloc(REFS_MAX * sizeof(*w->refs));
	if (!w->refs)
		return -ENOMEM;
	char buf[32];
	while (*s) {
		size_t n = strcspn(s, ",");
		uint64_t p;
		if (n == 0 || n >= sizeof(buf) || w->nrefs == REFS_MAX)
			return -EINVAL;
		memcpy(buf, s, n);
		buf[n] = 0;
		if (parse_u64_max(buf, w->npages - 1, &p) < 0)
			return -EINVAL;
		w->refs[w->nrefs++] = (uint32_t)p;
		s += n + (s[n] == ',');
	}
	return w->nrefs ? 0 : -EINVAL;
}

static int parse_args(struct workload *w, int argc, char **argv)
{
	uint64_t size = 64ULL << 20, hot = 0, hot_at = 0, v;
	const char *refs = NULL;
	w->pattern = P_UNIFORM;
	w->hot_pct = 90;
	w->write_pct = 30;
	w->seed = 1;
	w->fill = true;
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq) {
			printf("run: %s: expected key=value\n", argv[i]);
			return -EINVAL;
		}
		*eq = 0;
		const char *k = argv[i], *val = eq + 1;
		int rc = 0;
		if (strcmp(k, "size") == 0)
			rc = parse_size_max(val, VM_AREA_SPAN, &size);
		else if (strcmp(k, "hot") == 0)
			rc = parse_size_max(val, VM_AREA_SPAN, &hot);
		else if (strcmp(k, "hotat") == 0)
			rc = parse_size_max(val, VM_AREA_SPAN, &hot_at);
		else if (strcmp(k, "prio") == 0 && (rc = parse_u64_max(val, 99, &v)) == 0)
			w->prio = (unsigned)v;
		else if (strcmp(k, "hotpct") == 0 && (rc = parse_u64_max(val, 100, &v)) == 0)
			w->hot_pct = (unsigned)v;
		else if (strcmp(k, "write") == 0 && (rc = parse_u64_max(val, 100, &v)) == 0)
			w->write_pct = (unsigned)v;
		else if (strcmp(k, "loop") == 0)
			rc = parse_u64_max(val, VM_AREA_SPAN >> PAGE_SHIFT, &w->loop);
		else if (strcmp(k, "count") == 0)
			rc = parse_u64(val, &w->limit);
		else if (strcmp(k, "seed") == 0)
			rc = parse_u64(val, &w->seed);
		else if (strcmp(k, "fill") == 0 && (rc = parse_u64_max(val, 1, &v)) == 0)
			w->fill = v;
		else if (strcmp(k, "file") == 0 && (rc = parse_u64_max(val, 100, &v)) == 0)
			w->file_pct = (unsigned)v;
		else if (strcmp(k, "filecheck") == 0 && (rc = parse_u64_max(val, 1, &v)) == 0)
			w->file_check = v;
		else if (strcmp(k, "refs") == 0)
			refs = val;
		else if (strcmp(k, "pattern") == 0) {
			rc = -EINVAL;
			for (int p = 0; p < P_COUNT; p++)
				if (strcmp(val, pattern_names[p]) == 0) {
					w->pattern = (enum pattern)p;
					rc = 0;
				}
		} else if (strcmp(k, "hotpct") && strcmp(k, "write") && strcmp(k, "fill") && strcmp(k, "file") &&
			   strcmp(k, "filecheck") && strcmp(k, "prio"))
			rc = -ENOENT;
		if (rc < 0) {
			printf("run: %s=%s: %s\n", k, val, rc == -ENOENT ? "unknown key" : "bad value");
			return -EINVAL;
		}
	}
	w->npages = size >> PAGE_SHIFT;
	if (w->npages == 0) {
		printf("run: size must be at least one page\n");
		return -EINVAL;
	}
	w->hot = hot ? hot >> PAGE_SHIFT : (w->npages + 9) / 10;
	if (w->hot == 0 || w->hot > w->npages) {
		printf("run: hot must be between one page and the size\n");
		return -EINVAL;
	}
	w->hot_at = hot_at >> PAGE_SHIFT;
	if (w->hot_at >= w->npages) {
		printf("run: hotat must be below the size\n");
		return -EINVAL;
	}
	if (w->pattern == P_LOOP && (w->loop == 0 || w->loop > w->npages)) {
		printf("run: pattern=loop needs loop=PAGES, 1 .. %lu\n", (unsigned long)w->npages);
		return -EINVAL;
	}
	if (w->pattern == P_REFS && (!refs || parse_refs(w, refs) < 0)) {
		printf("run: pattern=refs needs refs=P,P,... (at most %d pages below %lu)\n", REFS_MAX,
		       (unsigned long)w->npages);
		return -EINVAL;
	}
	if (w->file_pct) {
		struct pagecache_stats cs;
		pagecache_get_stats(&cs);
		w->file_pages = cs.file_pages;
		if (!w->file_pages) {
			printf("run: file=%u needs a file: vm.cache=DEV or `cache attach DEV`\n", w->file_pct);
			return -EINVAL;
		}
	}
	w->rng = w->seed ? w->seed : 0x9e3779b97f4a7c15ULL;
	return 0;
}

/* The cmdline's settings, read when the first workload starts. */
static void params_init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	const char *v = cmdline_get("vm.pff");
	pff_on = !(v && strcmp(v, "off") == 0);
	v = cmdline_get("vm.load_control");
	load_control_on = !(v && strcmp(v, "off") == 0);
	pff_params.high_pm = (unsigned)cmdline_get_u64("vm.pff_high", pff_params.high_pm);
	pff_params.low_pm = (unsigned)cmdline_get_u64("vm.pff_low", pff_params.low_pm);
	pff_params.thrash_pm = (unsigned)cmdline_get_u64("vm.thrash_pm", pff_params.thrash_pm);
}

static int cmd_run(int argc, char **argv)
{
	if (argc < 2 || strlen(argv[1]) >= sizeof(wls[0].name)) {
		printf("usage: run NAME [size=64M] [pattern=uniform|hotcold|seq|loop|refs] [hot=SIZE] [hotat=0]\n"
		       "           [hotpct=90] [write=30] [loop=PAGES] [refs=P,P,...] [count=ACCESSES] [seed=1]\n"
		       "           [fill=1] [file=PCT] [filecheck=0] [prio=0]\n");
		return -EINVAL;
	}
	params_init();
	struct workload *w = find(argv[1]);
	if (w && live(w)) {
		printf("run: %s is %s; stop it first\n", argv[1], state_names[w->state]);
		return -EBUSY;
	}
	if (!w)
		for (unsigned i = 0; i < WORKLOADS && !w; i++)
			if (wls[i].state == WL_FREE)
				w = &wls[i];
	if (!w) /* reuse the oldest finished one */
		for (unsigned i = 0; i < WORKLOADS && !w; i++)
			if (!live(&wls[i]))
				w = &wls[i];
	if (!w) {
		printf("run: %d workloads are running already\n", WORKLOADS);
		return -ENOSPC;
	}
	struct workload nw = { 0 };
	strcpy(nw.name, argv[1]);
	int rc = parse_args(&nw, argc, argv);
	if (rc == 0) {
		nw.version = calloc(nw.npages, sizeof(*nw.version));
		rc = nw.version ? vm_area_create(nw.npages, &nw.area) : -ENOMEM;
		if (rc < 0)
			printf("run: %s\n", rc == -ENOSPC ? "no region free" : "no memory for its page tables");
	}
	if (rc < 0) {
		free(nw.version);
		free(nw.refs);
		return rc;
	}
	nw.state = WL_RUNNING;
	nw.start_ms = nw.rate_ms = clock_ms();
	*w = nw;
	printf("run %s: %lu pages at %#lx, %s, write %u%%\n", w->name, (unsigned long)w->npages,
	       (unsigned long)w->area->base, pattern_names[w->pattern], w->write_pct);
	wl_event("workload_start", w);
	work_queue(&slices_work);
	return 0;
}
SHELL_COMMAND(run, "NAME [size= pattern= hot= hotat= hotpct= write= loop= refs= count= seed= fill= file= filecheck= prio=]",
	      "start a workload on demand-paged memory", cmd_run);

static int cmd_stop(int argc, char **argv)
{
	struct workload *w = argc == 2 ? find(argv[1]) : NULL;
	if (!w) {
		printf("stop: %s\n", argc == 2 ? "no such workload" : "usage: stop NAME");
		return argc == 2 ? -ENOENT : -EINVAL;
	}
	if (live(w)) {
		w->state = WL_STOPPED;
		release(w);
	}
	printf("stop %s: %lu accesses, faults minor %lu major %lu\n", w->name, (unsigned long)w->accesses,
	       (unsigned long)wl_minflt(w), (unsigned long)wl_majflt(w));
	wl_event("workload_stop", w);
	return 0;
}
SHELL_COMMAND(stop, "NAME", "stop a workload and free its memory", cmd_stop);

/* Change a running workload's hot set, mix or priority: `set NAME hot=SIZE
 * hotat=OFFSET hotpct=N write=N prio=N` (any of them). The working-set
 * scenario moves the hot set with it. */
static int cmd_set(int argc, char **argv)
{
	struct workload *w = argc >= 2 ? find(argv[1]) : NULL;
	if (!w || !live(w)) {
		printf("set: %s\n", argc < 2 ? "usage: set NAME [hot=SIZE] [hotat=OFFSET] [hotpct=N] [write=N] [prio=N]"
					    : "no such workload running");
		return argc < 2 ? -EINVAL : -ENOENT;
	}
	uint64_t hot = w->hot, hot_at = w->hot_at, hot_pct = w->hot_pct, write_pct = w->write_pct, prio = w->prio;
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		int rc = -ENOENT;
		if (eq) {
			*eq = 0;
			const char *k = argv[i], *val = eq + 1;
			uint64_t bytes;
			if (strcmp(k, "hot") == 0 && (rc = parse_size_max(val, w->npages << PAGE_SHIFT, &bytes)) == 0)
				hot = bytes >> PAGE_SHIFT;
			else if (strcmp(k, "hotat") == 0 &&
				 (rc = parse_size_max(val, (w->npages - 1) << PAGE_SHIFT, &bytes)) == 0)
				hot_at = bytes >> PAGE_SHIFT;
			else if (strcmp(k, "hotpct") == 0)
				rc = parse_u64_max(val, 100, &hot_pct);
			else if (strcmp(k, "write") == 0)
				rc = parse_u64_max(val, 100, &write_pct);
			else if (strcmp(k, "prio") == 0)
				rc = parse_u64_max(val, 99, &prio);
			*eq = '=';
		}
		if (rc < 0 || hot == 0) {
			printf("set: %s: %s\n", argv[i], rc == -ENOENT ? "not one of hot= hotat= hotpct= write= prio="
								      : "bad value");
			return -EINVAL;
		}
	}
	/* Between accesses: the one in progress keeps its page. */
	w->hot = hot;
	w->hot_at = hot_at;
	w->hot_pct = (unsigned)hot_pct;
	w->write_pct = (unsigned)write_pct;
	w->prio = (unsigned)prio;
	printf("set %s: hot %lu pages at page %lu, hotpct %u, write %u, prio %u\n", w->name, (unsigned long)w->hot,
	       (unsigned long)w->hot_at, w->hot_pct, w->write_pct, w->prio);
	wl_event("workload_set", w);
	return 0;
}
SHELL_COMMAND(set, "NAME [hot= hotat= hotpct= write= prio=]", "change a running workload's hot set or priority",
	      cmd_set);

static int cmd_ps(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("%-15s %-8s %-8s %9s %9s %9s %9s %9s %9s %9s\n", "NAME", "STATE", "PATTERN", "PAGES", "RESIDENT",
	       "SWAPPED", "MINFLT", "MAJFLT", "ACC/S", "MAJ/S");
	char buf[EVENT_LINE_MAX];
	size_t len = 0;
	buf[0] = 0;
	for (unsigned i = 0; i < WORKLOADS; i++) {
		const struct workload *w = &wls[i];
		if (w->state == WL_FREE)
			continue;
		uint64_t res = w->area ? w->area->resident : 0, sw = w->area ? w->area->swapped : 0;
		printf("%-15s %-8s %-8s %9lu %9lu %9lu %9lu %9lu %9lu %9lu\n", w->name, state_names[w->state],
		       pattern_names[w->pattern], (unsigned long)w->npages, (unsigned long)res, (unsigned long)sw,
		       (unsigned long)wl_minflt(w), (unsigned long)wl_majflt(w), (unsigned long)w->acc_per_s,
		       (unsigned long)w->maj_per_s);
		int n = snprintf(buf + len, sizeof(buf) - len,
				 "%s{\"name\":\"%s\",\"state\":\"%s\",\"pages\":%lu,\"resident\":%lu,\"swapped\":%lu,"
				 "\"minflt\":%lu,\"majflt\":%lu,\"accesses\":%lu,\"acc_per_s\":%lu}",
				 len ? "," : "", w->name, state_names[w->state], (unsigned long)w->npages,
				 (unsigned long)res, (unsigned long)sw, (unsigned long)wl_minflt(w),
				 (unsigned long)wl_majflt(w), (unsigned long)w->accesses, (unsigned long)w->acc_per_s);
		if (n > 0 && (size_t)n < sizeof(buf) - len)
			len += (size_t)n;
	}
	event_emit("ps", "\"workloads\":[%s]", buf);
	return 0;
}
SHELL_COMMAND(ps, "", "workloads: resident pages, faults, accesses per second", cmd_ps);

static int cmd_ws(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct vm_ws_params p;
	vm_ws_params(&p);
	printf("working set: pages used in the last %lu ms; idle: unused for %lu ms or more "
	       "(the aging hand's round: %lu ms, the last took %lu us for %lu pages)\n",
	       (unsigned long)p.tau_ms, (unsigned long)p.idle_ms, (unsigned long)p.round_ms,
	       (unsigned long)(p.round_ns / 1000), (unsigned long)p.round_pages);
	struct vm_avail av;
	vm_avail(&av);
	printf("what can go without hurting a working set: %lu pages (free %lu, cache %lu, resident %lu, "
	       "working sets %lu, margin %lu)\n", (unsigned long)av.avail, (unsigned long)av.free,
	       (unsigned long)av.cache, (unsigned long)av.resident, (unsigned long)av.ws, (unsigned long)av.margin);
	printf("%-15s %-9s %6s %9s %9s %9s %9s %9s %7s %9s\n", "NAME", "STATE", "REGION", "PAGES", "RESIDENT", "WS",
	       "IDLE", "ALLOT", "FLT/1K", "MAJ/S");
	for (unsigned i = 0; i < WORKLOADS; i++) {
		const struct workload *w = &wls[i];
		if (!live(w))
			continue;
		printf("%-15s %-9s %6u %9lu %9lu %9lu %9lu %9lu %7u %9lu%s\n", w->name, state_names[w->state],
		       w->area->id, (unsigned long)w->npages, (unsigned long)w->area->resident,
		       (unsigned long)w->area->ws, (unsigned long)w->area->idle, (unsigned long)w->area->allot,
		       w->fault_pm, (unsigned long)w->maj_per_s, w->pff.thrashing ? "  thrashing" : "");
	}
	vm_ws_emit();
	return 0;
}
SHELL_COMMAND(ws, "", "working-set and idle estimates of each workload (the aging hand's)", cmd_ws);
