/*
 * clock: the TSC as a monotonic clock, its rate measured against the
 * rulers the machine really has (see clock.h).
 *
 * A ruler is a counter of known frequency. Machines differ in which they
 * have (QEMU 7.2, TCG):
 *
 *   ruler      rate                 q35  pc   microvm  microvm,pit=off
 *   hpet       from its registers   yes  yes  -        -
 *   pm_timer   3.579545 MHz         yes  yes  -        -       (FADT; microvm's is hardware-reduced)
 *   pit        1.193182 MHz         yes  yes  yes      -       (channel 0, read back by latching)
 *   rtc        its seconds change   yes  yes  yes      yes     (1-2 s: only when the above fail)
 *   cpuid      declared, not timed  only with a TSC frequency leaf (0x15/0x16, 0x40000010)
 *
 * In that order of preference. One window of at least 2 ms (WINDOW_MS) is
 * timed by the first ruler present: it opens at clock_calibrate_start and
 * closes in clock_calibrate, so the boot's work in between (PCI scan,
 * device probes) fills it instead of a wait. The TSC and every other
 * counter are read at both ends, so each ruler gives its own TSC rate from the same window. A rate
 * outside 100 MHz..10 GHz is refused with a message (the 1-3 MHz that the
 * PIT's channel 2 gave on microvm, where port 0x61 does not exist, is
 * such a case). The rate used is the first ruler's that a second ruler
 * agrees with (within 2 %); if none agree, the first sane one, with a
 * warning (the judging is clock_pick.c, host-tested). CPUID's figures are what the hypervisor says, not what the TSC
 * does — under TCG the TSC runs at the host's rate whatever a
 * tsc-frequency= claims — so they are a check, and the last resort.
 *
 * clock.ruler=NAME prefers one ruler (if present and sane), to test each.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "clock.h"
#include "clock_pick.h"
#include "acpi.h"
#include "cmdline.h"
#include "event.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/mmio.h"
#include "arch/x86_64/paging.h"

CMDLINE_OPTION(clock_ruler, "clock.ruler",
	       "prefer this clock ruler if present and sane: hpet|pm_timer|pit|rtc|cpuid");

#define PIT_HZ 1193182ULL
#define WINDOW_MS 2
/* A window ends within this many TSC cycles at any sane rate (20 ms at
 * 10 GHz, 2 s at 100 MHz); a ruler that has not shown WINDOW_MS by then is
 * stuck or absent. */
#define WINDOW_MAX_CYCLES 200000000ULL

static uint64_t tsc_hz = 1000000000ULL; /* a guess until calibrated */
static uint64_t tsc_at_boot;
static const char *ruler_used = "none";

enum { R_HPET, R_PM_TIMER, R_PIT, R_RTC, R_CPUID, R_COUNT };

struct ruler {
	struct clock_figure fig; /* name, what it says the TSC does, why refused */
	bool present;          /* found (and its registers answered) */
	uint64_t hz;           /* its ticks per second */
	uint64_t mask;         /* its counter's width */
	uint64_t (*read)(void);
	uint64_t tsc0, c0;     /* at the window's start */
	char why[96];          /* fig.refused points here */
};

static struct ruler rulers[R_COUNT] = {
	[R_HPET] = { .fig.name = "hpet" },
	[R_PM_TIMER] = { .fig.name = "pm_timer" },
	[R_PIT] = { .fig.name = "pit" },
	[R_RTC] = { .fig.name = "rtc" },
	[R_CPUID] = { .fig.name = "cpuid" },
};

static void refuse(struct ruler *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct ruler *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->fig.refused = r->why;
}

/* ------------------------------------------------------------- HPET */

static volatile uint8_t *hpet_regs;
static uint64_t hpet_config_before;
#define HPET_CAP 0x000
#define HPET_CONFIG 0x010
#define HPET_COUNTER 0x0f0
#define HPET_CAP_64BIT (1ULL << 13)
#define HPET_MAX_PERIOD_FS 100000000ULL /* 100 ns (HPET 1.0a, 2.3.4) */

