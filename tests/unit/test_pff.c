/*
 * Host tests for kernel/pff.c: page-fault-frequency allotments and
 * thrashing episodes, period by period, as workload.c feeds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernel/pff.h"

static const struct pff_params P = PFF_DEFAULTS;

/* A one-second period: `acc` accesses, `maj` of them major faults. */
static struct pff_result period(struct pff_state *s, uint64_t acc, uint64_t maj, uint64_t resident, uint64_t ws)
{
	struct pff_sample in = { .accesses = acc, .majflt = maj, .ms = 1000, .resident = resident, .ws = ws,
				 .size = 100000 };
	return pff_update(s, &P, &in);
}

static void test_first_period_sets_allotment(void **state)
{
	(void)state;
	struct pff_state s = { 0 };
	struct pff_result r = period(&s, 100000, 500, 4000, 3000); /* 5 per 1000: between the bounds */
	assert_int_equal(r.move, PFF_KEEP);
	assert_int_equal(r.fault_pm, 5);
	assert_int_equal(r.rate, 100000);
	assert_int_equal(s.allot, 4000);
}

static void test_grows_above_high(void **state)
{
	(void)state;
	struct pff_state s = { .allot = 4000 };
	struct pff_result r = period(&s, 10000, 300, 4000, 3900); /* 30 per 1000 */
	assert_int_equal(r.move, PFF_GROW);
	assert_int_equal(r.allot_before, 4000);
	assert_int_equal(s.allot, 4500); /* an eighth more */
	/* A small workload grows by at least min_step. */
	struct pff_state t = { .allot = 100 };
	period(&t, 1000, 500, 100, 100);
	assert_int_equal(t.allot, 100 + P.min_step);
	/* Grows from what it has when it holds more than its allotment. */
	struct pff_state u = { .allot = 1000 };
	period(&u, 1000, 500, 8000, 8000);
	assert_int_equal(u.allot, 9000);
	/* Never beyond its size: once there, no more growth to report. */
	struct pff_state v = { .allot = 95000 };
	assert_int_equal(period(&v, 1000, 500, 95000, 95000).move, PFF_GROW);
	assert_int_equal(v.allot, 100000);
	assert_int_equal(period(&v, 1000, 500, 99000, 99000).move, PFF_KEEP);
	assert_int_equal(v.allot, 100000);
}

static void test_shrinks_to_working_set_below_low(void **state)
{
	(void)state;
	struct pff_state s = { .allot = 8000 };
	struct pff_result r = period(&s, 100000, 100, 8000, 2500); /* 1 per 1000 */
	assert_int_equal(r.move, PFF_SHRINK);
	assert_int_equal(s.allot, 2500);
	/* Not for less than min_step pages: the estimate moves a little every round. */
	struct pff_state u = { .allot = 8000 };
	assert_int_equal(period(&u, 100000, 0, 8000, 8000 - P.min_step + 1).move, PFF_KEEP);
	assert_int_equal(u.allot, 8000);
	/* No estimate yet: nothing to shrink to. */
	struct pff_state t = { .allot = 8000 };
	assert_int_equal(period(&t, 100000, 0, 8000, 0).move, PFF_KEEP);
	assert_int_equal(t.allot, 8000);
}

static void test_no_time_no_change(void **state)
{
	(void)state;
	struct pff_state s = { .allot = 10 };
	struct pff_sample in = { .accesses = 5, .majflt = 5, .ms = 0, .size = 100 };
	struct pff_result r = pff_update(&s, &P, &in);
	assert_int_equal(r.move, PFF_KEEP);
	assert_int_equal(s.allot, 10);
}

static void test_all_faults_no_accesses(void **state)
{
	(void)state;
	struct pff_state s = { .allot = 10 };
	assert_int_equal(period(&s, 0, 7, 10, 10).fault_pm, 1000);
	assert_int_equal(period(&s, 0, 0, 10, 10).fault_pm, 0);
}

/* Thrashing needs both: many faults, and accesses collapsed against the
 * best healthy rate; `periods` in a row to start and to end. */
static void test_thrashing_episode(void **state)
{
	(void)state;
	struct pff_state s = { 0 };
	period(&s, 100000, 0, 1000, 1000);
	assert_int_equal(s.best_rate, 100000);
	/* Faulting a lot but still fast: not thrashing. */
	for (int i = 0; i < 4; i++)
		assert_false(period(&s, 90000, 20000, 1000, 1000).thrash_start);
	assert_false(s.thrashing);
	/* Collapsed: one period is not yet an episode, two are. */
	struct pff_result r = period(&s, 10000, 3000, 1000, 1000);
	assert_false(r.thrash_start);
	r = period(&s, 8000, 3000, 1000, 1000);
	assert_true(r.thrash_start);
	assert_true(s.thrashing);
	assert_int_equal(r.fault_pm, 375);
	/* Still thrashing: reported once. */
	assert_false(period(&s, 8000, 3000, 1000, 1000).thrash_start);
	/* One good period is not the end; a bad one resets the count. */
	assert_false(period(&s, 100000, 0, 1000, 1000).thrash_end);
	assert_false(period(&s, 8000, 3000, 1000, 1000).thrash_end);
	assert_false(period(&s, 100000, 0, 1000, 1000).thrash_end);
	r = period(&s, 100000, 0, 1000, 1000);
	assert_true(r.thrash_end);
	assert_false(s.thrashing);
}

/* The best rate is learnt only in healthy periods: a workload that has
 * faulted from its start has no baseline, and is never called thrashing
 * for being slow (it may just be a slow program). */
static void test_no_baseline_no_thrashing(void **state)
{
	(void)state;
	struct pff_state s = { 0 };
	for (int i = 0; i < 5; i++)
		assert_false(period(&s, 5000, 2500, 1000, 1000).thrash_start);
	assert_int_equal(s.best_rate, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_period_sets_allotment),
		cmocka_unit_test(test_grows_above_high),
		cmocka_unit_test(test_shrinks_to_working_set_below_low),
		cmocka_unit_test(test_no_time_no_change),
		cmocka_unit_test(test_all_faults_no_accesses),
		cmocka_unit_test(test_thrashing_episode),
		cmocka_unit_test(test_no_baseline_no_thrashing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
