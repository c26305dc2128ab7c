/*
 * pfa_check: the allocator's invariant checker (see pfa_check in pfa.h).
 *
 * Walks every frame once and every bitmap word once, recomputing what the
 * counters and bitmaps should say, and stops at the first disagreement with
 * a message naming the frame, the order and both values. A lazy section
 * (pfa.c) is checked as what it stands for, one free max-order block or
 * 64 MiB reserved, and its unwritten words are not read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "pfa.h"
#include "check.h"
#include "pfa_bits.h"


struct lazy_words {
	const struct pfa *a;
	unsigned order;
};

static bool word_unwritten(const void *ctx, int level, uint64_t w)
{
	const struct lazy_words *lw = ctx;
	return pfa_word_lazy(lw->a, lw->order, level, w);
}

/* Set bits (free blocks) of one order's bitmap, after its summary levels
 * are checked; words of lazy sections count as zero. */
static int check_bitmap(const struct pfa *a, const struct sbitmap *b, uint64_t nbits, unsigned order,
			const char *name, uint64_t *bits, char *why, size_t len)
{
	char what[48];
	snprintf(what, sizeof(what), "%s order %u", name, order);
	*bits = 0;
	for (uint64_t w = 0; w < b->words[0]; w++)
		if (!pfa_word_lazy(a, order, 0, w))
			*bits += (uint64_t)__builtin_popcountll(*sbitmap_word(b, 0, w));
	struct lazy_words lw = { a, order };
	return sbitmap_check_except(b, nbits, what, why, len, word_unwritten, &lw);
}