static uint64_t hpet_read(void)
{
	/* One 64-bit read (QEMU's HPET takes it); for a 32-bit counter the
	 * ruler's mask keeps only the bits it has. */
	return mmio_read64(hpet_regs + HPET_COUNTER);
}

static void hpet_probe(struct ruler *r)
{
	if (!acpi.have_hpet)
		return;
	if (paging_map_mmio(acpi.hpet.address, ACPI_HPET_REGS_LEN) < 0) {
		refuse(r, "HPET at %#lx could not be mapped", (unsigned long)acpi.hpet.address);
		return;
	}
	hpet_regs = (volatile uint8_t *)(uintptr_t)acpi.hpet.address;
	uint64_t cap = mmio_read64(hpet_regs + HPET_CAP);
	uint64_t period = cap >> 32;
	r->present = true;
	if (period == 0 || period > HPET_MAX_PERIOD_FS || (cap & 0xff) == 0) {
		refuse(r, "HPET capabilities %#lx: period %lu fs is not in 1..100000000 or no revision",
		       (unsigned long)cap, (unsigned long)period);
		return;
	}
	r->hz = 1000000000000000ULL / period;
	r->mask = cap & HPET_CAP_64BIT ? ~0ULL : 0xffffffffULL;
	r->read = hpet_read;
	hpet_config_before = mmio_read64(hpet_regs + HPET_CONFIG);
	mmio_write64(hpet_regs + HPET_CONFIG, hpet_config_before | 1); /* ENABLE_CNF: count */
}

static void hpet_done(void)
{
	if (hpet_regs && rulers[R_HPET].read)
		mmio_write64(hpet_regs + HPET_CONFIG, hpet_config_before);
}

/* ------------------------------------------------------------- PM timer */

static uint64_t pm_timer_read(void)
{
	return inl(acpi.fadt.pm_tmr_blk);
}

static void pm_timer_probe(struct ruler *r)
{
	if (!acpi.have_fadt || acpi.fadt.pm_tmr_blk == 0)
		return;
	r->present = true;
	r->hz = ACPI_PM_TIMER_HZ;
	r->mask = acpi.fadt.pm_tmr_bits == 32 ? 0xffffffffULL : 0xffffffULL;
	r->read = pm_timer_read;
}

/* ------------------------------------------------------------- PIT */

/* Channel 0, mode 0 (count down once from PIT_LOAD), read back by latching
 * the count: no port 0x61 (the PC speaker's gate and OUT2, which microvm
 * does not have) and no interrupt needed. 0xf000 ticks are 51 ms, longer
 * than any window, so the count never wraps while we look. Mode 0 also
 * ends the firmware's periodic 18.2 Hz tick: after its one terminal count
 * the PIT has nothing more to do, so QEMU has no timer to run for it. */
#define PIT_LOAD 0xf000

static uint16_t pit_count(void)
{
	outb(0x43, 0x00); /* latch channel 0 */
	uint8_t lo = inb(0x40);
	return (uint16_t)(lo | inb(0x40) << 8);
}

static uint64_t pit_read(void)
{
	return (uint16_t)(PIT_LOAD - pit_count()); /* an up-counter mod 2^16 */
}

static void pit_load(void)
{
	outb(0x43, 0x30); /* channel 0, lo/hi byte, mode 0, binary */
	outb(0x40, PIT_LOAD & 0xff);
	outb(0x40, PIT_LOAD >> 8);
}

/* Whether channel 0's count has passed zero since pit_load (51 ms): in
 * mode 0 its OUT goes high then and stays high, and the read-back
 * command's status byte shows OUT in bit 7. A window longer than that
 * would be measured modulo 2^16 ticks, so it is not used. */
static bool pit_passed_zero(void)
{
	outb(0x43, 0xe2); /* read-back: latch channel 0's status, not its count */
	return inb(0x40) & 0x80;
}

static void pit_probe(struct ruler *r)
{
	pit_load();
	uint16_t a = pit_count(), b = pit_count();
	/* No PIT: the ports read back 0xff (0xffff) or 0, never a count just
	 * below what was loaded that then goes down. */
	if (a == 0xffff && b == 0xffff)
		return;
	r->present = true;
	if (a > PIT_LOAD || b > a || a == 0) {
		refuse(r, "PIT channel 0 reads back %#x then %#x after loading 0xf000", a, b);
		return;
	}
	r->hz = PIT_HZ;
	r->mask = 0xffff;
	r->read = pit_read;
}

