/*
 * mm: the kernel's memory, put together.
 *
 * Owns the one page-frame allocator (kernel/pfa.c) over all usable RAM:
 * builds it from the boot memory map, keeps the low 1 MiB, the kernel image
 * and boot-time structures reserved, and feeds page tables, the heap and
 * device (DMA) memory from it. The shell's `alloc`, `free` and `pfa` on it
 * are in mm_cmds.c.
 */
#ifndef BLIMP_MM_H
#define BLIMP_MM_H

#include <stddef.h>
#include <stdint.h>
#include "boot/boot_info.h"
#include "kframe.h"
#include "pfa.h"

extern struct pfa kernel_pfa;
/* The kernel's own single frames (page tables, heap), grouped in 2 MiB
 * chunks so they do not pin free memory apart (kernel/kframe.h). */
extern struct kframes kernel_kframes;

/* Build the allocator from the boot path's memory map (normalized).
 * Panics if impossible. */
void mm_init(const struct boot_info *bi);

/* A zeroed 4 KiB frame for page tables (a paging_frame_fn), without
 * calling the OOM handler; 0 if none. mm_free_table_frame takes one back. */
uint64_t mm_alloc_table_frame(void);
void mm_free_table_frame(uint64_t pa);

/* Physically contiguous, zeroed, page-aligned memory a device may use
 * (rings, buffers), rounded up to a power-of-two number of frames. NULL
 * when none; mm_free_dma takes the same size back. */
void *mm_alloc_dma(size_t bytes);
void mm_free_dma(void *p, size_t bytes);

/* The byte every freed frame is filled with (poison=0xNN), or -1 when the
 * kernel does not poison freed memory (the default: it would make the host
 * back every freed frame again). */
int mm_poison_value(void);

#endif
