/*
 * addr: the one failure of the address rule in kernel/addr.h — a heap
 * pointer handed to virt_to_phys. Its own file, so that every user of
 * virt_to_phys (page tables, stacks, rings, drivers) depends on addr and
 * panic alone, not on the memory set-up in mm.c.
 */
#include "addr.h"
#include "panic.h"

void addr_not_direct_mapped(const void *p)
{
	panic("virt_to_phys(%p): heap memory is not physically contiguous; "
	      "device memory must come from mm_alloc_dma", p);
}
