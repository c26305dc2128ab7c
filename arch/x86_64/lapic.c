/*
 * lapic: local APIC in xAPIC (MMIO) mode, see lapic.h.
 *
 * The timer's input clock is unknown until measured, so lapic_init counts
 * its ticks over a stretch of the (already calibrated) TSC.
 */
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

static volatile uint32_t *regs;
static uint64_t timer_ticks_per_ms;

static uint32_t rd(uint32_t reg) { return regs[reg / 4]; }
static void wr(uint32_t reg, uint32_t v) { regs[reg / 4] = v; }

uint64_t lapic_base(void)
{
	return rdmsr(MSR_APIC_BASE) & ~0xfffULL;
}

void lapic_init(void)
{
	uint64_t msr = rdmsr(MSR_APIC_BASE);
	wrmsr(MSR_APIC_BASE, msr | (1 << 11)); /* globally enabled */
	regs = (volatile uint32_t *)(uintptr_t)lapic_base();
	wr(REG_SVR, 0x100 | VECTOR_SPURIOUS); /* software enable */

	/* Measure the timer against the TSC: 10 ms of a free-running count. */
	wr(REG_TIMER_DIV, 0x3); /* divide by 16 */
	wr(REG_LVT_TIMER, LVT_MASKED | VECTOR_LAPIC_TIMER);
	wr(REG_TIMER_INIT, 0xffffffff);
	uint64_t start = clock_ns();
	while (clock_ns() - start < 10 * 1000 * 1000)
		cpu_relax();
	uint32_t elapsed = 0xffffffff - rd(REG_TIMER_CUR);
	uint64_t ns = clock_ns() - start;
	wr(REG_TIMER_INIT, 0);
	timer_ticks_per_ms = (uint64_t)elapsed * 1000000 / (ns ? ns : 1);
	if (timer_ticks_per_ms == 0)
		timer_ticks_per_ms = 1;
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
