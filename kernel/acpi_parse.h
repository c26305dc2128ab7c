/*
 * acpi_parse: the pure part of reading ACPI — the FADT's fields (power
 * management and the PM timer), the HPET table, and the \_S5 sleep type in
 * the DSDT's AML — over byte buffers, so one source runs in the kernel, the
 * host unit test and the fuzzer.
 *
 * Tables are firmware data: every read is bounded by the length the caller
 * gives (the table's own length, already checked to lie inside the mapping),
 * and every value that will become a port number or a register value is
 * checked before it is returned. A refusal returns -EINVAL and points *why at
 * a sentence saying what was wrong (never printed here: the caller decides).
 *
 * References: ACPI 6.5, 5.2.9 (FADT), 5.2.3.2 (Generic Address Structure),
 * 4.8.3 (PM1 registers), 4.8.3.3 (PM timer), 7.4.2 (\_Sx objects), 20.2
 * (AML grammar); IA-PC HPET Specification 1.0a, 3.2.4 (the HPET table).
 */
#ifndef BLIMP_ACPI_PARSE_H
#define BLIMP_ACPI_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACPI_HEADER_LEN 36
#define ACPI_FADT_MIN_LEN 116   /* ACPI 1.0's FADT: everything up to Flags */

/* PM1 status/enable bits (ACPI 6.5, 4.8.3.1) and control bits (4.8.3.2). */
#define ACPI_PM1_TMR_STS (1u << 0)
#define ACPI_PM1_PWRBTN_STS (1u << 8)
#define ACPI_PM1_WAK_STS (1u << 15)
#define ACPI_PM1_PWRBTN_EN (1u << 8)
#define ACPI_PM1_SCI_EN (1u << 0)
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP_MASK (7u << 10)
#define ACPI_PM1_SLP_EN (1u << 13)

/* FADT Flags bits used here. */
#define ACPI_FADT_PWR_BUTTON (1u << 4)      /* set: the power button is a control-method device */
#define ACPI_FADT_TMR_VAL_EXT (1u << 8)     /* set: the PM timer has 32 bits, else 24 */
#define ACPI_FADT_HW_REDUCED (1u << 20)     /* set: no PM1 blocks, no SCI_EN */

/* What blimp takes from the FADT. A port of 0 means "absent". */
struct acpi_fadt {
	uint8_t revision;
	uint64_t dsdt;           /* X_DSDT if present and non-zero, else DSDT */
	uint16_t sci_int;        /* the SCI's interrupt in 8259 terms (ISA IRQ) */
	uint16_t smi_cmd;        /* 0: ACPI mode cannot (need not) be switched on */
	uint8_t acpi_enable;
	uint32_t flags;
	uint16_t pm1a_evt, pm1b_evt; /* status at +0, enable at +pm1_evt_len/2 */
	uint16_t pm1a_cnt, pm1b_cnt;
	uint8_t pm1_evt_len, pm1_cnt_len;
	bool pm1_from_x;         /* the blocks came from the X_ (64-bit) fields */
	/* General-purpose event blocks (status half, then enable half); 0 if
	 * absent or unusable (not I/O, bad port): only ever switched off. */
	uint16_t gpe0_blk, gpe1_blk;
	uint8_t gpe0_len, gpe1_len;         /* the blocks came from the X_ (64-bit) fields */
	/* The ACPI PM timer (3.579545 MHz, counts up): its 4-byte port, 0 if
	 * absent or unusable (not I/O, PM_TMR_LEN not 4, bad port) — dropped,
	 * not refused, as the GPE blocks; pm_tmr_bits 24 or 32 (TMR_VAL_EXT). */
	uint16_t pm_tmr_blk;
	uint8_t pm_tmr_bits;
};

#define ACPI_PM_TIMER_HZ 3579545u

/* What blimp takes from the HPET table: where the registers are. */
#define ACPI_HPET_LEN 56         /* header, block id, address, number, min tick, flags */
#define ACPI_HPET_REGS_LEN 1024  /* the register block (HPET 1.0a, 2.3.1) */
struct acpi_hpet {
	uint64_t address;        /* physical, system memory, 1 KiB aligned */
	uint32_t block_id;       /* Event Timer Block ID: vendor 31:16, count 12:8 */
	uint8_t number;          /* HPET sequence number */
};

/* Sum of `len` bytes is 0 (mod 256). */
bool acpi_checksum_ok(const void *p, size_t len);

/*
 * Read the FADT in t[0..len) (header included; len is the table's length,
 * its checksum already checked) into *out. Takes the X_ Generic Address
 * fields where they are present (the table is long enough) and non-zero,
 * else the 32-bit ones; PM1 blocks must be in system I/O space, inside the
 * 16-bit port range, PM1_EVT_LEN at least 4 and even, PM1_CNT_LEN at least
 * 2. GPE blocks that are not such port blocks are left out (0), not refused.
 * Returns 0, or -EINVAL with *why set (hardware-reduced ACPI included: it
 * has no PM1 blocks; out->dsdt is still set then, for the DSDT's devices).
 */
int acpi_fadt_parse(const uint8_t *t, size_t len, struct acpi_fadt *out, const char **why);

/*
 * Read the HPET table in t[0..len) (header included; its checksum already
 * checked) into *out. The base address must be a Generic Address in system
 * memory (space 0), non-zero, aligned to the 1 KiB register block and below
 * 2^52 (what a page table can map). Returns 0, or -EINVAL with *why set.
 */
int acpi_hpet_parse(const uint8_t *t, size_t len, struct acpi_hpet *out, const char **why);

/*
 * The SCI's trigger and polarity from the MPS INTI flags of a MADT interrupt
 * source override for it (bits 1:0 polarity, 3:2 trigger; 01 high / edge,
 * 11 low / level). A field of 00 ("as the bus says"), or no override at all
 * (pass 0), means the SCI's own default: level-triggered, active-low (ACPI
 * 6.5, 5.2.12.5) — not ISA's edge, active-high. The reserved value 10 is
 * taken as the default too.
 */
void acpi_sci_mode(uint16_t inti_flags, bool *level, bool *active_low);

/*
 * Find `Name(\_S5_, Package(){a, b, ...})` in the AML bytes aml[0..len)
 * (a DSDT or SSDT without its 36-byte header) and return SLP_TYPa and
 * SLP_TYPb (3 bits each). A bounded byte scan, not an interpreter: NameOp
 * 0x08, an optional root prefix '\', "_S5_", PackageOp 0x12, PkgLength,
 * NumElements >= 2, then two integers (ZeroOp, OneOp, BytePrefix,
 * WordPrefix, DWordPrefix, QWordPrefix). Never reads past aml[len-1].
 * Returns 0, -ENOENT (no \_S5_ package) or -EINVAL with *why set (found but
 * malformed or out of range).
 */
int acpi_aml_find_s5(const uint8_t *aml, size_t len, uint8_t *slp_typa, uint8_t *slp_typb,
		     const char **why);

#endif
