/*
 * Host tests for kernel/acpi_parse.c: the FADT's power-management fields and
 * PM timer, the HPET table, and the \_S5 scan of the DSDT's AML, on tables QEMU 7.2 really builds (dumped
 * from a running guest with QMP pmemsave) and on truncated, garbage and
 * hand-made ones. Every buffer handed to the parser is a heap copy of
 * exactly its length, so a read past the end is an ASan error, not luck.
 * Random garbage prints its seed; ACPI_SEED=<n> replays one.
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

#include "kernel/acpi_parse.h"
#include "kernel/prng.h"

/* q35's FADT (revision 3, 244 bytes, X_ fields), SeaBIOS, -m 128M. */
static const uint8_t q35_fadt[] = {
	0x46, 0x41, 0x43, 0x50, 0xf4, 0x00, 0x00, 0x00, 0x03, 0x28, 0x42, 0x4f,
	0x43, 0x48, 0x53, 0x20, 0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20,
	0x01, 0x00, 0x00, 0x00, 0x42, 0x58, 0x50, 0x43, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xfe, 0x07, 0x40, 0x00, 0xfe, 0x07, 0x01, 0x00, 0x09, 0x00,
	0xb2, 0x00, 0x00, 0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x08, 0x06, 0x00, 0x00, 0x20, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0x04, 0x10, 0x00, 0x00, 0x00,
	0xff, 0x0f, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x32, 0x02, 0x00, 0x00, 0xa5, 0x84, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00,
	0xf9, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0xfe, 0x07,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x04, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x00, 0x00, 0x08, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0x00, 0x20, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00,
};

/* pc's FADT (revision 1, ACPI 1.0's 116 bytes: 32-bit fields only). */
static const uint8_t pc_fadt[] = {
	0x46, 0x41, 0x43, 0x50, 0x74, 0x00, 0x00, 0x00, 0x01, 0xf1, 0x42, 0x4f,
	0x43, 0x48, 0x53, 0x20, 0x42, 0x58, 0x50, 0x43, 0x20, 0x20, 0x20, 0x20,
	0x01, 0x00, 0x00, 0x00, 0x42, 0x58, 0x50, 0x43, 0x01, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xfe, 0x07, 0x40, 0x00, 0xfe, 0x07, 0x01, 0x00, 0x09, 0x00,
	0xb2, 0x00, 0x00, 0x00, 0xf1, 0xf0, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x08, 0x06, 0x00, 0x00, 0xe0, 0xaf, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0x04, 0x04, 0x00, 0x00, 0x00,
	0xff, 0x0f, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x32, 0x00, 0x00, 0x00, 0xa5, 0x80, 0x00, 0x00,
};

/* The DSDT's sleep states, byte for byte the same on q35 and pc:
 *   Name (_S3, Package (0x04) { One, One, Zero, Zero })
 *   Name (_S4, Package (0x04) { 0x02, 0x02, Zero, Zero })
 *   Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })
 * followed by the start of the next object, Scope (\_SB.PCI0...). */
static const uint8_t qemu_sleep_states[] = {
	0x08, 0x5f, 0x53, 0x33, 0x5f, 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00,
	0x08, 0x5f, 0x53, 0x34, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x02, 0x0a, 0x02,
	0x00, 0x00, 0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x06, 0x04, 0x00, 0x00,
	0x00, 0x00, 0x10, 0x3b, 0x5c, 0x2e, 0x5f, 0x53, 0x42,
};

