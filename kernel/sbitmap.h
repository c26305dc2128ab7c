/*
 * sbitmap: a bitmap with summary levels, so the lowest set bit is found in
 * O(levels) however large it is.
 *
 *   level 2:  1 bit per level-1 word            (set iff that word != 0)
 *   level 1:  1 bit per level-0 word            (set iff that word != 0)
 *   level 0:  1 bit per item
 *
 * Six levels name 64^6 items. The words live in memory the user carves out
 * of its own metadata (sbitmap_carve): nothing here allocates, so the page-
 * frame allocator (its free blocks per order) and the swap-slot allocator
 * (free slots, whole free clusters) share it, in the kernel and on the host.
 */
#ifndef BLIMP_SBITMAP_H
#define BLIMP_SBITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "check.h"

#define SBITMAP_MAX_LEVELS 6

struct sbitmap {
	uint64_t *level[SBITMAP_MAX_LEVELS]; /* level[0]: one bit per item */
	uint64_t words[SBITMAP_MAX_LEVELS];
	int levels;
	/* A level is one array, or (stride != 0) runs of 2^shift words every
	 * `stride` words: the page-frame allocator keeps each 64 MiB section's
	 * words next to its frame bytes (pfa.c). */
	uint64_t stride[SBITMAP_MAX_LEVELS];
	unsigned shift[SBITMAP_MAX_LEVELS];
};

/* Word w of level l. */
static inline uint64_t *sbitmap_word(const struct sbitmap *b, int l, uint64_t w)
{
	if (!b->stride[l])
		return &b->level[l][w];
	return &b->level[l][(w >> b->shift[l]) * b->stride[l] + (w & ((1ULL << b->shift[l]) - 1))];
}

/* Words per level for `nbits` items (into words[]); returns the total. */
static inline size_t sbitmap_words(uint64_t nbits, uint64_t words[SBITMAP_MAX_LEVELS], int *levels)
{
	size_t total = 0;
	int l = 0;
	do {
		nbits = (nbits + 63) / 64; /* words at this level = bits of the next */
		words[l] = nbits;
		total += nbits;
		l++;
	} while (nbits > 1 && l < SBITMAP_MAX_LEVELS);
	*levels = l;
	return total;
}

/* Lay a bitmap of `nbits` items over zeroed words at p; returns the first
 * word after it. */
static inline uint64_t *sbitmap_carve(struct sbitmap *b, uint64_t nbits, uint64_t *p)
{
	sbitmap_words(nbits, b->words, &b->levels);
	for (int l = 0; l < b->levels; l++) {
		b->level[l] = p;
		b->stride[l] = 0;
		p += b->words[l];
	}
	return p;
}

static inline uint64_t sbitmap_bit(uint64_t i)
{
	return 1ULL << (i & 63);
}

static inline bool sbitmap_test(const struct sbitmap *b, uint64_t i)
{
	return *sbitmap_word(b, 0, i >> 6) & sbitmap_bit(i);
}

static inline void sbitmap_set(struct sbitmap *b, uint64_t i)
{
	for (int l = 0; l < b->levels; l++, i >>= 6) {
		uint64_t *w = sbitmap_word(b, l, i >> 6), was = *w;
		*w = was | sbitmap_bit(i);
		if (was)
			break; /* the levels above already know this word is non-zero */
	}
}

static inline void sbitmap_clear(struct sbitmap *b, uint64_t i)
{
	for (int l = 0; l < b->levels; l++, i >>= 6) {
		uint64_t *w = sbitmap_word(b, l, i >> 6), now = *w & ~sbitmap_bit(i);
		*w = now;
		if (now)
			break;
	}
}

/* Lowest set bit, or -1. */
static inline int64_t sbitmap_first(const struct sbitmap *b)
{
	int top = b->levels - 1;
	uint64_t idx = UINT64_MAX;
	for (uint64_t w = 0; w < b->words[top]; w++)
		if (*sbitmap_word(b, top, w)) {
			idx = w;
			break;
		}
	if (idx == UINT64_MAX)
		return -1;
	for (int l = top; l >= 0; l--)
		idx = idx * 64 + (uint64_t)__builtin_ctzll(*sbitmap_word(b, l, idx));
	return (int64_t)idx;
}

/* Summary levels say exactly which words below are non-zero, and no bit is
 * set past the `nbits` items. Words `absent` names (if not NULL) were never
 * written: they are not read, and count as zero. 0, or -EFAULT with `why`
 * naming `name`. */
static inline int sbitmap_check_except(const struct sbitmap *b, uint64_t nbits, const char *name, char *why,
				       size_t len, bool (*absent)(const void *ctx, int level, uint64_t word),
				       const void *ctx)
{
	for (int l = 0; l < b->levels; l++) {
		uint64_t bits = l == 0 ? nbits : b->words[l - 1];
		uint64_t last = *sbitmap_word(b, l, b->words[l] - 1);
		if ((bits & 63) && (!absent || !absent(ctx, l, b->words[l] - 1)) && (last >> (bits & 63)))
			return check_fail(why, len, "%s bitmap level %d: bits set past the end (bit %llu on, "
					  "word %#llx)", name, l, (unsigned long long)bits,
					  (unsigned long long)last);
		if (l == 0)
			continue;
		for (uint64_t w = 0; w < b->words[l - 1]; w++) {
			if (absent && absent(ctx, l, w >> 6))
				continue;
			bool below_zero = (absent && absent(ctx, l - 1, w)) || (*sbitmap_word(b, l - 1, w)) == 0;
			bool summary = (*sbitmap_word(b, l, w >> 6)) & sbitmap_bit(w);
			if (summary == below_zero)
				return check_fail(why, len, "%s bitmap level %d bit %llu is %d but word %llu "
						  "below is %s%#llx", name, l, (unsigned long long)w, summary,
						  (unsigned long long)w, below_zero && (*sbitmap_word(b, l - 1, w)) ? "unwritten, " : "",
						  (unsigned long long)(below_zero ? 0 : (*sbitmap_word(b, l - 1, w))));
		}
	}
	return 0;
}

static inline int sbitmap_check(const struct sbitmap *b, uint64_t nbits, const char *name, char *why,
				size_t len)
{
	return sbitmap_check_except(b, nbits, name, why, len, NULL, NULL);
}

#endif
