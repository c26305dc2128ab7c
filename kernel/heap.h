/*
 * heap: where malloc's memory comes from.
 *
 * newlib's malloc grows its arena through sbrk. The arena is a virtual
 * region of its own (HEAP_VIRT_BASE, kernel/addr.h), backed page by page
 * with frames from the page-frame allocator, so the heap never needs
 * physically contiguous memory and gives frames back when malloc trims.
 * Heap memory is for the kernel's own bookkeeping, never for a device.
 */
#ifndef BLIMP_HEAP_H
#define BLIMP_HEAP_H

#include <stdint.h>
#include <stddef.h>

/* Grow (or shrink) the heap by `increment` bytes; the old break, or NULL. */
void *heap_sbrk(intptr_t increment);

/* Bytes the heap has handed to malloc so far, and its virtual capacity. */
size_t heap_used(void);
size_t heap_capacity(void);

#endif
