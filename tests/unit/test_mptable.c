/*
 * Host tests for kernel/mptable.c: the MP table qboot writes on QEMU 7.2's
 * microvm with acpi=off (dumped from a running guest with QMP pmemsave:
 * floating pointer at 0x9fc00, configuration table at 0x9fc10, one I/O APIC
 * at 0xfec00000, entry count 0), and the ways such a table can lie. Every
 * buffer is a heap copy of exactly its length, so a read past it is an ASan
 * error.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/mptable.h"

static const uint8_t qboot_floating[] = {
	0x5f, 0x4d, 0x50, 0x5f, 0x10, 0xfc, 0x09, 0x00, 0x01, 0x04, 0x8b, 0x00,
};

static const uint8_t qboot_config[] = {

	0x50, 0x43, 0x4d, 0x50, 0xd8, 0x00, 0x04, 0x30, 0x51, 0x42, 0x4f, 0x4f,
	0x54, 0x20, 0x20, 0x20, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
	0x30, 0x30, 0x30, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x03,
	0xb1, 0x0f, 0x06, 0x00, 0xfd, 0xfb, 0x8b, 0x07, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x49, 0x53, 0x41, 0x20, 0x20, 0x20,
	0x02, 0x02, 0x14, 0x01, 0x00, 0x00, 0xc0, 0xfe, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x02, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x03, 0x02, 0x03, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x04, 0x02, 0x04, 0x03, 0x00, 0x00, 0x00, 0x00, 0x05, 0x02, 0x05,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x06, 0x02, 0x06, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x07, 0x02, 0x07, 0x03, 0x00, 0x00, 0x00, 0x00, 0x08, 0x02, 0x08,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x09, 0x02, 0x09, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x0a, 0x02, 0x0a, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x0b,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x02, 0x0c, 0x03, 0x00, 0x00, 0x00,
	0x00, 0x0d, 0x02, 0x0d, 0x03, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x02, 0x0e,
	0x03, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x02, 0x0f, 0x04, 0x03, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0xff, 0x01,
};

static uint8_t *copy(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	memcpy(c, p, n);
	return c;
}

/* Make the checksum right again after a change, as a careful liar would. */
static void fix_checksum(uint8_t *t, size_t len, size_t at)
{
	uint8_t s = 0;
	t[at] = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + t[i]);
	t[at] = (uint8_t)-s;
}

static int parse(const uint8_t *t, size_t len, struct mp_ioapic *out, int max, const char **why)
{
	uint8_t *c = copy(t, len);
	*why = NULL;
	int n = mp_parse_config(c, len, out, max, why);
	free(c);
	return n;
}

static void qboots_table_gives_its_ioapic(void **state)
{
	(void)state;
	uint8_t area[0x400] = { 0 };
	memcpy(area + 0x100, qboot_floating, sizeof(qboot_floating));
	assert_int_equal(mp_find_floating(area, sizeof(area)), 0x100);
	assert_int_equal(mp_config_address(area + 0x100), 0x9fc10);
	struct mp_ioapic io[4];
	const char *why;
	int n = parse(qboot_config, sizeof(qboot_config), io, 4, &why);
	if (n != 1)
		fail_msg("expected one I/O APIC, got %d (%s)", n, why ? why : "");
	assert_int_equal(io[0].address, 0xfec00000);
	assert_int_equal(io[0].id, 2);
}

static void a_floating_pointer_must_be_aligned_and_sum_to_zero(void **state)
{
	(void)state;
	uint8_t area[0x100] = { 0 };
	memcpy(area + 8, qboot_floating, sizeof(qboot_floating)); /* not on a 16-byte boundary */
	assert_int_equal(mp_find_floating(area, sizeof(area)), -1);
	memset(area, 0, sizeof(area));
	memcpy(area + 0x20, qboot_floating, sizeof(qboot_floating));
	area[0x20 + 10]++; /* checksum off by one */
	assert_int_equal(mp_find_floating(area, sizeof(area)), -1);
	/* cut: the signature fits, the 16 bytes do not */
	memcpy(area + 0xf0, qboot_floating, 8);
	assert_int_equal(mp_find_floating(area, 0xf8), -1);
}

static void lying_tables_are_refused_with_a_reason(void **state)
{
	(void)state;
	struct mp_ioapic io[4];
	const char *why;
	size_t len = sizeof(qboot_config);
	uint8_t *t = copy(qboot_config, len);

	assert_int_equal(parse(t, 40, io, 4, &why), -EINVAL);       /* shorter than the header */
	assert_non_null(strstr(why, "PCMP"));
	assert_int_equal(parse(t, len - 8, io, 4, &why), -EINVAL);  /* base length past the mapping */
	assert_non_null(strstr(why, "past the mapping"));

	t[20] ^= 1; /* a byte changed, checksum not fixed */
	assert_int_equal(parse(t, len, io, 4, &why), -EINVAL);
	assert_non_null(strstr(why, "checksum"));
	memcpy(t, qboot_config, len);

	t[44 + 20 + 8] = 9; /* the I/O APIC entry's type made unknown */
	fix_checksum(t, len, 7);
	assert_int_equal(parse(t, len, io, 4, &why), -EINVAL);
	assert_non_null(strstr(why, "unknown type"));
	memcpy(t, qboot_config, len);

	t[44 + 20 + 8 + 4] = 0x08; /* I/O APIC at 0xfec00008: not 16-byte aligned */
	fix_checksum(t, len, 7);
	assert_int_equal(parse(t, len, io, 4, &why), -EINVAL);
	assert_non_null(strstr(why, "aligned"));
	memcpy(t, qboot_config, len);

	/* base length cut inside the last entry */
	t[4] = (uint8_t)(len - 4);
	fix_checksum(t, len - 4, 7);
	assert_int_equal(parse(t, len, io, 4, &why), -EINVAL);
	assert_non_null(strstr(why, "runs past"));
	free(t);
}

static void an_unusable_ioapic_is_skipped_and_max_is_kept(void **state)
{
	(void)state;
	struct mp_ioapic io[1];
	const char *why;
	size_t len = sizeof(qboot_config);
	uint8_t *t = copy(qboot_config, len);
	t[44 + 20 + 8 + 3] = 0; /* flags: not usable */
	fix_checksum(t, len, 7);
	assert_int_equal(parse(t, len, io, 1, &why), 0);
	free(t);
	assert_int_equal(parse(qboot_config, len, io, 0, &why), 0); /* no room: none written */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(qboots_table_gives_its_ioapic),
		cmocka_unit_test(a_floating_pointer_must_be_aligned_and_sum_to_zero),
		cmocka_unit_test(lying_tables_are_refused_with_a_reason),
		cmocka_unit_test(an_unusable_ioapic_is_skipped_and_max_is_kept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
