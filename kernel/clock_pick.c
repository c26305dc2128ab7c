/*
 * clock_pick: judging the rulers' figures (see clock_pick.h). Shared by
 * the kernel's clock and tests/unit/test_clock_pick.c.
 */
#include <string.h>
#include "clock_pick.h"

bool clock_in_range(uint64_t tsc_hz)
{
	return tsc_hz >= CLOCK_TSC_MIN_HZ && tsc_hz <= CLOCK_TSC_MAX_HZ;
}

bool clock_figure_ok(const struct clock_figure *f)
{
	return f->tsc_hz && !f->refused && clock_in_range(f->tsc_hz);
}

bool clock_agree(uint64_t a, uint64_t b)
{
	uint64_t hi = a > b ? a : b, lo = a > b ? b : a;
	/* hi <= 10 GHz for usable figures: the products stay far below 2^64. */
	return (hi - lo) * 100 <= hi * CLOCK_AGREE_PERCENT;
}

/* The first usable figure other than f[i] that agrees with it, or -1. */
static int agreeing(const struct clock_figure *f, int n, int i)
{
	for (int j = 0; j < n; j++)
		if (j != i && clock_figure_ok(&f[j]) && clock_agree(f[i].tsc_hz, f[j].tsc_hz))
			return j;
	return -1;
}

int clock_pick(const struct clock_figure *f, int n, const char *want, int *check)
{
	int use = -1;
	for (int i = 0; i < n && use < 0; i++)
		if (want && clock_figure_ok(&f[i]) && strcmp(f[i].name, want) == 0)
			use = i;
	for (int i = 0; i < n && use < 0; i++)
		if (clock_figure_ok(&f[i]) && agreeing(f, n, i) >= 0)
			use = i;
	for (int i = 0; i < n && use < 0; i++)
		if (clock_figure_ok(&f[i]))
			use = i;
	*check = use >= 0 ? agreeing(f, n, use) : -1;
	return use;
}
