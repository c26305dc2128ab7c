/*
 * vm_internal: what kernel/vm.c (regions, faults, reclaim) and
 * kernel/vm_age.c (the aging hand, the working-set estimate) share. Not an
 * API: everything else goes through kernel/vm.h.
 */
#ifndef BLIMP_VM_INTERNAL_H
#define BLIMP_VM_INTERNAL_H

#include <stdint.h>
#include "vm.h"
#include "addr.h"
#include "replace.h"

#define VM_PAGE_LOST 1u
/* Used at the aging hand's last visit (or just faulted in). Reclaim counts
 * a page as referenced if its Accessed bit or this is set: unused means
 * unused for a whole round of the hand, not just since its last visit —
 * a hot page is always found used, a cold one is not. */
#define VM_PAGE_YOUNG 2u
#define VPN_BITS 40
#define PAGE_ID(a, vpn) (((uint64_t)(a)->id << VPN_BITS) | (vpn))

struct vm_page {
	uint32_t rslot;     /* its slot in the vm_ring while resident, else REPLACE_NONE */
	uint16_t flags;
	uint16_t used_tick; /* the aging tick (vm_age_tick) it was last seen used */
	uint64_t swap;      /* slot + 1 of its copy in swap; 0: none */
};

extern struct vm_area vm_areas[VM_AREAS];
extern struct replace vm_ring;     /* every resident page of every region */
extern struct vm_stats vm_st;

static inline uint64_t page_va(const struct vm_area *a, uint64_t vpn)
{
	return a->base + (vpn << PAGE_SHIFT);
}

/* vm_age.c: start the aging hand (once, from vm_init); the current tick,
 * for a page just faulted in. */
void vm_age_start(void);
uint16_t vm_age_tick(void);
/* vm.ws_margin: percent kept on top of the working sets (vm_avail). */
unsigned vm_ws_margin_pct(void);

#endif
