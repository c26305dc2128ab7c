/*
 * pfa_bits: the layout of the allocator's per-frame byte, private to
 * pfa.c and pfa_check.c (see the picture at the top of pfa.c).
 */
#ifndef BLIMP_PFA_BITS_H
#define BLIMP_PFA_BITS_H

#define TAIL 15u /* order field of every frame but a block's first */
#define STATE(b) ((b) & 7u)
#define REPORTED(b) (((b) >> 3) & 1u)
#define ORDER(b) ((b) >> 4)
#define FRAME(state, rep, order) ((uint8_t)((state) | ((rep) << 3) | ((order) << 4)))
#define BIT(i) (1ULL << ((i) & 63))

#endif
