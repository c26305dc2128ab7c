/*
 * memmap: turning a firmware memory map into one the kernel can trust.
 *
 * Firmware maps arrive unsorted, with overlaps and with neighbours of the same
 * type split apart (UEFI lists a descriptor per allocation). memmap_normalize
 * sorts them, resolves overlaps in favour of the more restrictive type (a byte
 * that is both "usable" and "reserved" is reserved) and merges neighbours.
 *
 * This file depends on nothing but <stdint.h>: it is compiled into the
 * kernel, into the UEFI loader and into the host unit tests.
 */
#ifndef BLIMP_MEMMAP_H
#define BLIMP_MEMMAP_H

#include <stdint.h>
#include "../boot/boot_info.h"

/*
 * Normalize r[0..*count) in place: sorted by base, no overlaps, no empty
 * ranges, adjacent ranges of one type merged. Splitting overlaps can need
 * more entries than it started with; `max` is the capacity of r.
 * Returns 0, or -1 if the result would not fit in max entries (r is then
 * still a valid, sorted, non-overlapping map of what fitted: the ranges that
 * did not fit are the highest ones).
 */
int memmap_normalize(struct boot_mem_range *r, uint32_t *count, uint32_t max);

/* Sum of the sizes of ranges of the given type. */
uint64_t memmap_total(const struct boot_mem_range *r, uint32_t count, uint32_t type);

/* Human name of a range type ("usable", "reserved", ...). */
const char *memmap_type_name(uint32_t type);

#endif
