/*
 * Host tests for the memory-map normalizer (kernel/memmap.c) and the
 * number/size parser (kernel/parse.c): the two pieces of boot code that read
 * what firmware and people hand the kernel.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "kernel/memmap.h"
#include "kernel/parse.h"

#define U BOOT_MEM_USABLE
#define R BOOT_MEM_RESERVED
#define A BOOT_MEM_ACPI_RECLAIM

static void expect_range(const struct boot_mem_range *r, uint64_t base, uint64_t size, uint32_t type)
{
	if (r->base != base || r->size != size || r->type != type)
		fail_msg("range is %#lx+%#lx type %u, expected %#lx+%#lx type %u",
			 (unsigned long)r->base, (unsigned long)r->size, r->type,
			 (unsigned long)base, (unsigned long)size, type);
}

static void sorts_and_merges_neighbours(void **state)
{
	(void)state;
	struct boot_mem_range m[8] = {
		{ 0x200000, 0x100000, U, 0 },
		{ 0x0, 0x9f000, U, 0 },
		{ 0x100000, 0x100000, U, 0 }, /* touches both sides: one range 1-3 MiB */
		{ 0xf0000, 0x10000, R, 0 },
		{ 0x300000, 0, U, 0 },        /* empty: dropped */
	};
	uint32_t n = 5;
	assert_int_equal(memmap_normalize(m, &n, 8), 0);
	assert_int_equal(n, 3);
	expect_range(&m[0], 0x0, 0x9f000, U);
	expect_range(&m[1], 0xf0000, 0x10000, R);
	expect_range(&m[2], 0x100000, 0x200000, U);
}

static void overlap_goes_to_the_stricter_type(void **state)
{
	(void)state;
	struct boot_mem_range m[8] = {
		{ 0x0, 0x400000, U, 0 },
		{ 0x100000, 0x1000, R, 0 },
		{ 0x3ff000, 0x2000, A, 0 }, /* sticks out past the usable range */
	};
	uint32_t n = 3;
	assert_int_equal(memmap_normalize(m, &n, 8), 0);
	assert_int_equal(n, 4);
	expect_range(&m[0], 0x0, 0x100000, U);
	expect_range(&m[1], 0x100000, 0x1000, R);
	expect_range(&m[2], 0x101000, 0x2fe000, U);
	expect_range(&m[3], 0x3ff000, 0x2000, A);
	assert_int_equal(memmap_total(m, n, U), 0x100000 + 0x2fe000);
}

static void overflow_is_reported_and_keeps_the_low_ranges(void **state)
{
	(void)state;
	/* A hole punched in the middle needs one more entry than there is room for. */
	struct boot_mem_range m[2] = {
		{ 0x0, 0x300000, U, 0 },
		{ 0x100000, 0x100000, R, 0 },
	};
	uint32_t n = 2;
	assert_int_equal(memmap_normalize(m, &n, 2), -1);
	assert_int_equal(n, 2);
	expect_range(&m[0], 0x0, 0x100000, U);
	expect_range(&m[1], 0x100000, 0x100000, R);
}

static void range_reaching_the_top_of_memory_saturates(void **state)
{
	(void)state;
	struct boot_mem_range m[4] = {
		{ 0xfffffffffffff000ULL, 0x2000, R, 0 }, /* would wrap */
		{ 0x1000, 0x1000, U, 0 },
	};
	uint32_t n = 2;
	assert_int_equal(memmap_normalize(m, &n, 4), 0);
	assert_int_equal(n, 2);
	expect_range(&m[0], 0x1000, 0x1000, U);
	expect_range(&m[1], 0xfffffffffffff000ULL, 0xfff, R);
}

