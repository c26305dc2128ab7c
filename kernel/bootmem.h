/*
 * bootmem: the allocator before the allocator.
 *
 * Page tables and the page-frame allocator's own metadata are needed before
 * the page-frame allocator exists. bootmem hands out memory by bumping a
 * pointer through the usable RAM just above the kernel image (below 4 GiB,
 * which the early page tables map), and remembers how far it went so the
 * page-frame allocator can reserve exactly that.
 */
#ifndef BLIMP_BOOTMEM_H
#define BLIMP_BOOTMEM_H

#include <stdint.h>
#include <stddef.h>
#include "boot/boot_info.h"

int bootmem_init(const struct boot_info *bi, uint64_t kernel_end);

/* `size` bytes aligned to 4 KiB, not cleared (the caller writes what it
 * reads); physical address, or 0 if none. */
uint64_t bootmem_alloc(size_t size);
uint64_t bootmem_alloc_frame(void);

/* What bootmem has handed out so far: [start, end). */
void bootmem_used(uint64_t *start, uint64_t *end);

/* After this, bootmem_alloc fails: its range is frozen for reservation. */
void bootmem_close(void);

#endif
