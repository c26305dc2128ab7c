/*
 * le: reading little-endian fields out of bytes someone else laid out —
 * ACPI tables, ELF headers, virtio configuration space. One copy, header
 * only, for the kernel, the UEFI loader, the unit tests and the harnesses.
 * Byte by byte, so an unaligned field is fine and the host's order never
 * matters.
 *
 *   le_read(p, n)  the n-byte (1..8) little-endian unsigned integer at p
 *   le32(p)        le_read(p, 4)
 */
#ifndef BLIMP_LE_H
#define BLIMP_LE_H

#include <stdint.h>

static inline uint64_t le_read(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = bytes - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)le_read(p, 4);
}

#endif
