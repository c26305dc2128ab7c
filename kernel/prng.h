/*
 * prng: the two small pseudo-random generators blimp uses, one copy each,
 * for the kernel's device fuzzer (fuzz/), the unit tests and the harnesses.
 * Freestanding: header only, no state of its own. Not for secrets.
 *
 *   prng_splitmix64  Steele, Lea and Flood's SplitMix64 (Vigna's constants):
 *                    any seed, 0 included, gives a full-period stream.
 *   prng_mix64       its output function alone: a well-mixed hash of x.
 *   prng_xorshift64  Marsaglia's xorshift64 (13, 7, 17): the state must not
 *                    be 0 (it stays 0).
 */
#ifndef BLIMP_PRNG_H
#define BLIMP_PRNG_H

#include <stdint.h>

#define PRNG_GOLDEN_GAMMA 0x9e3779b97f4a7c15ULL

/* SplitMix64's output for state x: a bijective hash of x. */
static inline uint64_t prng_mix64(uint64_t x)
{
	x += PRNG_GOLDEN_GAMMA;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The next number of the SplitMix64 stream in *state. */
static inline uint64_t prng_splitmix64(uint64_t *state)
{
	uint64_t z = prng_mix64(*state);
	*state += PRNG_GOLDEN_GAMMA;
	return z;
}

/* The next number of the xorshift64 stream in *state (never 0 if seeded non-zero). */
static inline uint64_t prng_xorshift64(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

#endif
