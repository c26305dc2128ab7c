/*
 * heap: sbrk over frames mapped one by one (see heap.h).
 */
#include "heap.h"
#include "addr.h"
#include "mm.h"
#include "arch/x86_64/paging.h"

#define HEAP_MAX (1ULL << 30) /* virtual room; frames are taken only as it grows */

static uint64_t brk;    /* bytes in use by malloc */
static uint64_t mapped; /* bytes backed by frames (brk rounded up to pages) */

void *heap_sbrk(intptr_t increment)
{
	uint64_t old = brk;
	if ((increment > 0 && (uint64_t)increment > HEAP_MAX - brk) ||
	    (increment < 0 && (uint64_t)-increment > brk))
		return NULL;
	uint64_t want = (brk + increment + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	while (mapped < want) {
		int64_t pfn = kframe_alloc(&kernel_kframes, 0); /* may deflate the balloon */
		if (pfn < 0)
			goto undo;
		if (paging_map_page(HEAP_VIRT_BASE + mapped, (uint64_t)pfn << PAGE_SHIFT) < 0) {
			kframe_free(&kernel_kframes, (uint64_t)pfn);
			goto undo;
		}
		mapped += PAGE_SIZE;
	}
	while (mapped > want) {
		mapped -= PAGE_SIZE;
		uint64_t pa = paging_unmap_page(HEAP_VIRT_BASE + mapped);
		if (pa)
			kframe_free(&kernel_kframes, pa >> PAGE_SHIFT);
	}
	brk += increment;
	return (void *)(uintptr_t)(HEAP_VIRT_BASE + old);
undo:
	/* Keep what was mapped: a later, smaller request may fit. */
	return NULL;
}

size_t heap_used(void)
{
	return brk;
}

size_t heap_capacity(void)
{
	return HEAP_MAX;
}
