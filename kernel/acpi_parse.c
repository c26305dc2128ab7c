/*
 * acpi_parse: FADT fields, the HPET table and \_S5 from byte buffers (see
 * acpi_parse.h).
 * No I/O, no printing, no globals: the kernel, the unit test and the fuzzer
 * call the same functions.
 */
#include <errno.h>
#include <string.h>
#include "acpi_parse.h"
#include "le.h"

/* FADT offsets (ACPI 6.5, table 5.9). */
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_PM1A_EVT 56
#define FADT_PM1B_EVT 60
#define FADT_PM1A_CNT 64
#define FADT_PM1B_CNT 68
#define FADT_PM_TMR 76
#define FADT_GPE0 80
#define FADT_GPE1 84
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_GPE0_LEN 92
#define FADT_PM_TMR_LEN 91
#define FADT_GPE1_LEN 93
#define FADT_FLAGS 112
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT 148
#define FADT_X_PM1B_EVT 160
#define FADT_X_PM1A_CNT 172
#define FADT_X_PM1B_CNT 184
#define FADT_X_PM_TMR 208
#define FADT_X_GPE0 220
#define FADT_X_GPE1 232
#define GAS_LEN 12
#define GAS_SPACE_MEMORY 0
#define GAS_SPACE_IO 1

bool acpi_checksum_ok(const void *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)p)[i];
	return sum == 0;
}

/* A port block [port, port+len) that fits the 16-bit I/O space. */
static bool port_block_ok(uint64_t port, unsigned len)
{
	return port != 0 && port <= 0x10000 - len;
}

/*
 * One register block: the X_ Generic Address at `x_off` if the table holds it and
 * its address is non-zero, else the 32-bit port at `off`. *port = 0 when
 * both are zero. Returns 0 or -EINVAL with *why.
 */
static int pm1_block(const uint8_t *t, size_t len, unsigned off, unsigned x_off, unsigned blk_len,
		     uint16_t *port, bool *from_x, const char **why, const char *bad_space,
		     const char *bad_port)
{
	uint64_t addr = 0;
	*from_x = false;
	if (len >= x_off + GAS_LEN && le_read(t + x_off + 4, 8) != 0) {
		if (t[x_off] != GAS_SPACE_IO) {
			*why = bad_space;
			return -EINVAL;
		}
		addr = le_read(t + x_off + 4, 8);
		*from_x = true;
	} else {
		addr = le_read(t + off, 4);
	}
	if (addr == 0) {
		*port = 0;
		return 0;
	}
	if (!port_block_ok(addr, blk_len)) {
		*why = bad_port;
		return -EINVAL;
	}
	*port = (uint16_t)addr;
	return 0;
}