int pfa_check(const struct pfa *a, char *why, size_t len)
{
	uint64_t count[8] = { 0 }, blocks[PFA_MAX_ORDER + 1] = { 0 }, reported = 0, lazy = 0, absent = 0;

	for (uint64_t pfn = 0; pfn < a->pfn_limit;) {
		uint64_t sec = pfn >> PFA_MAX_ORDER;
		if (!pfa_section_lazy(a, sec) && pfa_section_absent(a, sec))
			return check_fail(why, len, "section %#llx holds no memory but was written",
				    (unsigned long long)sec);
		if (pfa_section_lazy(a, sec)) {
			/* Blocks never straddle a section, so pfn is its first frame. */
			bool free = sbitmap_test(&a->unreported[PFA_MAX_ORDER], sec);
			if (sbitmap_test(&a->reported[PFA_MAX_ORDER], sec))
				return check_fail(why, len, "lazy section %#llx (frame %#llx) is on the reported "
					    "list", (unsigned long long)sec, (unsigned long long)pfn);
			uint64_t n = a->pfn_limit - pfn < PFA_SECTION_FRAMES ? a->pfn_limit - pfn : PFA_SECTION_FRAMES;
			if (free && n < PFA_SECTION_FRAMES)
				return check_fail(why, len, "lazy section %#llx is free but reaches past the end "
					    "(frame %#llx)", (unsigned long long)sec, (unsigned long long)a->pfn_limit);
			if (free && pfa_section_absent(a, sec))
				return check_fail(why, len, "section %#llx holds no memory but is free",
					    (unsigned long long)sec);
			absent += pfa_section_absent(a, sec);
			count[free ? PFA_FREE : PFA_RESERVED] += n;
			blocks[PFA_MAX_ORDER] += free;
			lazy++;
			pfn += n;
			continue;
		}
		uint8_t b = *pfa_frame_ptr(a, pfn);
		unsigned state = pfa_bits_state(b), order = pfa_bits_order(b);
		if (order == PFA_TAIL)
			return check_fail(why, len, "frame %#llx is a block's inner frame with no block "
				    "around it (state %u)", (unsigned long long)pfn, state);
		if (order > PFA_MAX_ORDER || state > PFA_POOL_USED)
			return check_fail(why, len, "frame %#llx has order %u, state %u",
				    (unsigned long long)pfn, order, state);
		uint64_t n = 1ULL << order;
		if ((pfn & (n - 1)) || n > a->pfn_limit - pfn)
			return check_fail(why, len, "block %#llx of order %u is misaligned or past the end",
				    (unsigned long long)pfn, order);
		for (uint64_t i = 1; i < n; i++)
			if (pfa_frame_ptr(a, pfn)[i] != pfa_bits_pack(state, 0, PFA_TAIL))
				return check_fail(why, len, "frame %#llx inside block %#llx (order %u, state %u) "
					    "has byte %#x", (unsigned long long)(pfn + i),
					    (unsigned long long)pfn, order, state, pfa_frame_ptr(a, pfn)[i]);
		if (state == PFA_FREE) {
			bool rep = pfa_bits_reported(b);
			const struct sbitmap *own = rep ? &a->reported[order] : &a->unreported[order];
			const struct sbitmap *other = rep ? &a->unreported[order] : &a->reported[order];
			if (!sbitmap_test(own, pfn >> order) || sbitmap_test(other, pfn >> order))
				return check_fail(why, len, "free block %#llx of order %u (reported %d) is not on "
					    "exactly its own list", (unsigned long long)pfn, order, rep);
			uint64_t buddy = pfn ^ n;
			if (order < PFA_MAX_ORDER && buddy + n <= a->pfn_limit &&
			    pfa_bits_state(pfa_frame_byte(a, buddy)) == PFA_FREE &&
			    pfa_bits_order(pfa_frame_byte(a, buddy)) == order)
				return check_fail(why, len, "free buddies %#llx and %#llx of order %u are not merged",
					    (unsigned long long)pfn, (unsigned long long)buddy, order);
			blocks[order]++;
			if (rep)
				reported += n;
		} else if (pfa_bits_reported(b)) {
			return check_fail(why, len, "block %#llx is not free but marked reported",
				    (unsigned long long)pfn);
		}
		count[state] += n;
		pfn += n;
	}

	/* The bitmaps describe whole sections: frames >> k bits for order k. */
	uint64_t frames = a->lazy_limit * PFA_SECTION_FRAMES;
	for (unsigned k = 0; k <= PFA_MAX_ORDER; k++) {
		uint64_t unrep_bits, rep_bits;
		int rc = check_bitmap(a, &a->unreported[k], frames >> k, k, "unreported", &unrep_bits,
				      why, len);
		if (rc == 0)
			rc = check_bitmap(a, &a->reported[k], frames >> k, k, "reported", &rep_bits,
					  why, len);
		if (rc < 0)
			return rc;
		if (unrep_bits + rep_bits != blocks[k] || blocks[k] != a->st.free_blocks[k])
			return check_fail(why, len, "order %u: %llu bits set, %llu free blocks seen, "
				    "counter says %llu", k, (unsigned long long)(unrep_bits + rep_bits),
				    (unsigned long long)blocks[k], (unsigned long long)a->st.free_blocks[k]);
	}

	const struct { const char *name; uint64_t seen, counted; } totals[] = {
		{ "free", count[PFA_FREE], a->st.free },
		{ "used", count[PFA_USED], a->st.used },
		{ "ballooned", count[PFA_BALLOONED], a->st.ballooned },
		{ "isolated", count[PFA_ISOLATED], a->st.isolated },
		{ "reported", reported, a->st.reported },
		{ "pool", count[PFA_POOL_FREE] + count[PFA_POOL_USED], a->st.pool_total << PFA_HUGE_ORDER },
		{ "pool free", count[PFA_POOL_FREE], a->st.pool_free << PFA_HUGE_ORDER },
		{ "managed", a->pfn_limit - count[PFA_RESERVED], a->st.managed },
		{ "lazy sections", lazy, a->st.lazy_sections },
		{ "absent sections", absent, a->st.absent_sections },
	};
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
		if (totals[i].seen != totals[i].counted)
			return check_fail(why, len, "%s frames: %llu seen, counter says %llu", totals[i].name,
				    (unsigned long long)totals[i].seen, (unsigned long long)totals[i].counted);
	return 0;
}
