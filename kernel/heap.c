/*
 * heap: sbrk over a fixed arena (see heap.h).
 */
#include "heap.h"

#define HEAP_SIZE (4u << 20)
static uint8_t arena[HEAP_SIZE] __attribute__((aligned(4096)));
static size_t brk;

void *heap_sbrk(intptr_t increment)
{
	if ((increment > 0 && (size_t)increment > HEAP_SIZE - brk) ||
	    (increment < 0 && (size_t)-increment > brk))
		return NULL;
	void *old = arena + brk;
	brk += increment;
	return old;
}

size_t heap_used(void)
{
	return brk;
}

size_t heap_capacity(void)
{
	return HEAP_SIZE;
}