int acpi_fadt_parse(const uint8_t *t, size_t len, struct acpi_fadt *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (len < ACPI_FADT_MIN_LEN) {
		*why = "FADT shorter than ACPI 1.0's 116 bytes";
		return -EINVAL;
	}
	if (memcmp(t, "FACP", 4) != 0 || le_read(t + 4, 4) != len) {
		*why = "not a FADT of the length given";
		return -EINVAL;
	}
	out->revision = t[8];
	out->flags = (uint32_t)le_read(t + FADT_FLAGS, 4);
	/* Read before the hardware-reduced refusal: such a DSDT still lists
	 * devices (microvm's virtio-mmio transports). */
	out->dsdt = le_read(t + FADT_DSDT, 4);
	if (len >= FADT_X_DSDT + 8 && le_read(t + FADT_X_DSDT, 8) != 0)
		out->dsdt = le_read(t + FADT_X_DSDT, 8);
	if (out->flags & ACPI_FADT_HW_REDUCED) {
		*why = "hardware-reduced ACPI: no PM1 blocks";
		return -EINVAL;
	}
	out->sci_int = (uint16_t)le_read(t + FADT_SCI_INT, 2);
	uint64_t smi = le_read(t + FADT_SMI_CMD, 4);
	if (smi > 0xffff) {
		*why = "SMI_CMD is not a 16-bit port";
		return -EINVAL;
	}
	out->smi_cmd = (uint16_t)smi;
	out->acpi_enable = t[FADT_ACPI_ENABLE];
	out->pm1_evt_len = t[FADT_PM1_EVT_LEN];
	out->pm1_cnt_len = t[FADT_PM1_CNT_LEN];
	if (out->pm1_evt_len < 4 || out->pm1_evt_len % 2) {
		*why = "PM1_EVT_LEN is less than 4 or odd";
		return -EINVAL;
	}
	if (out->pm1_cnt_len < 2) {
		*why = "PM1_CNT_LEN is less than 2";
		return -EINVAL;
	}

	bool xa, xb, xc, xd;
	int rc;
	if ((rc = pm1_block(t, len, FADT_PM1A_EVT, FADT_X_PM1A_EVT, out->pm1_evt_len, &out->pm1a_evt,
			    &xa, why, "X_PM1a_EVT_BLK is not in I/O space",
			    "PM1a_EVT_BLK is not a port block")) < 0 ||
	    (rc = pm1_block(t, len, FADT_PM1B_EVT, FADT_X_PM1B_EVT, out->pm1_evt_len, &out->pm1b_evt,
			    &xb, why, "X_PM1b_EVT_BLK is not in I/O space",
			    "PM1b_EVT_BLK is not a port block")) < 0 ||
	    (rc = pm1_block(t, len, FADT_PM1A_CNT, FADT_X_PM1A_CNT, out->pm1_cnt_len, &out->pm1a_cnt,
			    &xc, why, "X_PM1a_CNT_BLK is not in I/O space",
			    "PM1a_CNT_BLK is not a port block")) < 0 ||
	    (rc = pm1_block(t, len, FADT_PM1B_CNT, FADT_X_PM1B_CNT, out->pm1_cnt_len, &out->pm1b_cnt,
			    &xd, why, "X_PM1b_CNT_BLK is not in I/O space",
			    "PM1b_CNT_BLK is not a port block")) < 0)
		return rc;
	if (out->pm1a_evt == 0 || out->pm1a_cnt == 0) {
		*why = "no PM1a event or control block";
		return -EINVAL;
	}
	out->pm1_from_x = xa || xc;
	(void)xb;
	(void)xd;

	/* GPE blocks: only ever written to switch their enables off, so an
	 * unusable one is dropped rather than the whole table refused. */
	const char *ignored;
	bool x;
	out->gpe0_len = t[FADT_GPE0_LEN];
	out->gpe1_len = t[FADT_GPE1_LEN];
	if (out->gpe0_len < 2 || out->gpe0_len % 2 ||
	    pm1_block(t, len, FADT_GPE0, FADT_X_GPE0, out->gpe0_len, &out->gpe0_blk, &x, &ignored,
		      "", "") < 0 || out->gpe0_blk == 0) {
		out->gpe0_blk = 0;
		out->gpe0_len = 0;
	}
	if (out->gpe1_len < 2 || out->gpe1_len % 2 ||
	    pm1_block(t, len, FADT_GPE1, FADT_X_GPE1, out->gpe1_len, &out->gpe1_blk, &x, &ignored,
		      "", "") < 0 || out->gpe1_blk == 0) {
		out->gpe1_blk = 0;
		out->gpe1_len = 0;
	}
	/* The PM timer is one clock ruler among several (kernel/clock.c): an
	 * unusable one is dropped, the rest of the table still serves. */
	if (t[FADT_PM_TMR_LEN] != 4 ||
	    pm1_block(t, len, FADT_PM_TMR, FADT_X_PM_TMR, 4, &out->pm_tmr_blk, &x, &ignored, "",
		      "") < 0)
		out->pm_tmr_blk = 0;
	out->pm_tmr_bits = out->pm_tmr_blk ? (out->flags & ACPI_FADT_TMR_VAL_EXT ? 32 : 24) : 0;
	return 0;
}

/* HPET table offsets (HPET 1.0a, table 3). */
#define HPET_BLOCK_ID 36
#define HPET_ADDRESS 40
#define HPET_NUMBER 52

int acpi_hpet_parse(const uint8_t *t, size_t len, struct acpi_hpet *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (len < ACPI_HPET_LEN) {
		*why = "HPET table shorter than its 56 bytes";
		return -EINVAL;
	}
	if (memcmp(t, "HPET", 4) != 0 || le_read(t + 4, 4) != len) {
		*why = "not an HPET table of the length given";
		return -EINVAL;
	}
	if (t[HPET_ADDRESS] != GAS_SPACE_MEMORY) {
		*why = "HPET registers are not in system memory";
		return -EINVAL;
	}
	uint64_t a = le_read(t + HPET_ADDRESS + 4, 8);
	if (a == 0 || a % ACPI_HPET_REGS_LEN || a >= (1ULL << 52) - ACPI_HPET_REGS_LEN) {
		*why = "HPET address is 0, not 1 KiB aligned, or beyond 2^52";
		return -EINVAL;
	}
	out->address = a;
	out->block_id = (uint32_t)le_read(t + HPET_BLOCK_ID, 4);
	out->number = t[HPET_NUMBER];
	return 0;
}

void acpi_sci_mode(uint16_t inti_flags, bool *level, bool *active_low)
{
	*active_low = (inti_flags & 3) != 1;
	*level = ((inti_flags >> 2) & 3) != 1;
}