/* A heap copy of exactly n bytes (at least 1 allocated, none readable when n is 0). */
static uint8_t *exact(const void *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static int parse_fadt(const uint8_t *t, size_t len, struct acpi_fadt *f, const char **why)
{
	uint8_t *c = exact(t, len);
	*why = NULL;
	int rc = acpi_fadt_parse(c, len, f, why);
	free(c);
	if (rc < 0)
		assert_non_null(*why);
	return rc;
}

static int find_s5(const uint8_t *aml, size_t len, uint8_t *a, uint8_t *b, const char **why)
{
	uint8_t *c = exact(aml, len);
	*why = NULL;
	*a = *b = 0xee;
	int rc = acpi_aml_find_s5(c, len, a, b, why);
	free(c);
	if (rc < 0)
		assert_non_null(*why);
	else
		assert_true(*a <= 7 && *b <= 7);
	return rc;
}

/* A modifiable copy of a FADT with its length field set to `len`. */
static void fadt_copy(uint8_t *dst, const uint8_t *src, size_t len)
{
	memcpy(dst, src, len);
	dst[4] = (uint8_t)len;
	dst[5] = (uint8_t)(len >> 8);
	dst[6] = dst[7] = 0;
}

/* ---------------------------------------------------------------- FADT */

static void real_tables_have_good_checksums(void **state)
{
	(void)state;
	assert_true(acpi_checksum_ok(q35_fadt, sizeof(q35_fadt)));
	assert_true(acpi_checksum_ok(pc_fadt, sizeof(pc_fadt)));
	uint8_t t[sizeof(q35_fadt)];
	memcpy(t, q35_fadt, sizeof(t));
	t[46] ^= 1;
	assert_false(acpi_checksum_ok(t, sizeof(t)));
}

static void q35_fadt_gives_ich9_pm_from_the_x_fields(void **state)
{
	(void)state;
	struct acpi_fadt f;
	const char *why;
	assert_int_equal(parse_fadt(q35_fadt, sizeof(q35_fadt), &f, &why), 0);
	assert_int_equal(f.revision, 3);
	assert_int_equal(f.sci_int, 9);
	assert_int_equal(f.smi_cmd, 0xb2);
	assert_int_equal(f.acpi_enable, 0x02);
	assert_int_equal(f.pm1a_evt, 0x600);
	assert_int_equal(f.pm1a_cnt, 0x604);
	assert_int_equal(f.pm1b_evt, 0);
	assert_int_equal(f.pm1b_cnt, 0);
	assert_int_equal(f.pm1_evt_len, 4);
	assert_int_equal(f.pm1_cnt_len, 2);
	assert_int_equal(f.gpe0_blk, 0x620);
	assert_int_equal(f.gpe0_len, 16);
	assert_int_equal(f.gpe1_blk, 0);
	assert_true(f.pm1_from_x);
	assert_int_equal(f.dsdt, 0x7fe0040);
	assert_false(f.flags & ACPI_FADT_PWR_BUTTON); /* a fixed-feature power button */
}

static void pc_fadt_gives_piix4_pm_from_the_32_bit_fields(void **state)
{
	(void)state;
	struct acpi_fadt f;
	const char *why;
	assert_int_equal(parse_fadt(pc_fadt, sizeof(pc_fadt), &f, &why), 0);
	assert_int_equal(f.revision, 1);
	assert_int_equal(f.sci_int, 9);
	assert_int_equal(f.smi_cmd, 0xb2);
	assert_int_equal(f.acpi_enable, 0xf1);
	assert_int_equal(f.pm1a_evt, 0x600);
	assert_int_equal(f.pm1a_cnt, 0x604);
	assert_int_equal(f.gpe0_blk, 0xafe0);
	assert_int_equal(f.gpe0_len, 4);
	assert_false(f.pm1_from_x);
	assert_int_equal(f.dsdt, 0x7fe0040);
}

static void x_fields_win_over_32_bit_ones_and_zero_ones_fall_back(void **state)
{
	(void)state;
	uint8_t t[sizeof(q35_fadt)];
	struct acpi_fadt f;
	const char *why;

	fadt_copy(t, q35_fadt, sizeof(t));
	t[172 + 4] = 0x40; t[172 + 5] = 0x0b;          /* X_PM1a_CNT_BLK 0xb40 */
	t[140] = 0x00; t[141] = 0x10; t[142] = 0; t[143] = 0; /* X_DSDT 0x1000 */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.pm1a_cnt, 0xb40);
	assert_int_equal(f.dsdt, 0x1000);

	fadt_copy(t, q35_fadt, sizeof(t));
	memset(t + 148 + 4, 0, 8);                     /* X_PM1a_EVT_BLK address 0 */
	memset(t + 140, 0, 8);                         /* X_DSDT 0 */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.pm1a_evt, 0x600);
	assert_int_equal(f.dsdt, 0x7fe0040);

	/* Cut before the X_ blocks (a revision-2-sized table): 32-bit fields. */
	fadt_copy(t, q35_fadt, 140);
	assert_int_equal(parse_fadt(t, 140, &f, &why), 0);
	assert_int_equal(f.pm1a_evt, 0x600);
	assert_false(f.pm1_from_x);
}

