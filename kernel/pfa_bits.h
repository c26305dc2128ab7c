/*
 * pfa_bits: the layout of the allocator's per-frame byte, private to
 * pfa.c and pfa_check.c (see the picture at the top of pfa.c).
 */
#ifndef BLIMP_PFA_BITS_H
#define BLIMP_PFA_BITS_H

#include <stdbool.h>
#include <stdint.h>

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
/* Bit i of its 64-bit bitmap word (the word is i >> 6). */

#endif
