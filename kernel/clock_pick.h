/*
 * clock_pick: which ruler's figure for the TSC's rate to believe — the pure
 * part of kernel/clock.c (no I/O), so the host unit test can hand it the
 * lies and disagreements QEMU never produces on demand.
 *
 * A figure is usable when it exists, was not refused by its ruler, and lies
 * in CLOCK_TSC_MIN_HZ..CLOCK_TSC_MAX_HZ (a TSC outside that is a broken
 * ruler, as the 1-3 MHz port 0x61 gave on microvm). Two figures agree when
 * they differ by at most CLOCK_AGREE_PERCENT of the larger.
 */
#ifndef BLIMP_CLOCK_PICK_H
#define BLIMP_CLOCK_PICK_H

#include <stdbool.h>
#include <stdint.h>

#define CLOCK_TSC_MIN_HZ 100000000ULL   /* 100 MHz */
#define CLOCK_TSC_MAX_HZ 10000000000ULL /* 10 GHz */
#define CLOCK_AGREE_PERCENT 2

struct clock_figure {
	const char *name;
	uint64_t tsc_hz;       /* what the ruler says the TSC does; 0: no figure */
	const char *refused;   /* why the ruler's figure is not to be used, or NULL */
};

bool clock_in_range(uint64_t tsc_hz);
bool clock_figure_ok(const struct clock_figure *f);
bool clock_agree(uint64_t a, uint64_t b);

/*
 * Of figures f[0..n) in order of preference: the one named `want` (NULL:
 * none) if usable; else the first usable one that another usable one
 * agrees with; else the first usable one. Returns its index, or -1 when
 * none is usable; *check is the first other usable figure that agrees with
 * it, or -1.
 */
int clock_pick(const struct clock_figure *f, int n, const char *want, int *check);

#endif
