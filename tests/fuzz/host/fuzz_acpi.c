/*
 * fuzz_acpi: the FADT parser, the HPET table parser and the \_S5 scan
 * (kernel/acpi_parse.c) fed firmware tables that lie.
 *
 * Input: a mode byte, then the table. Mode bit 0 clear: the rest is AML
 * for acpi_aml_find_s5 (bit 2 set: an HPET table for acpi_hpet_parse,
 * with "HPET" and the true length written in as bit 1 does for the FADT).
 * Bit 0 set: the rest is a FADT for acpi_fadt_parse;
 * with bit 1 also set the harness writes "FACP" and the true length into
 * its header first, as acpi.c would have checked them, so the fuzzer
 * spends its time past that gate. The table is a heap copy of exactly its
 * size, so a read past it is an ASan error.
 *
 * A refusal must carry a sentence. An accepted \_S5 gives 3-bit sleep
 * types and the bytes 08 ['\'] "_S5_" 12 are really in the input. An
 * accepted FADT has PM1a event and control blocks, every block a non-zero
 * port block inside 0..0xffff, PM1_EVT_LEN >= 4 and even, PM1_CNT_LEN >= 2,
 * a GPE block either absent (port and length 0) or such a block, and the
 * hardware-reduced flag clear, and a PM timer either absent (port and
 * width 0) or a 4-byte port block of 24 or 32 bits. An accepted HPET table
 * names a non-zero, 1 KiB aligned address below 2^52.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/acpi_parse.h"
#include "tests/fuzz/host/fuzz_util.h"

static void check_block(const char *name, uint16_t port, unsigned len)
{
	if (port == 0 || port > 0x10000 - len)
		fh_fail("accepted %s %#x with length %u: not a port block", name, port, len);
}

static void check_fadt(const struct acpi_fadt *f)
{
	if (f->pm1_evt_len < 4 || f->pm1_evt_len % 2 || f->pm1_cnt_len < 2)
		fh_fail("accepted PM1_EVT_LEN %u, PM1_CNT_LEN %u", f->pm1_evt_len, f->pm1_cnt_len);
	check_block("PM1a_EVT", f->pm1a_evt, f->pm1_evt_len);
	check_block("PM1a_CNT", f->pm1a_cnt, f->pm1_cnt_len);
	if (f->pm1b_evt)
		check_block("PM1b_EVT", f->pm1b_evt, f->pm1_evt_len);
	if (f->pm1b_cnt)
		check_block("PM1b_CNT", f->pm1b_cnt, f->pm1_cnt_len);
	if (f->gpe0_blk || f->gpe0_len)
		check_block("GPE0", f->gpe0_blk, f->gpe0_len);
	if (f->gpe1_blk || f->gpe1_len)
		check_block("GPE1", f->gpe1_blk, f->gpe1_len);
	if ((f->gpe0_len % 2) || (f->gpe1_len % 2))
		fh_fail("accepted an odd GPE block length %u/%u", f->gpe0_len, f->gpe1_len);
	if (f->flags & ACPI_FADT_HW_REDUCED)
		fh_fail("accepted a hardware-reduced FADT");
	if (f->pm_tmr_blk)
		check_block("PM_TMR", f->pm_tmr_blk, 4);
	if (f->pm_tmr_blk ? (f->pm_tmr_bits != 24 && f->pm_tmr_bits != 32) : f->pm_tmr_bits != 0)
		fh_fail("accepted PM timer %#x with %u bits", f->pm_tmr_blk, f->pm_tmr_bits);
}

static bool has_s5_name(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 6 <= n; i++)
		if (p[i] == 0x08 && ((memcmp(p + i + 1, "_S5_\x12", 5) == 0) ||
				     (i + 7 <= n && memcmp(p + i + 1, "\\_S5_\x12", 6) == 0)))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t n = size - 1;
	uint8_t *t = malloc(n ? n : 1);
	if (!t)
		fh_fail("out of memory");
	memcpy(t, data + 1, n);
	const char *why = NULL;
	if (!(mode & 1) && (mode & 4)) {
		if ((mode & 2) && n >= 8) {
			memcpy(t, "HPET", 4);
			for (int k = 0; k < 4; k++)
				t[4 + k] = (uint8_t)(n >> (8 * k));
		}
		struct acpi_hpet h;
		int rc = acpi_hpet_parse(t, n, &h, &why);
		fh_trace("hpet %zu bytes: rc %d (%s)", n, rc, rc ? why : "");
		if (rc == 0 && (h.address == 0 || h.address % ACPI_HPET_REGS_LEN ||
				h.address >= (1ULL << 52) || n < ACPI_HPET_LEN))
			fh_fail("accepted an HPET at %#llx from %zu bytes", (unsigned long long)h.address, n);
		if (rc != 0 && (!why || !*why))
			fh_fail("refused the HPET table (%d) without a reason", rc);
	} else if (!(mode & 1)) {
		uint8_t a = 0xee, b = 0xee;
		int rc = acpi_aml_find_s5(t, n, &a, &b, &why);
		fh_trace("aml %zu bytes: rc %d a %u b %u (%s)", n, rc, a, b, rc ? why : "");
		if (rc == 0 && (a > 7 || b > 7 || !has_s5_name(t, n)))
			fh_fail("accepted \\_S5 with sleep types %u/%u", a, b);
		if (rc != 0 && (!why || !*why))
			fh_fail("refused \\_S5 (%d) without a reason", rc);
	} else {
		if ((mode & 2) && n >= 8) {
			memcpy(t, "FACP", 4);
			for (int k = 0; k < 4; k++)
				t[4 + k] = (uint8_t)(n >> (8 * k));
		}
		struct acpi_fadt f;
		int rc = acpi_fadt_parse(t, n, &f, &why);
		fh_trace("fadt %zu bytes: rc %d (%s)", n, rc, rc ? why : "");
		if (rc == 0)
			check_fadt(&f);
		else if (!why || !*why)
			fh_fail("refused the FADT (%d) without a reason", rc);
	}
	free(t);
	return 0;
}