static void every_truncation_of_a_fadt_is_refused_or_read_in_bounds(void **state)
{
	(void)state;
	uint8_t t[sizeof(q35_fadt)];
	struct acpi_fadt f;
	const char *why;
	for (size_t len = 0; len <= sizeof(q35_fadt); len++) {
		if (len >= 8)
			fadt_copy(t, q35_fadt, len);
		else
			memcpy(t, q35_fadt, len);
		int rc = parse_fadt(t, len, &f, &why);
		if (len < ACPI_FADT_MIN_LEN)
			assert_int_equal(rc, -EINVAL);
		else
			assert_int_equal(rc, 0);
	}
	/* The length field must say what the caller says. */
	assert_int_equal(parse_fadt(q35_fadt, sizeof(q35_fadt) - 4, &f, &why), -EINVAL);
	assert_string_equal(why, "not a FADT of the length given");
}

static void bad_fadt_fields_are_refused_with_a_reason(void **state)
{
	(void)state;
	static const struct {
		size_t off;
		uint8_t val;
		const char *why;
	} cases[] = {
		{ 88, 3, "PM1_EVT_LEN is less than 4 or odd" },
		{ 88, 5, "PM1_EVT_LEN is less than 4 or odd" },
		{ 89, 1, "PM1_CNT_LEN is less than 2" },
		{ 148, 0, "X_PM1a_EVT_BLK is not in I/O space" },   /* space 0: memory */
		{ 184 + 4, 0x10, "X_PM1b_CNT_BLK is not in I/O space" }, /* b with address, space 0 */
		{ 114, 0x10, "hardware-reduced ACPI: no PM1 blocks" }, /* Flags bit 20 */
		{ 51, 1, "SMI_CMD is not a 16-bit port" },
	};
	uint8_t t[sizeof(q35_fadt)];
	struct acpi_fadt f;
	const char *why;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fadt_copy(t, q35_fadt, sizeof(t));
		t[cases[i].off] = cases[i].val;
		if (parse_fadt(t, sizeof(t), &f, &why) != -EINVAL || strcmp(why, cases[i].why) != 0)
			fail_msg("byte %zu = %#x: expected refusal \"%s\", got \"%s\"", cases[i].off,
				 cases[i].val, cases[i].why, why ? why : "(accepted)");
	}

	/* A port block that runs past 0xffff. */
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	t[56] = 0xfe; t[57] = 0xff;                    /* PM1a_EVT_BLK 0xfffe, 4 bytes */
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), -EINVAL);
	assert_string_equal(why, "PM1a_EVT_BLK is not a port block");
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	t[66] = 1;                                     /* PM1a_CNT_BLK 0x10604 */
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), -EINVAL);
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	memset(t + 64, 0, 4);                          /* no PM1a_CNT_BLK */
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), -EINVAL);
	assert_string_equal(why, "no PM1a event or control block");
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	memcpy(t, "APIC", 4);
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), -EINVAL);
}

