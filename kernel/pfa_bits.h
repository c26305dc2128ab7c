/*
 * pfa_bits: the layout of the allocator's per-frame byte, private to
 * pfa.c and pfa_check.c (see the picture at the top of pfa.c).
 */
#ifndef BLIMP_PFA_BITS_H
#define BLIMP_PFA_BITS_H

#include <stdbool.h>
#include <stdint.h>
#include "pfa.h"

#define PFA_TAIL 15u /* order field of every frame but a block's first */

/* The enum pfa_state in a frame byte. */
static inline unsigned pfa_bits_state(uint8_t b) { return b & 7u; }
/* Whether a free block's first frame says the host holds none of it. */
static inline bool pfa_bits_reported(uint8_t b) { return (b >> 3) & 1u; }
/* The order of the block a frame starts, or PFA_TAIL. */
static inline unsigned pfa_bits_order(uint8_t b) { return b >> 4; }
/* A frame byte from its three fields. */
static inline uint8_t pfa_bits_pack(unsigned state, bool reported, unsigned order)
{
	return (uint8_t)(state | ((unsigned)reported << 3) | (order << 4));
}

/* Whether section s (frames s * PFA_SECTION_FRAMES on) is still lazy: its
 * frame bytes and its own bitmap words hold whatever the buffer held. */
static inline bool pfa_section_lazy(const struct pfa *a, uint64_t s)
{
	return s < a->lazy_limit && ((a->lazy[s >> 6] >> (s & 63)) & 1);
}

/* Whether section s holds no memory (pfa_set_absent); it stays lazy. */
static inline bool pfa_section_absent(const struct pfa *a, uint64_t s)
{
	return s < a->lazy_limit && ((a->absent[s >> 6] >> (s & 63)) & 1);
}

/* Where frame pfn's byte is. */
static inline uint8_t *pfa_frame_ptr(const struct pfa *a, uint64_t pfn)
{
	return &a->frame[pfn];
}

/* A frame's byte, as it would be if its section were written: a lazy
 * section is one free max-order block when its bit is on the unreported
 * max-order list, else all reserved. */
static inline uint8_t pfa_frame_byte(const struct pfa *a, uint64_t pfn)
{
	uint64_t s = pfn >> PFA_MAX_ORDER;
	if (!pfa_section_lazy(a, s))
		return *pfa_frame_ptr(a, pfn);
	if (!sbitmap_test(&a->unreported[PFA_MAX_ORDER], s))
		return pfa_bits_pack(PFA_RESERVED, 0, 0);
	return pfa_bits_pack(PFA_FREE, 0, (pfn & (PFA_SECTION_FRAMES - 1)) ? PFA_TAIL : PFA_MAX_ORDER);
}

/* Words per section at level l of the order-k bitmaps, when a word there
 * lies wholly inside one section (those are written lazily, with it); 0
 * when a word spans sections (those are written at pfa_init). A level-l
 * word covers 2^(6(l+1)+k) frames. */
static inline uint64_t pfa_lazy_words(unsigned k, int l)
{
	unsigned span = 6u * (unsigned)(l + 1) + k;
	return span <= PFA_MAX_ORDER ? 1ULL << (PFA_MAX_ORDER - span) : 0;
}

/* Whether word w of level l of an order-k bitmap belongs to a lazy section
 * (its contents mean nothing; it reads as zero). */
static inline bool pfa_word_lazy(const struct pfa *a, unsigned k, int l, uint64_t w)
{
	uint64_t per = pfa_lazy_words(k, l);
	return per && pfa_section_lazy(a, w / per);
}

#endif
