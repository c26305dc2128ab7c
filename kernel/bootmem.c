/*
 * bootmem: a bump allocator for boot-time structures (see bootmem.h).
 */
#include <errno.h>
#include <stdio.h>
#include "bootmem.h"
#include "addr.h" /* PAGE_SIZE */

#define BOOTMEM_LIMIT (4ULL << 30) /* what the PVH early page tables map */

static uint64_t start, next, end;
static int closed;

int bootmem_init(const struct boot_info *bi, uint64_t kernel_end)
{
	kernel_end = (kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	for (uint32_t i = 0; i < bi->memmap_count; i++) {
		const struct boot_mem_range *r = &bi->memmap[i];
		uint64_t lo = r->base, hi = r->base + r->size;
		if (r->type != BOOT_MEM_USABLE || hi <= kernel_end || lo >= BOOTMEM_LIMIT)
			continue;
		if (lo < kernel_end)
			lo = kernel_end;
		lo = (lo + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		if (hi > BOOTMEM_LIMIT)
			hi = BOOTMEM_LIMIT;
		if (hi - lo < 64 * PAGE_SIZE)
			continue;
		start = next = lo;
		end = hi & ~(PAGE_SIZE - 1);
		return 0;
	}
	return -ENOMEM;
}

uint64_t bootmem_alloc(size_t size)
{
	size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (closed || size > end - next)
		return 0;
	uint64_t pa = next;
	next += size;
	/* Not cleared: the allocator's metadata is 400 MiB in a 1 TiB guest
	 * and is written lazily (pfa.c), and page tables clear themselves. */
	return pa;
}

uint64_t bootmem_alloc_frame(void)
{
	return bootmem_alloc(PAGE_SIZE);
}

void bootmem_used(uint64_t *s, uint64_t *e)
{
	*s = start;
	*e = next;
}

void bootmem_close(void)
{
	closed = 1;
}