/* ---------------------------------------------------------------- AML */

#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_WORD 0x0b
#define AML_DWORD 0x0c
#define AML_QWORD 0x0e
#define AML_PACKAGE 0x12
#define AML_ROOT '\\'

/*
 * PkgLength at a[*i] (AML 20.2.4): the lead byte's bits 7:6 count the bytes
 * that follow (0-3); with none, bits 5:0 are the length, else bits 3:0 are
 * its low nibble (bits 5:4 zero) and each following byte 8 more bits. The
 * length counts itself. Returns it and moves *i past it, or 0 if it is
 * malformed or runs past `len`.
 */
static uint32_t pkg_length(const uint8_t *a, size_t len, size_t *i)
{
	uint8_t lead = a[*i];
	unsigned follow = lead >> 6;
	if (*i + 1 + follow > len)
		return 0;
	uint32_t n;
	if (follow == 0) {
		n = lead & 0x3f;
	} else {
		if (lead & 0x30)
			return 0;
		n = lead & 0x0f;
		for (unsigned k = 0; k < follow; k++)
			n |= (uint32_t)a[*i + 1 + k] << (4 + 8 * k);
	}
	*i += 1 + follow;
	return n;
}

/* One integer data object at a[*i], before `end`: its value in *v. */
static bool aml_integer(const uint8_t *a, size_t end, size_t *i, uint64_t *v)
{
	static const struct { uint8_t op, bytes; } prefixes[] = {
		{ AML_BYTE, 1 }, { AML_WORD, 2 }, { AML_DWORD, 4 }, { AML_QWORD, 8 },
	};
	if (*i >= end)
		return false;
	uint8_t op = a[*i];
	if (op == AML_ZERO || op == AML_ONE) {
		*v = op;
		*i += 1;
		return true;
	}
	for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
		if (op == prefixes[k].op) {
			if (end - *i < 1u + prefixes[k].bytes)
				return false;
			*v = le_read(a + *i + 1, prefixes[k].bytes);
			*i += 1 + prefixes[k].bytes;
			return true;
		}
	return false;
}

/* The package after "_S5_" at a[i]: 0, or -EINVAL with *why. */
static int s5_package(const uint8_t *a, size_t len, size_t i, uint8_t *ta, uint8_t *tb,
		      const char **why)
{
	if (i >= len || a[i] != AML_PACKAGE) {
		*why = "\\_S5_ is not a Package";
		return -EINVAL;
	}
	size_t start = ++i; /* PkgLength counts from its own first byte */
	if (i >= len) {
		*why = "\\_S5_ package cut off by the end of the table";
		return -EINVAL;
	}
	uint32_t plen = pkg_length(a, len, &i);
	if (plen == 0 || plen > len - start) {
		*why = "\\_S5_ package length is malformed or runs past the table";
		return -EINVAL;
	}
	size_t end = start + plen;
	if (i >= end) {
		*why = "\\_S5_ package has no element count";
		return -EINVAL;
	}
	uint8_t count = a[i++];
	if (count < 2) {
		*why = "\\_S5_ package has fewer than 2 elements";
		return -EINVAL;
	}
	uint64_t va, vb;
	if (!aml_integer(a, end, &i, &va) || !aml_integer(a, end, &i, &vb)) {
		*why = "\\_S5_ package does not start with two integer constants";
		return -EINVAL;
	}
	if (va > 7 || vb > 7) {
		*why = "\\_S5_ sleep type does not fit SLP_TYP's 3 bits";
		return -EINVAL;
	}
	*ta = (uint8_t)va;
	*tb = (uint8_t)vb;
	return 0;
}

int acpi_aml_find_s5(const uint8_t *aml, size_t len, uint8_t *slp_typa, uint8_t *slp_typb,
		     const char **why)
{
	int rc = -ENOENT;
	const char *first_why = NULL;
	for (size_t i = 0; i + 5 <= len; i++) {
		if (aml[i] != AML_NAME)
			continue;
		size_t n = i + 1;
		if (aml[n] == AML_ROOT)
			n++;
		if (n + 4 > len || memcmp(aml + n, "_S5_", 4) != 0)
			continue;
		/* A malformed match may be bytes inside some other object
		 * that happen to look like one: keep looking, and report the
		 * first reason only if nothing valid follows. */
		const char *w = NULL;
		if (s5_package(aml, len, n + 4, slp_typa, slp_typb, &w) == 0)
			return 0;
		if (!first_why)
			first_why = w;
		rc = -EINVAL;
	}
	*why = rc == -ENOENT ? "no \\_S5_ package in the AML" : first_why;
	return rc;
}