static void an_unusable_gpe_block_is_dropped_not_fatal(void **state)
{
	(void)state;
	uint8_t t[sizeof(q35_fadt)];
	struct acpi_fadt f;
	const char *why;
	fadt_copy(t, q35_fadt, sizeof(t));
	t[220] = 0;                                    /* X_GPE0_BLK in memory space */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.gpe0_blk, 0);
	assert_int_equal(f.gpe0_len, 0);
	assert_int_equal(f.pm1a_evt, 0x600);
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	t[92] = 3;                                     /* odd GPE0_BLK_LEN */
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), 0);
	assert_int_equal(f.gpe0_blk, 0);
}

/* ---------------------------------------------------------------- PM timer */

static void pm_timer_is_read_from_both_real_fadts_and_dropped_when_unusable(void **state)
{
	(void)state;
	struct acpi_fadt f;
	const char *why;
	assert_int_equal(parse_fadt(q35_fadt, sizeof(q35_fadt), &f, &why), 0);
	assert_int_equal(f.pm_tmr_blk, 0x608);  /* from X_PM_TMR_BLK */
	assert_int_equal(f.pm_tmr_bits, 24);    /* TMR_VAL_EXT clear */
	assert_int_equal(parse_fadt(pc_fadt, sizeof(pc_fadt), &f, &why), 0);
	assert_int_equal(f.pm_tmr_blk, 0x608);  /* from PM_TMR_BLK */
	assert_int_equal(f.pm_tmr_bits, 24);

	uint8_t t[sizeof(q35_fadt)];
	fadt_copy(t, q35_fadt, sizeof(t));
	t[113] |= 1;                            /* Flags bit 8: TMR_VAL_EXT */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.pm_tmr_bits, 32);
	fadt_copy(t, q35_fadt, sizeof(t));
	t[91] = 3;                              /* PM_TMR_LEN not 4 */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.pm_tmr_blk, 0);
	assert_int_equal(f.pm_tmr_bits, 0);
	fadt_copy(t, q35_fadt, sizeof(t));
	t[208] = 0;                             /* X_PM_TMR_BLK in memory space */
	assert_int_equal(parse_fadt(t, sizeof(t), &f, &why), 0);
	assert_int_equal(f.pm_tmr_blk, 0);
	assert_int_equal(f.pm1a_evt, 0x600);    /* the rest of the table still serves */
	fadt_copy(t, pc_fadt, sizeof(pc_fadt));
	t[76] = 0xfe; t[77] = 0xff;             /* PM_TMR_BLK 0xfffe runs past 0xffff */
	assert_int_equal(parse_fadt(t, sizeof(pc_fadt), &f, &why), 0);
	assert_int_equal(f.pm_tmr_blk, 0);
}

/* ---------------------------------------------------------------- HPET */

/* An HPET table as QEMU 7.2 builds it for q35 and pc (build_hpet: Intel's
 * block id 0x8086a201, registers at 0xfed00000), checksum fixed up. */
static void hpet_table(uint8_t t[ACPI_HPET_LEN])
{
	memset(t, 0, ACPI_HPET_LEN);
	memcpy(t, "HPET", 4);
	t[4] = ACPI_HPET_LEN;
	t[8] = 1;
	memcpy(t + 36, "\x01\xa2\x86\x80", 4);
	memcpy(t + 44, "\x00\x00\xd0\xfe", 4);
	uint8_t sum = 0;
	for (int i = 0; i < ACPI_HPET_LEN; i++)
		sum += t[i];
	t[9] = (uint8_t)-sum;
}

static int parse_hpet(const uint8_t *t, size_t len, struct acpi_hpet *h, const char **why)
{
	uint8_t *c = exact(t, len);
	*why = NULL;
	int rc = acpi_hpet_parse(c, len, h, why);
	free(c);
	if (rc < 0)
		assert_non_null(*why);
	return rc;
}

