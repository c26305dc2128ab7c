/*
 * kframe: the kernel's single frames, grouped in 2 MiB chunks (see kframe.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "kframe.h"

#define CHUNK_FRAMES (1u << PFA_HUGE_ORDER)

void kframe_init(struct kframes *k, struct pfa *pfa)
{
	memset(k, 0, sizeof(*k));
	k->pfa = pfa;
}

/* Take one more 2 MiB block whole, if one is free; false if not. */
static bool take_chunk(struct kframes *k)
{
	if (k->n_chunks == KFRAME_CHUNKS)
		return false;
	int64_t pfn = pfa_alloc_block_flags(k->pfa, PFA_HUGE_ORDER, PFA_NO_OOM);
	if (pfn < 0)
		return false;
	struct kframe_chunk *c = &k->chunk[k->n_chunks++];
	memset(c, 0, sizeof(*c));
	c->pfn = (uint64_t)pfn;
	k->free_in_chunks += CHUNK_FRAMES;
	k->chunks_taken++;
	return true;
}

static struct kframe_chunk *chunk_of(const struct kframes *k, uint64_t pfn)
{
	for (unsigned i = 0; i < k->n_chunks; i++)
		if (pfn - k->chunk[i].pfn < CHUNK_FRAMES)
			return (struct kframe_chunk *)&k->chunk[i];
	return NULL;
}

bool kframe_in_chunk(const struct kframes *k, uint64_t pfn)
{
	return chunk_of(k, pfn) != NULL;
}

int64_t kframe_alloc(struct kframes *k, unsigned pfa_flags)
{
	if (!k->pfa)
		return -ENOMEM; /* before mm_init (an early boot error's printf) */
	/* Keep frames ready before they run out: when the next one is needed
	 * the guest may have no whole free block left (the OOM path). */
	if (k->free_in_chunks <= KFRAME_LOW && !k->ungrouped)
		take_chunk(k);
	/* The fullest chunk first, so the emptier ones can drain and go back. */
	struct kframe_chunk *best = NULL;
	for (unsigned i = 0; i < k->n_chunks; i++) {
		struct kframe_chunk *c = &k->chunk[i];
		if (c->n_used < CHUNK_FRAMES && (!best || c->n_used > best->n_used))
			best = c;
	}
	if (best) {
		for (unsigned w = 0; w < KFRAME_WORDS; w++)
			if (~best->used[w]) {
				unsigned bit = (unsigned)__builtin_ctzll(~best->used[w]);
				best->used[w] |= 1ULL << bit;
				best->n_used++;
				k->free_in_chunks--;
				return (int64_t)(best->pfn + w * 64 + bit);
			}
	}
	int64_t pfn = pfa_alloc_block_flags(k->pfa, 0, pfa_flags);
	if (pfn >= 0) {
		k->strays++;
		k->stray_allocs++;
	}
	return pfn;
}

int kframe_free(struct kframes *k, uint64_t pfn)
{
	struct kframe_chunk *c = chunk_of(k, pfn);
	if (!c) {
		int rc = pfa_free_block(k->pfa, pfn, 0, __builtin_return_address(0));
		if (rc == 0)
			k->strays--;
		return rc;
	}
	uint64_t i = pfn - c->pfn;
	if (!(c->used[i / 64] & (1ULL << (i % 64)))) {
		printf("kframe_free: frame %#lx of the chunk at %#lx was not handed out\n", (unsigned long)pfn,
		       (unsigned long)c->pfn);
		return -EFAULT;
	}
	c->used[i / 64] &= ~(1ULL << (i % 64));
	c->n_used--;
	k->free_in_chunks++;
	/* An empty chunk goes back whole, if enough is ready without it. */
	if (c->n_used == 0 && k->free_in_chunks - CHUNK_FRAMES > KFRAME_LOW) {
		uint64_t start = c->pfn;
		*c = k->chunk[--k->n_chunks];
		k->free_in_chunks -= CHUNK_FRAMES;
		k->chunks_returned++;
		return pfa_free_block(k->pfa, start, PFA_HUGE_ORDER, __builtin_return_address(0));
	}
	return 0;
}

#define FAIL(...) do { snprintf(why, why_len, __VA_ARGS__); return -EFAULT; } while (0)

int kframe_check(const struct kframes *k, char *why, size_t why_len)
{
	uint64_t free = 0;
	for (unsigned i = 0; i < k->n_chunks; i++) {
		const struct kframe_chunk *c = &k->chunk[i];
		unsigned used = 0;
		for (unsigned w = 0; w < KFRAME_WORDS; w++)
			used += (unsigned)__builtin_popcountll(c->used[w]);
		if (used != c->n_used)
			FAIL("kframe chunk %#lx: %u frames marked, %u counted", (unsigned long)c->pfn, used, c->n_used);
		if (c->pfn & (CHUNK_FRAMES - 1))
			FAIL("kframe chunk %#lx is not 2 MiB aligned", (unsigned long)c->pfn);
		for (uint64_t f = c->pfn; f < c->pfn + CHUNK_FRAMES; f++)
			if (pfa_frame_state(k->pfa, f) != PFA_USED)
				FAIL("kframe chunk %#lx: frame %#lx is in state %d, not used", (unsigned long)c->pfn,
				     (unsigned long)f, (int)pfa_frame_state(k->pfa, f));
		for (unsigned j = 0; j < i; j++)
			if (k->chunk[j].pfn == c->pfn)
				FAIL("kframe chunk %#lx listed twice", (unsigned long)c->pfn);
		free += CHUNK_FRAMES - used;
	}
	if (free != k->free_in_chunks)
		FAIL("kframe: %lu frames free in chunks, counted %lu", (unsigned long)free,
		     (unsigned long)k->free_in_chunks);
	return 0;
}
