/*
 * lapic: local APIC in xAPIC (MMIO) mode, see lapic.h.
 *
 * The timer's input clock is unknown until measured. It is not given a
 * window of its own: lapic_init starts it counting down freely just before
 * the TSC is calibrated, and lapic_timer_calibrate reads it again just
 * after, so the clock's window (kernel/clock.c) times both — one wait at
 * boot instead of two.
 */
#include <stdio.h>
#include "lapic.h"
#include "cpu.h"
#include "interrupt.h"
#include "kernel/clock.h"

#define REG_ID 0x20
#define REG_EOI 0xb0
#define REG_SVR 0xf0
#define REG_LVT_TIMER 0x320
#define REG_TIMER_INIT 0x380
#define REG_TIMER_CUR 0x390
#define REG_TIMER_DIV 0x3e0
#define LVT_MASKED (1u << 16)
#define TIMER_FREE 0xffffffffu /* the free count's start: 68 s at 62.5 MHz */

static volatile uint32_t *regs;
static uint64_t timer_ticks_per_ms;
static uint64_t count_tsc0; /* the TSC when the free count started */

static uint32_t rd(uint32_t reg) { return regs[reg / 4]; }
static void wr(uint32_t reg, uint32_t v) { regs[reg / 4] = v; }

uint64_t lapic_base(void)
{
	return rdmsr(MSR_APIC_BASE) & ~0xfffULL;
}

/* The timer's current count and the TSC halfway across reading it, from
 * the tightest of a few tries (a host that deschedules QEMU's vCPU
 * between the two reads would otherwise count, as in clock.c). */
static uint32_t timer_sample(uint64_t *tsc)
{
	uint64_t best = ~0ULL;
	uint32_t cur = 0;
	for (int i = 0; i < 5; i++) {
		uint64_t a = rdtsc();
		uint32_t v = rd(REG_TIMER_CUR);
		uint64_t b = rdtsc();
		if (b - a < best) {
			best = b - a;
			cur = v;
			*tsc = a + (b - a) / 2;
		}
	}
	return cur;
}

void lapic_init(void)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);
	wrmsr(MSR_APIC_BASE, msr | (1 << 11)); /* globally enabled */
	regs = (volatile uint32_t *)(uintptr_t)lapic_base();
	wr(REG_SVR, 0x100 | VECTOR_SPURIOUS); /* software enable */

	/* A free-running count (masked: it raises nothing when it ends),
	 * read again by lapic_timer_calibrate once the TSC's rate is known. */
	wr(REG_TIMER_DIV, 0x3); /* divide by 16 */
	wr(REG_LVT_TIMER, LVT_MASKED | VECTOR_LAPIC_TIMER);
	wr(REG_TIMER_INIT, TIMER_FREE);
	timer_sample(&count_tsc0);
}

void lapic_timer_calibrate(void)
{
	uint64_t tsc1 = 0;
	uint32_t cur = timer_sample(&tsc1);
	uint64_t ns = clock_tsc_to_ns(tsc1 - count_tsc0);
	wr(REG_TIMER_INIT, 0);
	uint32_t elapsed = TIMER_FREE - cur;
	if (elapsed == 0 || ns == 0) {
		/* The count did not move (or no time passed): timers would fire
		 * at once, never late; say so rather than guess a rate. */
		printf("lapic: WARNING: timer count %#x did not move in %lu ns; one tick per ms assumed\n",
		       cur, (unsigned long)ns);
		timer_ticks_per_ms = 1;
	} else {
		timer_ticks_per_ms = (uint64_t)elapsed * 1000000 / ns;
		if (timer_ticks_per_ms == 0)
			timer_ticks_per_ms = 1;
	}
	wr(REG_LVT_TIMER, VECTOR_LAPIC_TIMER); /* one-shot, unmasked */
}

void lapic_eoi(void)
{
	if (regs)
		wr(REG_EOI, 0);
}

uint32_t lapic_id(void)
{
	return rd(REG_ID) >> 24;
}

void lapic_timer_oneshot(uint64_t ns)
{
	if (ns == 0) {
		wr(REG_TIMER_INIT, 0);
		return;
	}
	uint64_t ticks = ns * timer_ticks_per_ms / 1000000;
	if (ticks == 0)
		ticks = 1;
	if (ticks > 0xffffffff)
		ticks = 0xffffffff; /* the timer code re-arms on wake-up */
	wr(REG_TIMER_INIT, (uint32_t)ticks);
}
