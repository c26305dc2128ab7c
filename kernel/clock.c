/*
 * clock: the TSC as a monotonic clock (see clock.h).
 *
 * The PIT runs at a known 1.193182 MHz; its channel 2 can be gated and read
 * back through port 0x61 without interrupts, which makes it the simplest
 * ruler for the TSC. Under TCG the TSC follows the host's clock, so the
 * calibration is as good as QEMU's PIT emulation.
 */
#include "clock.h"
#include "arch/x86_64/cpu.h"

#define PIT_HZ 1193182ULL
#define CALIBRATE_MS 20

static uint64_t tsc_hz = 1000000000ULL; /* a guess until calibrated */
static uint64_t tsc_at_boot;

void clock_init(void)
{
	uint16_t count = (uint16_t)(PIT_HZ * CALIBRATE_MS / 1000);

	tsc_at_boot = rdtsc();
	outb(0x61, (inb(0x61) & ~0x02) | 0x01); /* gate channel 2 on, speaker off */
	outb(0x43, 0xb0);                       /* channel 2, lo/hi, mode 0 */
	outb(0x42, count & 0xff);
	outb(0x42, count >> 8);
	uint64_t start = rdtsc();
	/* OUT2 (bit 5 of port 0x61) rises when the count reaches zero; bounded. */
	for (uint64_t spins = 0; !(inb(0x61) & 0x20) && spins < 100000000ULL; spins++)
		cpu_relax();
	uint64_t end = rdtsc();
	if (end > start)
		tsc_hz = (end - start) * 1000 / CALIBRATE_MS;
}

uint64_t clock_tsc_hz(void)
{
	return tsc_hz;
}

uint64_t clock_ns(void)
{
	uint64_t d = rdtsc() - tsc_at_boot;
	/* Split to avoid overflowing 64 bits after a few seconds at GHz rates. */
	return (d / tsc_hz) * 1000000000ULL + (d % tsc_hz) * 1000000000ULL / tsc_hz;
}

uint64_t clock_ms(void)
{
	return clock_ns() / 1000000;
}
