/*
 * paging: blimp's own page tables — a direct map of all RAM at
 * virtual == physical, 2 MiB pages where possible, and 4 KiB control where
 * the balloon needs it.
 *
 *   virtual = physical
 *   0            4 KiB   unmapped: a NULL dereference faults
 *   4 KiB        4 GiB   mapped (RAM, firmware, LAPIC/IOAPIC, ECAM, low BARs)
 *   4 GiB        ...     mapped where the memory map lists anything; RAM
 *                        a GiB at a time, when the allocator first hands
 *                        out a frame of it (paging_ram_used)
 *   anywhere             device memory mapped on demand (paging_map_mmio),
 *                        e.g. a 64-bit BAR that OVMF put near 896 GiB
 *
 * A ballooned frame is unmapped (paging_unmap_range), so a stray use faults
 * loudly instead of silently touching memory the host took back.
 *
 * Page-table frames come from a provider function: an early bump allocator
 * at boot (kernel/bootmem.c), the page-frame allocator afterwards.
 */
#ifndef BLIMP_PAGING_H
#define BLIMP_PAGING_H

#include <stdbool.h>
#include <stdint.h>
#include "boot/boot_info.h"

/* Returns the physical address of a 4 KiB frame, or 0 when none; must not
 * reclaim (it is called in the middle of a balloon step). `release` takes a
 * frame back (NULL: tables are never given back, as at boot). */
typedef uint64_t (*paging_frame_fn)(void);
typedef void (*paging_frame_free_fn)(uint64_t pa);
void paging_set_frame_provider(paging_frame_fn fn, paging_frame_free_fn release);

/* Build the direct map from the memory map and switch CR3 to it. */
int paging_init(const struct boot_info *bi);

/* RAM in [pa, pa+size) is about to be used: map the GiBs around it that
 * boot left unmapped. Allocates nothing and cannot fail (what it needs was
 * set aside at boot), so the page-frame allocator can call it from inside
 * any of its calls. */
void paging_ram_used(uint64_t pa, uint64_t size);

/* x86-64 physical addresses have at most 52 bits (MAXPHYADDR); a page
 * table entry cannot name anything at or above this. */
#define PAGING_PHYS_LIMIT (1ULL << 52)

/* Identity-map [pa, pa+size) as uncached device memory. Returns 0, -EINVAL
 * (empty, wrapping, or reaching PAGING_PHYS_LIMIT) or -ENOMEM. */
int paging_map_mmio(uint64_t pa, uint64_t size);

/* Remove / restore [pa, pa+size) of RAM in the direct map (4 KiB aligned).
 * Whole aligned 2 MiB pieces are handled as one entry; others split a
 * 2 MiB page into 4 KiB ones (a new table, from the provider or, when it
 * has none, from a small reserve kept for this); a split block whose pages
 * are all mapped again becomes one 2 MiB entry and its table is freed.
 * Returns 0, -EINVAL or -ENOMEM (no table could be had: a range inside one
 * 2 MiB block is then unchanged). */
int paging_unmap_range(uint64_t pa, uint64_t size);
int paging_map_range(uint64_t pa, uint64_t size);

/* Map one 4 KiB page at an address outside the direct map (the heap):
 * va -> pa, writable. Returns 0, -EINVAL or -ENOMEM. */
int paging_map_page(uint64_t va, uint64_t pa);

/* Unmap the page at va; returns the frame it mapped, or 0 if none. */
uint64_t paging_unmap_page(uint64_t va);

/* The Accessed and Dirty bits the CPU set in the 4 KiB page-table entry of
 * `va` (a page mapped with paging_map_page), as PAGING_ACCESSED |
 * PAGING_DIRTY, or -ENOENT if it is not mapped. With `clear_accessed`,
 * Accessed is cleared and the TLB entry invalidated, so the next access
 * sets it again. Dirty is never cleared here: a page's owner unmaps it to
 * clean it. */
#define PAGING_ACCESSED 1
#define PAGING_DIRTY 2
int paging_page_bits(uint64_t va, bool clear_accessed);

/* Is the 4 KiB page at `va` mapped? */
int paging_is_mapped(uint64_t va);

/* Page-table frames in use. */
uint64_t paging_table_frames(void);

struct paging_table_stats {
	uint64_t tables;       /* page-table frames in use */
	uint64_t reserve;      /* frames waiting in the reserve */
	uint64_t reserve_uses; /* tables that had to come from the reserve */
	uint64_t collapsed;    /* split 2 MiB blocks made whole again */
};
void paging_table_stats(struct paging_table_stats *st);

#endif