static void qemu_hpet_table_gives_its_registers(void **state)
{
	(void)state;
	uint8_t t[ACPI_HPET_LEN];
	struct acpi_hpet h;
	const char *why;
	hpet_table(t);
	assert_true(acpi_checksum_ok(t, sizeof(t)));
	assert_int_equal(parse_hpet(t, sizeof(t), &h, &why), 0);
	assert_int_equal(h.address, 0xfed00000);
	assert_int_equal(h.block_id, 0x8086a201);
	assert_int_equal(h.number, 0);
}

static void bad_hpet_tables_are_refused_with_a_reason(void **state)
{
	(void)state;
	static const struct {
		size_t off;
		uint8_t val;
		const char *why;
	} cases[] = {
		{ 40, 1, "HPET registers are not in system memory" },
		{ 44, 0x10, "HPET address is 0, not 1 KiB aligned, or beyond 2^52" },
		{ 51, 0x10, "HPET address is 0, not 1 KiB aligned, or beyond 2^52" },
		{ 0, 'X', "not an HPET table of the length given" },
	};
	uint8_t t[ACPI_HPET_LEN];
	struct acpi_hpet h;
	const char *why;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hpet_table(t);
		t[cases[i].off] = cases[i].val;
		if (parse_hpet(t, sizeof(t), &h, &why) != -EINVAL || strcmp(why, cases[i].why) != 0)
			fail_msg("byte %zu = %#x: expected refusal \"%s\", got \"%s\"", cases[i].off,
				 cases[i].val, cases[i].why, why ? why : "(accepted)");
	}
	hpet_table(t);
	memset(t + 44, 0, 8);                   /* address 0 */
	assert_int_equal(parse_hpet(t, sizeof(t), &h, &why), -EINVAL);
	/* Every truncation is refused, and read in bounds (ASan). */
	hpet_table(t);
	for (size_t len = 0; len < ACPI_HPET_LEN; len++)
		assert_int_equal(parse_hpet(t, len, &h, &why), -EINVAL);
}

/* ---------------------------------------------------------------- SCI */

static void sci_defaults_to_level_low_and_follows_each_override_field(void **state)
{
	(void)state;
	static const struct {
		uint16_t flags;
		bool level, active_low;
	} cases[] = {
		{ 0x0000, true, true },   /* no override, or "as the bus says": the SCI's default */
		{ 0x000d, true, false },  /* QEMU's override of IRQ 9: level, active-high */
		{ 0x0005, false, false }, /* edge, high */
		{ 0x000f, true, true },   /* level, low */
		{ 0x0001, true, false },  /* polarity given, trigger the SCI's */
		{ 0x0004, false, true },  /* trigger given, polarity the SCI's */
		{ 0x000a, true, true },   /* reserved values: the default */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool level, low;
		acpi_sci_mode(cases[i].flags, &level, &low);
		if (level != cases[i].level || low != cases[i].active_low)
			fail_msg("flags %#x: expected level %d active_low %d, got %d %d", cases[i].flags,
				 cases[i].level, cases[i].active_low, level, low);
	}
}

/* ---------------------------------------------------------------- \_S5 */

static void qemu_s5_is_zero_zero_and_s3_s4_are_not_taken_for_it(void **state)
{
	(void)state;
	uint8_t a, b;
	const char *why;
	assert_int_equal(find_s5(qemu_sleep_states, sizeof(qemu_sleep_states), &a, &b, &why), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 0);
	/* Without _S5_ (cut just before it): _S3_ and _S4_ are not it. */
	assert_int_equal(find_s5(qemu_sleep_states, 26, &a, &b, &why), -ENOENT);
	assert_string_equal(why, "no \\_S5_ package in the AML");
}

