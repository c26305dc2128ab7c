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

static inline uint64_t virt_to_phys(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(uintptr_t)pa;
}

#endif
