/*
 * mptable: the IOAPICs of the Intel MultiProcessor Specification 1.4 table
 * (chapter 4), for machines with no ACPI MADT — QEMU's microvm with
 * acpi=off, whose qboot firmware writes one. Pure parsing over byte
 * buffers: compiles into the kernel (arch/x86_64/ioapic.c scans memory
 * for it), the unit test and nothing else needs to trust the firmware.
 *
 *   floating pointer "_MP_" (16 bytes, on a 16-byte boundary)
 *     +4  physical address of the configuration table
 *     +8  length in 16-byte units (1)   +10 checksum over the 16 bytes
 *   configuration table "PCMP"
 *     +4  base table length (u16)   +7 checksum over it   +34 entry count
 *     +44 entries: processor (type 0, 20 bytes), bus (1), I/O APIC (2),
 *         I/O interrupt (3), local interrupt (4): 8 bytes each
 *   I/O APIC entry: +1 id, +2 version, +3 flags (bit 0 usable), +4 address
 *
 * GSIs are not in the table: blimp numbers each IOAPIC's lines after the
 * previous one's, the first from 0, as ACPI's model does when it is absent.
 */
#ifndef BLIMP_MPTABLE_H
#define BLIMP_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MP_FLOATING_LEN 16
#define MP_CONFIG_HEADER_LEN 44

struct mp_ioapic {
	uint8_t id;
	uint32_t address;
};

/* The offset of the first valid floating pointer in area[0..len) (signature
 * on a 16-byte boundary, length 1, checksum 0), or -1. */
long mp_find_floating(const uint8_t *area, size_t len);

/* The configuration table's physical address from a floating pointer; 0
 * when it has none (a default configuration, not supported). */
uint32_t mp_config_address(const uint8_t *fp);

/*
 * Read the usable I/O APIC entries of the configuration table t[0..len)
 * (len: the bytes the caller could map, at least the header's) into
 * out[0..max). The signature, base table length (within len), checksum and
 * every entry's size are checked; an entry of an unknown type ends the
 * walk as a refusal, since its length is unknown. An IOAPIC address must be
 * 16-byte aligned and non-zero. Returns the number found (0 and more), or
 * -EINVAL with *why set.
 */
int mp_parse_config(const uint8_t *t, size_t len, struct mp_ioapic *out, int max, const char **why);

#endif