static void every_truncation_of_the_sleep_states_stays_in_bounds(void **state)
{
	(void)state;
	uint8_t a, b;
	const char *why;
	size_t s5 = 26, s5_end = 26 + 12; /* NameOp of _S5_, end of its package */
	for (size_t len = 0; len <= sizeof(qemu_sleep_states); len++) {
		int rc = find_s5(qemu_sleep_states, len, &a, &b, &why);
		int want = len >= s5_end ? 0 : len >= s5 + 5 ? -EINVAL : -ENOENT;
		if (rc != want)
			fail_msg("length %zu: expected %d, got %d (%s)", len, want, rc, why ? why : "");
	}
	/* And every suffix: a scan that starts anywhere. */
	for (size_t start = 0; start <= sizeof(qemu_sleep_states); start++) {
		int rc = find_s5(qemu_sleep_states + start, sizeof(qemu_sleep_states) - start, &a, &b, &why);
		assert_int_equal(rc, start <= s5 ? 0 : -ENOENT);
	}
}

static void other_integer_encodings_and_the_root_prefix_are_read(void **state)
{
	(void)state;
	static const struct {
		uint8_t aml[24];
		size_t len;
		uint8_t a, b;
	} cases[] = {
		/* Name (\_S5, Package () { 0x05, One }) */
		{ { 0x08, 0x5c, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x01 }, 12, 5, 1 },
		/* WordPrefix 7, DWordPrefix 6, two more elements */
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x0c, 0x04, 0x0b, 0x07, 0x00, 0x0c, 0x06, 0, 0, 0, 0, 0 },
		  18, 7, 6 },
		/* QWordPrefix 3, Zero; a two-byte PkgLength (0x40 0x01 = 16) */
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x40, 0x01, 0x02, 0x0e, 3, 0, 0, 0, 0, 0, 0, 0, 0x00,
		    0xa3, 0xa3, 0xa3 }, 22, 3, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t a, b;
		const char *why;
		int rc = find_s5(cases[i].aml, cases[i].len, &a, &b, &why);
		if (rc != 0 || a != cases[i].a || b != cases[i].b)
			fail_msg("case %zu: expected 0 with %u/%u, got %d with %u/%u (%s)", i, cases[i].a,
				 cases[i].b, rc, a, b, why ? why : "");
	}
}

static void malformed_s5_packages_are_refused_with_a_reason(void **state)
{
	(void)state;
	static const struct {
		uint8_t aml[16];
		size_t len;
		const char *why;
	} cases[] = {
		{ { 0x08, '_', 'S', '5', '_', 0x0a, 0x05 }, 7, "\\_S5_ is not a Package" },
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x30, 0x02, 0x00, 0x00 }, 10,
		  "\\_S5_ package length is malformed or runs past the table" },
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x50, 0x00, 0x02, 0x00, 0x00 }, 11,
		  "\\_S5_ package length is malformed or runs past the table" }, /* bits 5:4 set */
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x03, 0x01, 0x00 }, 9,
		  "\\_S5_ package has fewer than 2 elements" },
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x08, 0x00 }, 11,
		  "\\_S5_ sleep type does not fit SLP_TYP's 3 bits" },
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0xff, 0x00 }, 10,
		  "\\_S5_ package does not start with two integer constants" }, /* Ones */
		/* The second integer's bytes lie outside the package's length. */
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0x00, 0x0b, 0x01, 0x00 }, 12,
		  "\\_S5_ package does not start with two integer constants" },
		{ { 0x08, '_', 'S', '5', '_', 0x12 }, 6, "\\_S5_ package cut off by the end of the table" },
		{ { 0x08, '_', 'S', '5', '_', 0x12, 0x01 }, 7, "\\_S5_ package has no element count" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t a, b;
		const char *why;
		int rc = find_s5(cases[i].aml, cases[i].len, &a, &b, &why);
		if (rc != -EINVAL || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: expected -EINVAL \"%s\", got %d \"%s\"", i, cases[i].why, rc,
				 why ? why : "");
	}
}

static void a_lookalike_before_the_real_s5_does_not_hide_it(void **state)
{
	(void)state;
	/* Bytes that look like a Name(_S5_) inside some buffer, then QEMU's. */
	uint8_t aml[8 + sizeof(qemu_sleep_states)] = { 0x08, '_', 'S', '5', '_', 0x0a, 0x33, 0x44 };
	memcpy(aml + 8, qemu_sleep_states, sizeof(qemu_sleep_states));
	uint8_t a, b;
	const char *why;
	assert_int_equal(find_s5(aml, sizeof(aml), &a, &b, &why), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 0);
}

