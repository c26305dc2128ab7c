/*
 * addr: the one rule for turning pointers into physical addresses.
 *
 * blimp maps all RAM at virtual == physical (see arch/x86_64/paging.h), so a
 * pointer to RAM is its physical address. Code shared with the host (rings,
 * allocator users, parsers) goes through these two functions; on the host,
 * where a simulated device reads "guest memory" through host pointers, the
 * same identity holds and the same code runs unchanged.
 */
#ifndef BLIMP_ADDR_H
#define BLIMP_ADDR_H

#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE ((uint64_t)1 << PAGE_SHIFT)
#define HUGE_PAGE_SHIFT 21
#define HUGE_PAGE_SIZE ((uint64_t)1 << HUGE_PAGE_SHIFT)

#ifdef BLIMP_KERNEL
/*
 * The heap (malloc) lives at HEAP_VIRT_BASE, backed by scattered frames: it
 * is not physically contiguous, so it must never be handed to a device.
 * Device memory comes from the page-frame allocator (mm_alloc_dma).
 */
#define HEAP_VIRT_BASE 0x0000400000000000ULL
/* Panics naming the pointer: a heap address has no physical twin (addr.c). */
__attribute__((noreturn)) void addr_not_direct_mapped(const void *p);
#endif

static inline uint64_t virt_to_phys(const void *p)
{
#ifdef BLIMP_KERNEL
	if ((uintptr_t)p >= HEAP_VIRT_BASE)
		addr_not_direct_mapped(p);
#endif
	return (uint64_t)(uintptr_t)p;
}

static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(uintptr_t)pa;
}

#endif
