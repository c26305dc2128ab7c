/*
 * heap: where malloc's memory comes from.
 *
 * newlib's malloc grows its arena through sbrk. Until the page-frame
 * allocator exists the heap is a fixed region in the kernel image.
 */
#ifndef BLIMP_HEAP_H
#define BLIMP_HEAP_H

#include <stdint.h>
#include <stddef.h>

/* Grow (or shrink) the heap by `increment` bytes; the old break, or NULL. */
void *heap_sbrk(intptr_t increment);

/* Bytes the heap has handed to malloc so far, and its capacity. */
size_t heap_used(void);
size_t heap_capacity(void);

#endif