/* Random bytes, and the real bytes with random damage: never a read out
 * of bounds, and an accepted answer is always 3-bit sleep types. */
static void garbage_never_reads_past_the_table(void **state)
{
	(void)state;
	const char *env = getenv("ACPI_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 1;
	printf("garbage_never_reads_past_the_table: seed %lu (ACPI_SEED=%lu replays)\n",
	       (unsigned long)seed, (unsigned long)seed);
	uint64_t rng = seed;
	uint8_t buf[256];
	for (int round = 0; round < 20000; round++) {
		size_t len = prng_splitmix64(&rng) % sizeof(buf);
		bool damage = round & 1;
		if (damage) {
			len = len % (sizeof(qemu_sleep_states) + 1);
			memcpy(buf, qemu_sleep_states, len);
			for (int k = 0; k < 3 && len; k++)
				buf[prng_splitmix64(&rng) % len] = (uint8_t)prng_splitmix64(&rng);
		} else {
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)prng_splitmix64(&rng);
			/* Plant the name now and then, so the package path is walked. */
			if (len >= 8 && (round & 2))
				memcpy(buf + prng_splitmix64(&rng) % (len - 5), "\x08_S5_\x12", 6);
		}
		uint8_t a, b;
		const char *why;
		find_s5(buf, len, &a, &b, &why);

		struct acpi_fadt f;
		uint8_t t[sizeof(q35_fadt)];
		size_t flen = prng_splitmix64(&rng) % (sizeof(t) + 1);
		fadt_copy(t, q35_fadt, flen < 8 ? 8 : flen);
		for (int k = 0; k < 4; k++)
			t[prng_splitmix64(&rng) % sizeof(t)] = (uint8_t)prng_splitmix64(&rng);
		if (parse_fadt(t, flen, &f, &why) == 0) {
			assert_true(f.pm1a_evt != 0 && f.pm1a_evt <= 0x10000 - f.pm1_evt_len);
			assert_true(f.pm1a_cnt != 0 && f.pm1a_cnt <= 0x10000 - f.pm1_cnt_len);
			assert_true(f.pm1_evt_len >= 4 && f.pm1_evt_len % 2 == 0 && f.pm1_cnt_len >= 2);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_tables_have_good_checksums),
		cmocka_unit_test(q35_fadt_gives_ich9_pm_from_the_x_fields),
		cmocka_unit_test(pc_fadt_gives_piix4_pm_from_the_32_bit_fields),
		cmocka_unit_test(x_fields_win_over_32_bit_ones_and_zero_ones_fall_back),
		cmocka_unit_test(every_truncation_of_a_fadt_is_refused_or_read_in_bounds),
		cmocka_unit_test(bad_fadt_fields_are_refused_with_a_reason),
		cmocka_unit_test(an_unusable_gpe_block_is_dropped_not_fatal),
		cmocka_unit_test(pm_timer_is_read_from_both_real_fadts_and_dropped_when_unusable),
		cmocka_unit_test(qemu_hpet_table_gives_its_registers),
		cmocka_unit_test(bad_hpet_tables_are_refused_with_a_reason),
		cmocka_unit_test(sci_defaults_to_level_low_and_follows_each_override_field),
		cmocka_unit_test(qemu_s5_is_zero_zero_and_s3_s4_are_not_taken_for_it),
		cmocka_unit_test(every_truncation_of_the_sleep_states_stays_in_bounds),
		cmocka_unit_test(other_integer_encodings_and_the_root_prefix_are_read),
		cmocka_unit_test(malformed_s5_packages_are_refused_with_a_reason),
		cmocka_unit_test(a_lookalike_before_the_real_s5_does_not_hide_it),
		cmocka_unit_test(garbage_never_reads_past_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
