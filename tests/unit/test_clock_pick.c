/*
 * Host tests for kernel/clock_pick.c: which ruler's figure for the TSC's
 * rate the clock believes. QEMU gives sane rulers that agree; these are the
 * other cases — a ruler that lies (microvm's port 0x61 gave 1-3 MHz before
 * it was dropped), two that disagree, a refused one, one asked for by
 * clock.ruler=.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/clock_pick.h"

#define GHZ 1000000000ULL
enum { HPET, PM, PIT, RTC, CPUID, N };

static void figures(struct clock_figure f[N], uint64_t hpet, uint64_t pm, uint64_t pit,
		    uint64_t rtc, uint64_t cpuid)
{
	static const char *names[N] = { "hpet", "pm_timer", "pit", "rtc", "cpuid" };
	uint64_t hz[N] = { hpet, pm, pit, rtc, cpuid };
	for (int i = 0; i < N; i++)
		f[i] = (struct clock_figure){ .name = names[i], .tsc_hz = hz[i], .refused = NULL };
}

/* Picks and checks by name, so a failure says which rulers. */
static void expect(const struct clock_figure f[N], const char *want, int use, int check)
{
	int c = -2;
	int u = clock_pick(f, N, want, &c);
	if (u != use || c != check)
		fail_msg("clock.ruler=%s: expected %s checked by %s, got %s checked by %s",
			 want ? want : "(none)", use >= 0 ? f[use].name : "none",
			 check >= 0 ? f[check].name : "none", u >= 0 ? f[u].name : "none",
			 c >= 0 ? f[c].name : "none");
}

static void the_first_ruler_that_another_agrees_with_is_used(void **state)
{
	(void)state;
	struct clock_figure f[N];
	figures(f, 2103 * GHZ / 1000, 2101 * GHZ / 1000, 2102 * GHZ / 1000, 0, 0); /* q35 */
	expect(f, NULL, HPET, PM);
	figures(f, 0, 0, 2103 * GHZ / 1000, 0, 0);                                 /* microvm */
	expect(f, NULL, PIT, -1);
	figures(f, 0, 0, 0, 2099 * GHZ / 1000, 0);                                 /* pit=off */
	expect(f, NULL, RTC, -1);
}

static void a_figure_out_of_range_is_never_used_and_the_next_ruler_is(void **state)
{
	(void)state;
	struct clock_figure f[N];
	/* microvm before the fix: the PIT through port 0x61 said 3 MHz. */
	figures(f, 0, 0, 3000000, 2099 * GHZ / 1000, 0);
	expect(f, NULL, RTC, -1);
	figures(f, 20 * GHZ, 0, 2 * GHZ, 0, 0);        /* 20 GHz: beyond 10 */
	expect(f, NULL, PIT, -1);
	assert_false(clock_in_range(CLOCK_TSC_MIN_HZ - 1));
	assert_true(clock_in_range(CLOCK_TSC_MIN_HZ));
	assert_true(clock_in_range(CLOCK_TSC_MAX_HZ));
	assert_false(clock_in_range(CLOCK_TSC_MAX_HZ + 1));
	figures(f, 3000000, 1000000, 0, 0, 50000000);  /* nothing sane at all */
	expect(f, NULL, -1, -1);
	/* Out-of-range figures do not check each other either. */
	figures(f, 0, 0, 3000000, 0, 3000000);
	expect(f, NULL, -1, -1);
}

static void a_refused_ruler_is_skipped_whatever_its_figure(void **state)
{
	(void)state;
	struct clock_figure f[N];
	figures(f, 2 * GHZ, 2 * GHZ, 2 * GHZ, 0, 0);
	f[HPET].refused = "counter showed 0 of 1000000 ticks (stuck or absent)";
	expect(f, NULL, PM, PIT);
}

static void an_outvoted_ruler_loses_to_two_that_agree(void **state)
{
	(void)state;
	struct clock_figure f[N];
	/* Seen under load: the HPET's read pair straddled a descheduling. */
	figures(f, 2522 * GHZ / 1000, 2101 * GHZ / 1000, 2102 * GHZ / 1000, 0, 0);
	expect(f, NULL, PM, PIT);
	/* A declared CPUID figure (tsc-frequency=3G under TCG) does not outvote. */
	figures(f, 2103 * GHZ / 1000, 0, 0, 0, 3 * GHZ);
	expect(f, NULL, HPET, -1);
	/* With no two agreeing, the first sane one. */
	figures(f, 2 * GHZ, 3 * GHZ, 0, 0, 0);
	expect(f, NULL, HPET, -1);
}

static void agreement_is_within_two_percent_of_the_larger(void **state)
{
	(void)state;
	assert_true(clock_agree(2 * GHZ, 2 * GHZ));
	assert_true(clock_agree(100 * 1000000ULL, 98 * 1000000ULL));
	assert_false(clock_agree(100 * 1000000ULL, 97 * 1000000ULL));
	assert_true(clock_agree(10 * GHZ, 98 * GHZ / 10));
	assert_false(clock_agree(10 * GHZ, 9 * GHZ));
}

static void the_ruler_asked_for_wins_if_it_is_sane(void **state)
{
	(void)state;
	struct clock_figure f[N];
	figures(f, 2103 * GHZ / 1000, 2101 * GHZ / 1000, 2102 * GHZ / 1000, 0, 0);
	expect(f, "pit", PIT, HPET);
	expect(f, "pm_timer", PM, HPET);
	/* Not there, or not sane: as if nothing were asked. */
	expect(f, "rtc", HPET, PM);
	expect(f, "nonsense", HPET, PM);
	f[PIT].tsc_hz = 3000000;
	expect(f, "pit", HPET, PM);
	/* Asked for and sane but outvoted: still used (it is a test's choice), unchecked. */
	figures(f, 2 * GHZ, 3 * GHZ, 2 * GHZ, 0, 0);
	expect(f, "pm_timer", PM, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_first_ruler_that_another_agrees_with_is_used),
		cmocka_unit_test(a_figure_out_of_range_is_never_used_and_the_next_ruler_is),
		cmocka_unit_test(a_refused_ruler_is_skipped_whatever_its_figure),
		cmocka_unit_test(an_outvoted_ruler_loses_to_two_that_agree),
		cmocka_unit_test(agreement_is_within_two_percent_of_the_larger),
		cmocka_unit_test(the_ruler_asked_for_wins_if_it_is_sane),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