static void random_maps_stay_sorted_and_disjoint(void **state)
{
	(void)state;
	unsigned seed = getenv("MEMMAP_SEED") ? (unsigned)strtoul(getenv("MEMMAP_SEED"), 0, 0) : 12345;
	printf("memmap random seed %u (MEMMAP_SEED to replay)\n", seed);
	srand(seed);
	for (int round = 0; round < 2000; round++) {
		struct boot_mem_range m[64];
		uint32_t n = 1 + rand() % 20;
		for (uint32_t i = 0; i < n; i++) {
			m[i].base = (uint64_t)(rand() % 64) << 12;
			m[i].size = (uint64_t)(rand() % 16) << 12;
			m[i].type = 1 + rand() % 5;
		}
		/* The expected type of every page, computed the slow way. */
		int expect[80] = { 0 };
		static const int rank[6] = { 0, 1, 5, 2, 3, 4 };
		for (uint32_t i = 0; i < n; i++)
			for (uint64_t p = m[i].base >> 12; p < (m[i].base + m[i].size) >> 12; p++)
				if (expect[p] == 0 || rank[m[i].type] > rank[expect[p]])
					expect[p] = m[i].type;
		assert_int_equal(memmap_normalize(m, &n, 64), 0);
		int got[80] = { 0 };
		for (uint32_t i = 0; i < n; i++) {
			assert_true(m[i].size > 0);
			if (i > 0) {
				assert_true(m[i - 1].base + m[i - 1].size <= m[i].base);
				/* neighbours of one type would have been merged */
				assert_false(m[i - 1].base + m[i - 1].size == m[i].base && m[i - 1].type == m[i].type);
			}
			for (uint64_t p = m[i].base >> 12; p < (m[i].base + m[i].size) >> 12; p++)
				got[p] = m[i].type;
		}
		for (int p = 0; p < 80; p++)
			if (got[p] != expect[p])
				fail_msg("round %d page %d: type %d, expected %d", round, p, got[p], expect[p]);
	}
}

static void sizes_parse_like_people_write_them(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("512M", &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size("2g", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(parse_size("4KiB", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("0x1000", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("100", &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("M", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("-5", &v), -EINVAL);
	assert_int_equal(parse_size("99999999999T", &v), -ERANGE);
	assert_int_equal(parse_u64("18446744073709551615", &v), 0);
	assert_int_equal(parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_u64("12M", &v), -EINVAL);
}

/* The shell keeps ids in an int and rounds sizes up to frames: before
 * issue 12 `free 4294967297` freed allocation 1 and `alloc
 * 18446744073709551615` wrapped to 0 KiB. The bounded parsers refuse both. */
static void bounded_numbers_refuse_what_is_above_the_bound(void **state)
{
	(void)state;
	uint64_t v = 7;
	assert_int_equal(parse_u64_max("4294967297", INT32_MAX, &v), -ERANGE);
	assert_int_equal(v, 7); /* untouched on failure */
	assert_int_equal(parse_u64_max("18446744073709551616", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64_max("2147483648", INT32_MAX, &v), -ERANGE);
	assert_int_equal(parse_u64_max("2147483647", INT32_MAX, &v), 0);
	assert_int_equal(v, INT32_MAX);
	assert_int_equal(parse_u64_max("0x10", 16, &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(parse_u64_max("x", 16, &v), -EINVAL); /* malformed beats out of range */
	assert_int_equal(parse_u64_max("17z", 16, &v), -EINVAL);
	assert_int_equal(parse_u64_max("-1", 4096, &v), -EINVAL);

	uint64_t max = 1ULL << 52;
	assert_int_equal(parse_size_max("18446744073709551615", max, &v), -ERANGE);
	assert_int_equal(parse_size_max("4097T", max, &v), -ERANGE);
	assert_int_equal(parse_size_max("99999999999T", max, &v), -ERANGE); /* overflows uint64 */
	assert_int_equal(parse_size_max("4096T", max, &v), 0);
	assert_int_equal(v, max);
	assert_int_equal(parse_size_max("512M", max, &v), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(parse_size_max("512Q", max, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sorts_and_merges_neighbours),
		cmocka_unit_test(overlap_goes_to_the_stricter_type),
		cmocka_unit_test(overflow_is_reported_and_keeps_the_low_ranges),
		cmocka_unit_test(range_reaching_the_top_of_memory_saturates),
		cmocka_unit_test(random_maps_stay_sorted_and_disjoint),
		cmocka_unit_test(sizes_parse_like_people_write_them),
		cmocka_unit_test(bounded_numbers_refuse_what_is_above_the_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