/* ------------------------------------------------------------- RTC */

static uint8_t cmos_read(uint8_t reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

/*
 * The RTC's seconds register, which QEMU computes from its clock at each
 * read: the TSC between two changes of it is one second, exactly as far as
 * polling can tell. (Its periodic flag was tried first: under TCG on a
 * loaded host QEMU's timer for it fires late and drops the periods it
 * missed, so it rose at a third of its rate.) Costs one to two seconds, so
 * it is used only when no counter could time a window. Returns the TSC
 * rate, or 0 (with fig.refused set if an RTC is there).
 */
#define RTC_MAX_CYCLES 25000000000ULL /* 2.5 s at 10 GHz */

/* The seconds register once no update is in progress (UIP lasts 2 ms on
 * a real RTC; one stuck on is a device lie: its reading is taken anyway). */
static uint8_t rtc_seconds(void)
{
	for (int spins = 0; (cmos_read(0x0a) & 0x80) && spins < 1000000; spins++)
		cpu_relax();
	return cmos_read(0x00);
}

static uint64_t rtc_measure(struct ruler *r)
{
	if (cmos_read(0x0a) == 0xff && cmos_read(0x00) == 0xff)
		return 0; /* no RTC */
	r->present = true;
	r->hz = 1;
	uint64_t start = rdtsc(), t0 = 0, t;
	uint8_t s = rtc_seconds();
	int changes = 0;
	while (changes < 2 && (t = rdtsc()) - start < RTC_MAX_CYCLES) {
		uint8_t now = rtc_seconds();
		if (now != s) {
			s = now;
			if (++changes == 1)
				t0 = t;
		}
	}
	if (changes < 2) {
		refuse(r, "RTC seconds changed %d times in 2.5e10 TSC cycles", changes);
		return 0;
	}
	return t - t0;
}

/* ------------------------------------------------------------- CPUID */

/* The TSC rate the CPU or the hypervisor declares, or 0. */
static uint64_t cpuid_declared(const char **which)
{
	uint32_t r[4];
	cpuid(0, 0, r);
	uint32_t max = r[0];
	if (max >= 0x15) {
		cpuid(0x15, 0, r); /* TSC/crystal ratio EBX/EAX, crystal Hz in ECX */
		if (r[0] && r[1] && r[2]) {
			*which = "leaf 0x15";
			return (uint64_t)r[2] * r[1] / r[0];
		}
	}
	cpuid(1, 0, r);
	if (r[2] & (1u << 31)) { /* a hypervisor is present */
		cpuid(0x40000000, 0, r);
		char sig[13];
		memcpy(sig, &r[1], 4);
		memcpy(sig + 4, &r[2], 4);
		memcpy(sig + 8, &r[3], 4);
		sig[12] = 0;
		bool known = memcmp(sig, "KVMKVMKVM\0\0\0", 12) == 0 ||
			     strcmp(sig, "VMwareVMware") == 0 || strcmp(sig, "TCGTCGTCGTCG") == 0;
		if (known && r[0] >= 0x40000010 && r[0] < 0x40010000) {
			cpuid(0x40000010, 0, r); /* TSC kHz in EAX */
			if (r[0]) {
				*which = "leaf 0x40000010";
				return (uint64_t)r[0] * 1000;
			}
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, r); /* base MHz in EAX */
		if (r[0] & 0xffff) {
			*which = "leaf 0x16";
			return (uint64_t)(r[0] & 0xffff) * 1000000;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- the window */

/* TSC and counter read together: the TSC halfway across the counter's
 * read, from the tightest of a few tries — the host may deschedule QEMU's
 * vCPU between a TSC read and a counter read, and one such gap of 2 ms
 * was seen to move a 10 ms window's figure by 20 %. */
static void sample(struct ruler *r, uint64_t *tsc, uint64_t *c)
{
	uint64_t best = ~0ULL;
	for (int i = 0; i < 5; i++) {
		uint64_t a = rdtsc();
		uint64_t v = r->read();
		uint64_t b = rdtsc();
		if (b - a < best) {
			best = b - a;
			*c = v;
			*tsc = a + (b - a) / 2;
		}
	}
}

static bool window_open_now; /* clock_calibrate_start opened one */

/* The window's start: every usable counter read. */
static void window_open(void)
{
	for (int i = R_HPET; i <= R_PIT; i++)
		if (rulers[i].read && !rulers[i].fig.refused)
			sample(&rulers[i], &rulers[i].tsc0, &rulers[i].c0);
}

/*
 * The window's end once `driver` shows WINDOW_MS since window_open (at
 * once if the boot's work in between took that long): every usable
 * counter read again. Returns false if the driver never showed WINDOW_MS
 * (it is refused).
 */
static bool window_close(struct ruler *driver)
{
	uint64_t want = driver->hz * WINDOW_MS / 1000, start = rdtsc();
	uint64_t prev = 0;
	for (;;) {
		uint64_t d = (driver->read() - driver->c0) & driver->mask;
		if (d >= want)
			break;
		if (d < prev) {
			refuse(driver, "counter went back from %lu to %lu ticks", (unsigned long)prev,
			       (unsigned long)d);
			return false;
		}
		prev = d;
		if (rdtsc() - start > WINDOW_MAX_CYCLES) {
			refuse(driver, "counter showed %lu of %lu ticks in 2e8 TSC cycles (stuck or absent)",
			       (unsigned long)d, (unsigned long)want);
			return false;
		}
	}
	for (int i = R_HPET; i <= R_PIT; i++) {
		struct ruler *r = &rulers[i];
		if (!r->read || r->fig.refused)
			continue;
		uint64_t tsc1, c1;
		sample(r, &tsc1, &c1);
		uint64_t ticks = (c1 - r->c0) & r->mask;
		if (ticks == 0) {
			refuse(r, "counter did not move in %lu TSC cycles", (unsigned long)(tsc1 - r->tsc0));
			continue;
		}
		r->fig.tsc_hz = (tsc1 - r->tsc0) * r->hz / ticks;
	}
	return true;
}

static bool sane(const struct ruler *r)
{
	return clock_figure_ok(&r->fig);
}

/* Which ruler's figure to use (clock_pick.c); *check the one that agrees. */
static struct ruler *choose(struct ruler **check)
{
	struct clock_figure figs[R_COUNT];
	for (int i = 0; i < R_COUNT; i++)
		figs[i] = rulers[i].fig;
	int c, use = clock_pick(figs, R_COUNT, cmdline_get("clock.ruler"), &c);
	*check = c >= 0 ? &rulers[c] : NULL;
	return use >= 0 ? &rulers[use] : NULL;
}

void clock_init(void)
{
	tsc_at_boot = rdtsc();
}

void clock_calibrate_start(void)
{
	hpet_probe(&rulers[R_HPET]);
	pm_timer_probe(&rulers[R_PM_TIMER]);
	pit_probe(&rulers[R_PIT]);
	window_open();
	window_open_now = true;
}

void clock_calibrate(void)
{
	if (!window_open_now)
		clock_calibrate_start();
	/* The boot's work since the window opened is bounded (milliseconds),
	 * far inside the PM timer's 4.7 s and the HPET's 42 s or more; the
	 * PIT's 51 ms is checked, and exceeded a new window is opened. */
	struct ruler *pit = &rulers[R_PIT];
	if (pit->read && !pit->fig.refused && pit_passed_zero()) {
		pit_load();
		window_open();
	}
	/* The first counter present times the window; if it fails, the next
	 * one times a window of its own. */
	for (int i = R_HPET; i <= R_PIT; i++) {
		if (!rulers[i].read || rulers[i].fig.refused)
			continue;
		if (!window_open_now)
			window_open();
		window_open_now = false;
		if (window_close(&rulers[i]))
			break;
	}
	window_open_now = false;
	hpet_done();

	for (int i = R_HPET; i <= R_PIT; i++) {
		struct ruler *r = &rulers[i];
		if (r->fig.tsc_hz && !r->fig.refused && !clock_in_range(r->fig.tsc_hz))
			refuse(r, "TSC at %lu Hz is outside 100 MHz..10 GHz", (unsigned long)r->fig.tsc_hz);
	}
	bool measured = false;
	for (int i = R_HPET; i <= R_PIT; i++)
		measured |= sane(&rulers[i]);
	/* The RTC only when no counter timed a window, or when asked for:
	 * it takes a second or two. */
	struct ruler *rtc = &rulers[R_RTC];
	const char *want = cmdline_get("clock.ruler");
	if (!measured || (want && strcmp(want, "rtc") == 0))
		rtc->fig.tsc_hz = rtc_measure(rtc);
	if (rtc->fig.tsc_hz && !rtc->fig.refused && !clock_in_range(rtc->fig.tsc_hz))
		refuse(rtc, "TSC at %lu Hz is outside 100 MHz..10 GHz", (unsigned long)rtc->fig.tsc_hz);
	const char *leaf = NULL;
	struct ruler *c = &rulers[R_CPUID];
	c->fig.tsc_hz = cpuid_declared(&leaf);
	c->present = c->fig.tsc_hz != 0;
	if (c->present && !clock_in_range(c->fig.tsc_hz))
		refuse(c, "CPUID (%s) declares %lu Hz, outside 100 MHz..10 GHz", leaf,
		       (unsigned long)c->fig.tsc_hz);

	struct ruler *check, *use = choose(&check);
	char list[320];
	size_t n = 0;
	list[0] = 0;
	for (int i = 0; i < R_COUNT; i++) {
		struct ruler *r = &rulers[i];
		if (!r->present)
			continue;
		if (r->fig.refused)
			printf("clock: %s refused: %s\n", r->fig.name, r->fig.refused);
		if (n < sizeof(list))
			n += (size_t)snprintf(list + n, sizeof(list) - n,
					      "%s{\"name\":\"%s\",\"tsc_hz\":%lu,\"ok\":%s}", n ? "," : "",
					      r->fig.name, (unsigned long)r->fig.tsc_hz, sane(r) ? "true" : "false");
	}
	if (use) {
		tsc_hz = use->fig.tsc_hz;
		ruler_used = use->fig.name;
		if (!check) {
			bool others = false;
			for (int i = 0; i < R_COUNT; i++)
				others |= &rulers[i] != use && sane(&rulers[i]);
			printf("clock: %s gives TSC %lu kHz; %s\n", use->fig.name,
			       (unsigned long)(tsc_hz / 1000),
			       others ? "WARNING: no other ruler agrees within 2 %" :
					"no second ruler to check it");
		}
	} else {
		printf("clock: WARNING: no ruler measured the TSC; times assume 1 GHz\n");
	}
	printf("clock: TSC %lu kHz by %s%s%s%s%s\n", (unsigned long)(tsc_hz / 1000), ruler_used,
	       check ? ", checked by " : "", check ? check->fig.name : "", leaf ? ", CPUID " : "",
	       leaf ? leaf : "");
	event_emit("clock", "\"ruler\":\"%s\",\"tsc_hz\":%lu,\"checked_by\":\"%s\",\"rulers\":[%s]",
		   ruler_used, (unsigned long)tsc_hz, check ? check->fig.name : "", list);
}

uint64_t clock_tsc_hz(void)
{
	return tsc_hz;
}

const char *clock_ruler(void)
{
	return ruler_used;
}

uint64_t clock_tsc_to_ns(uint64_t d)
{
	/* Split to avoid overflowing 64 bits after a few seconds at GHz rates
	 * (the remainder is below tsc_hz, at most 10 GHz: 1e19 fits). */
	return (d / tsc_hz) * 1000000000ULL + (d % tsc_hz) * 1000000000ULL / tsc_hz;
}

uint64_t clock_ns(void)
{
	return clock_tsc_to_ns(rdtsc() - tsc_at_boot);
}

uint64_t clock_ms(void)
{
	return clock_ns() / 1000000;
}
