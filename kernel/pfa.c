/*
 * pfa: a buddy page-frame allocator whose metadata never touches the frames
 * it manages (see pfa.h for the contract).
 *
 * Metadata, all in one caller-supplied buffer:
 *
 *   frame[]   one byte per frame, 0 .. pfn_limit-1
 *             +-------+---+-------+
 *             | order | R | state |   state: enum pfa_state (3 bits)
 *             +-------+---+-------+   R: reported (free blocks only)
 *              7    4   3  2    0     order: 0..14 on a block's first frame,
 *                                            15 (PFA_TAIL) on the others
 *
 *   for each order k, two free bitmaps (unreported, reported), one bit per
 *   aligned 2^k-frame block, set when a free block of exactly order k starts
 *   there; each bitmap has summary levels (bit j of level l+1 set iff word j
 *   of level l is non-zero), so the lowest free block of an order is found
 *   by walking down a handful of words.
 *
 * That is 1 byte + about 2 x 2 bits per frame: 0.03 % of RAM, where a
 * Linux struct page costs 1.6 %. Free lists threaded through the free frames
 * would be smaller still, but would write into frames the host took back.
 *
 * "Reported" means the host holds no memory for a free block: it was sent by
 * free page reporting, or came back from the balloon untouched. Ordinary
 * allocations prefer unreported blocks (no fault-in cost on the host); the
 * balloon prefers reported ones (the host's discard is then nearly free).
 * Two free buddies always merge; the merged block is reported only if both
 * halves were, so at worst a half is reported twice, never missed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "pfa.h"
#include "pfa_bits.h"

/* ---------------------------------------------------------------- setup */

/*
 * Lazy sections. The metadata is 1.55 bytes per frame: writing all of it at
 * boot costs ~1 ms per GiB under TCG (and makes the host back 400 MiB of a
 * 1 TiB guest's metadata before anything runs). So memory is cut into
 * sections of PFA_SECTION_FRAMES (64 MiB, one max-order block), and a whole
 * section nothing has looked inside yet is just one bit in lazy[]:
 *
 *   lazy, and on the unreported max-order list   one free 64 MiB block
 *   lazy, and not on it                          64 MiB reserved
 *
 * Its frame bytes, and the bitmap words that lie wholly inside it (order
 * k's level-l words when 6(l+1)+k <= 14), are garbage until the section is
 * written (own_section): the first time a call changes a frame in it. Only
 * a max-order block can lie in a lazy section, so that happens in two
 * places: where a max-order block leaves the free lists (list_remove) and
 * where a range added covers part of a section; every block below the max
 * order, and its buddy, lie in a written section. Reads of a frame a caller
 * names go through pfa_frame_byte, which answers for a lazy section without
 * looking. A bitmap word that spans sections is written at pfa_init, and
 * its bits for a lazy section stay clear, so sbitmap_first never walks down
 * into a lazy word. The last section may reach past pfn_limit; its frames
 * there stay reserved.
 */

/* Sections covering [0, pfn_limit); the last may reach past the end, and
 * its frames there stay reserved. */
static uint64_t sections_of(uint64_t pfn_limit)
{
	return (pfn_limit + PFA_SECTION_FRAMES - 1) >> PFA_MAX_ORDER;
}

/*
 * Where everything goes in the buffer (or, with a NULL `a`, how big it is):
 *
 *   written at init   the lazy bitmap, then every bitmap level whose words
 *                     span sections: together ~1 MiB at 1 TiB
 *   frame bytes       one per frame, a section's 16 KiB written with it
 *   word chunks       per section, its words of every level whose words lie
 *                     inside one section (order 0's leaf and first summary
 *                     level, ... order 8's leaf): 8 KiB, written with it
 *
 * The bitmaps describe whole sections (frames >> k bits for order k), so
 * each lazily written word belongs to exactly one chunk; such a level is
 * strided (sbitmap_word). Keeping a section's words together matters beyond
 * their size: QEMU backs guest RAM with 2 MiB host pages where it can, so
 * the first write to each 2 MiB of the buffer costs the host a 2 MiB clear.
 * With one array per level, writing one section touched 27 of them: 7-51 ms
 * of a 1 TiB guest's boot for the three sections it writes. Now two.
 */
static size_t layout(struct pfa *a, uint8_t *meta, uint64_t pfn_limit)
{
	uint64_t sections = sections_of(pfn_limit), frames = sections << PFA_MAX_ORDER;
	size_t eager = 2 * ((sections + 63) / 64), chunk = 0; /* words: lazy[], absent[], ... */
	for (unsigned k = 0; k <= PFA_MAX_ORDER; k++) {
		uint64_t words[SBITMAP_MAX_LEVELS];
		int levels;
		sbitmap_words(frames >> k, words, &levels);
		for (int l = 0; l < levels; l++) {
			if (pfa_lazy_words(k, l))
				chunk += 2 * pfa_lazy_words(k, l);
			else
				eager += 2 * words[l];
		}
	}
	if (a) {
		uint64_t *e = (uint64_t *)meta, *chunks = e + eager + frames / 8;
		size_t at = 0; /* word offset in a chunk */
		a->lazy = e;
		e += (sections + 63) / 64;
		a->absent = e;
		e += (sections + 63) / 64;
		for (unsigned k = 0; k <= PFA_MAX_ORDER; k++)
			for (int list = 0; list < 2; list++) {
				struct sbitmap *b = list ? &a->reported[k] : &a->unreported[k];
				sbitmap_words(frames >> k, b->words, &b->levels);
				for (int l = 0; l < b->levels; l++) {
					uint64_t per = pfa_lazy_words(k, l);
					b->stride[l] = per ? chunk : 0;
					b->shift[l] = per ? (unsigned)__builtin_ctzll(per) : 0;
					if (per) {
						b->level[l] = chunks + at;
						at += per;
					} else {
						b->level[l] = e;
						e += b->words[l];
					}
				}
			}
		a->frame = meta + 8 * eager;
		a->chunks = chunks;
		a->chunk_words = chunk;
		a->eager_bytes = 8 * eager;
	}
	return 8 * eager + frames + 8 * sections * chunk;
}

size_t pfa_metadata_size(uint64_t pfn_limit)
{
	return layout(NULL, NULL, pfn_limit);
}

uint64_t pfa_metadata_bytes(const struct pfa *a)
{
	return pfa_metadata_size(a->pfn_limit) -
	       a->st.absent_sections * (PFA_SECTION_FRAMES + 8 * a->chunk_words);
}

uint64_t pfa_metadata_millibytes_per_frame(const struct pfa *a)
{
	uint64_t frames = a->st.managed ? a->st.managed : 1;
	return pfa_metadata_bytes(a) * 1000 / frames;
}

int pfa_init(struct pfa *a, void *meta, size_t meta_size, uint64_t pfn_limit)
{
	if (pfn_limit == 0 || pfn_limit > (1ULL << 40) || meta_size < pfa_metadata_size(pfn_limit))
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->pfn_limit = pfn_limit;
	layout(a, meta, pfn_limit);
	memset(meta, 0, a->eager_bytes);
	/* Every section lazy and not on the free list: all reserved. */
	a->lazy_limit = sections_of(pfn_limit);
	a->st.lazy_sections = a->lazy_limit;
	memset(a->lazy, 0xff, 8 * (a->lazy_limit / 64));
	if (a->lazy_limit & 63)
		a->lazy[a->lazy_limit / 64] = (1ULL << (a->lazy_limit & 63)) - 1;
	return 0;
}

uint64_t pfa_set_absent(struct pfa *a, uint64_t pfn, uint64_t count)
{
	if (pfn >= a->pfn_limit || count > a->pfn_limit - pfn)
		return 0;
	uint64_t marked = 0;
	uint64_t s0 = (pfn + PFA_SECTION_FRAMES - 1) >> PFA_MAX_ORDER, s1 = (pfn + count) >> PFA_MAX_ORDER;
	for (uint64_t s = s0; s < s1; s++) {
		if (!pfa_section_lazy(a, s) || sbitmap_test(&a->unreported[PFA_MAX_ORDER], s) ||
		    pfa_section_absent(a, s))
			continue; /* written, free, or already so */
		a->absent[s >> 6] |= 1ULL << (s & 63);
		a->st.absent_sections++;
		marked++;
	}
	return marked;
}

/* Write section s's metadata as its lazy bit says it is, and clear the bit:
 * from here on its frame bytes and bitmap words are real. */
static void write_section(struct pfa *a, uint64_t s)
{
	uint8_t *f = &a->frame[s << PFA_MAX_ORDER];
	if (sbitmap_test(&a->unreported[PFA_MAX_ORDER], s)) {
		f[0] = pfa_bits_pack(PFA_FREE, 0, PFA_MAX_ORDER);
		memset(f + 1, pfa_bits_pack(PFA_FREE, 0, PFA_TAIL), PFA_SECTION_FRAMES - 1);
	} else {
		memset(f, 0, PFA_SECTION_FRAMES);
	}
	memset(a->chunks + s * a->chunk_words, 0, 8 * a->chunk_words); /* its bitmap words */
	if (a->section_hook)
		a->section_hook(a->section_hook_ctx, s << PFA_MAX_ORDER, PFA_SECTION_FRAMES);
	a->lazy[s >> 6] &= ~(1ULL << (s & 63));
	a->st.lazy_sections--;
}

/* Before changing anything of frame pfn's: its section written. */
static inline void own_section(struct pfa *a, uint64_t pfn)
{
	if (pfa_section_lazy(a, pfn >> PFA_MAX_ORDER))
		write_section(a, pfn >> PFA_MAX_ORDER);
}

void pfa_set_reserve_floor(struct pfa *a, uint64_t frames)
{
	a->reserve_floor = frames;
}

void pfa_set_reclaim_handler(struct pfa *a, pfa_oom_fn fn, void *ctx)
{
	a->reclaim = fn;
	a->reclaim_ctx = ctx;
}

void pfa_set_oom_handler(struct pfa *a, pfa_oom_fn fn, void *ctx)
{
	a->oom = fn;
	a->oom_ctx = ctx;
}

uint64_t pfa_ask_oom(struct pfa *a, uint64_t frames)
{
	if (!a->oom)
		return 0;
	a->st.oom_calls++;
	uint64_t freed = a->oom(a->oom_ctx, frames);
	a->st.oom_freed += freed;
	return freed;
}

/* ---------------------------------------------------------------- blocks */

static struct sbitmap *list_of(struct pfa *a, unsigned order, bool reported)
{
	return reported ? &a->reported[order] : &a->unreported[order];
}

/* Mark [pfn, pfn + 2^order) as one block in `state`. */
static void mark_block(struct pfa *a, uint64_t pfn, unsigned order, unsigned state, bool reported)
{
	uint64_t n = 1ULL << order;
	uint8_t *f = pfa_frame_ptr(a, pfn); /* a block lies inside one section */
	f[0] = pfa_bits_pack(state, reported, order);
	if (n > 1)
		memset(f + 1, pfa_bits_pack(state, 0, PFA_TAIL), n - 1);
}

static void list_add(struct pfa *a, uint64_t pfn, unsigned order, bool reported)
{
	*pfa_frame_ptr(a, pfn) = pfa_bits_pack(PFA_FREE, reported, order);
	sbitmap_set(list_of(a, order, reported), pfn >> order);
	a->st.free_blocks[order]++;
	a->st.free += 1ULL << order;
	if (reported)
		a->st.reported += 1ULL << order;
}

static void list_remove(struct pfa *a, uint64_t pfn, unsigned order)
{
	if (order == PFA_MAX_ORDER)
		own_section(a, pfn); /* it may be a lazy section's one block */
	bool reported = pfa_bits_reported(*pfa_frame_ptr(a, pfn));
	sbitmap_clear(list_of(a, order, reported), pfn >> order);
	a->st.free_blocks[order]--;
	a->st.free -= 1ULL << order;
	if (reported)
		a->st.reported -= 1ULL << order;
}

/* For a buddy below the max order: in the same section as its block. */
static bool is_free_head(const struct pfa *a, uint64_t pfn, unsigned order)
{
	uint8_t b = *pfa_frame_ptr(a, pfn);
	return pfa_bits_state(b) == PFA_FREE && pfa_bits_order(b) == order;
}

/* Put a block whose frames are already marked free on the lists, merging
 * with its buddy as far as it goes. */
static void insert_free(struct pfa *a, uint64_t pfn, unsigned order, bool reported)
{
	while (order < PFA_MAX_ORDER) {
		uint64_t buddy = pfn ^ (1ULL << order);
		if (buddy + (1ULL << order) > a->pfn_limit || !is_free_head(a, buddy, order))
			break;
		reported = reported && pfa_bits_reported(*pfa_frame_ptr(a, buddy));
		list_remove(a, buddy, order);
		*pfa_frame_ptr(a, pfn > buddy ? pfn : buddy) = pfa_bits_pack(PFA_FREE, 0, PFA_TAIL);
		pfn &= ~(1ULL << order);
		order++;
	}
	list_add(a, pfn, order, reported);
	if (!reported && order >= PFA_HUGE_ORDER && a->free_hook)
		a->free_hook(a->free_hook_ctx);
}

void pfa_set_release_hook(struct pfa *a, void (*fn)(void *ctx, uint64_t pfn, unsigned order), void *ctx)
{
	a->release_hook = fn;
	a->release_hook_ctx = ctx;
}

void pfa_set_section_hook(struct pfa *a, void (*fn)(void *ctx, uint64_t pfn, uint64_t frames), void *ctx)
{
	a->section_hook = fn;
	a->section_hook_ctx = ctx;
}

void pfa_set_free_hook(struct pfa *a, void (*fn)(void *ctx), void *ctx)
{
	a->free_hook = fn;
	a->free_hook_ctx = ctx;
}

/* The lowest free block of exactly `order`, from the preferred list first. */
static int64_t find_block(struct pfa *a, unsigned order, bool prefer_reported)
{
	int64_t i = sbitmap_first(list_of(a, order, prefer_reported));
	if (i < 0)
		i = sbitmap_first(list_of(a, order, !prefer_reported));
	return i < 0 ? -1 : (int64_t)((uint64_t)i << order);
}

/* Take the free block at pfn (of order `have`) off the lists, give back the
 * halves it does not need, and mark the first 2^want frames `state`. */
static void take_block(struct pfa *a, uint64_t pfn, unsigned have, unsigned want, unsigned state)
{
	bool reported = pfa_bits_reported(pfa_frame_byte(a, pfn));
	list_remove(a, pfn, have);
	while (have > want) {
		have--;
		list_add(a, pfn + (1ULL << have), have, reported);
	}
	mark_block(a, pfn, want, state, false);
}

/* Find and take a block of `order` from the lowest order that has one, up
 * to `top` (splitting as needed), marked `state`; -1 if none. Ordinary
 * allocations prefer unreported blocks, the balloon reported ones. */
static int64_t take_first(struct pfa *a, unsigned order, unsigned top, bool prefer_reported,
			  unsigned state)
{
	for (unsigned o = order; o <= top; o++) {
		int64_t pfn = find_block(a, o, prefer_reported);
		if (pfn >= 0) {
			take_block(a, (uint64_t)pfn, o, order, state);
			return pfn;
		}
	}
	return -1;
}

static int64_t alloc_from_lists(struct pfa *a, unsigned order, unsigned state)
{
	return take_first(a, order, PFA_MAX_ORDER, false, state);
}

static int bad_call(const char *fn, const char *what, uint64_t pfn, unsigned order, const void *caller)
{
	printf("pfa: %s: %s: pfn %#llx (address %#llx) order %u, caller %p\n", fn, what,
	       (unsigned long long)pfn, (unsigned long long)(pfn << 12), order, caller);
	return -EFAULT;
}

/* Check that [pfn, 2^order) is exactly one block in `state`; else report. */
static int check_block(const struct pfa *a, const char *fn, uint64_t pfn, unsigned order,
		       unsigned state, const void *caller)
{
	static const char *const names[] = { "reserved (not the allocator's to give)", "already free",
					     "allocated", "ballooned", "being reported",
					     "a free huge-pool page", "a huge-pool page" };
	if (order > PFA_MAX_ORDER)
		return bad_call(fn, "order too large", pfn, order, caller);
	if (pfn >= a->pfn_limit || (1ULL << order) > a->pfn_limit - pfn)
		return bad_call(fn, "frame not managed by this allocator", pfn, order, caller);
	if (pfn & ((1ULL << order) - 1))
		return bad_call(fn, "frame not aligned to its order", pfn, order, caller);
	uint8_t b = pfa_frame_byte(a, pfn);
	if (pfa_bits_state(b) != state) {
		char what[96];
		snprintf(what, sizeof(what), "frame is %s", names[pfa_bits_state(b) < 7 ? pfa_bits_state(b) : 0]);
		return bad_call(fn, what, pfn, order, caller);
	}
	if (pfa_bits_order(b) != order) {
		char what[96];
		if (pfa_bits_order(b) == PFA_TAIL)
			snprintf(what, sizeof(what), "frame is inside a block, not its first frame");
		else
			snprintf(what, sizeof(what), "block has order %u", pfa_bits_order(b));
		return bad_call(fn, what, pfn, order, caller);
	}
	return 0;
}

/* ---------------------------------------------------------------- API */

/* The first frame of [i, end) that is not reserved, or end. At boot this
 * runs over every frame of RAM, so a lazy section is answered at once and
 * the others eight state fields a read while they are all zero. */
static uint64_t first_unreserved(const struct pfa *a, uint64_t i, uint64_t end)
{
	_Static_assert(PFA_RESERVED == 0, "a reserved frame's state field is zero");
	typedef uint64_t __attribute__((may_alias, aligned(1))) frame_word; /* eight frame bytes */
	while (i < end) {
		uint64_t s = i >> PFA_MAX_ORDER, stop = (s + 1) << PFA_MAX_ORDER;
		if (stop > end)
			stop = end;
		if (pfa_section_lazy(a, s)) {
			if (sbitmap_test(&a->unreported[PFA_MAX_ORDER], s))
				return i;
			i = stop;
			continue;
		}
		for (; stop - i >= 8; i += 8)
			if (*(const frame_word *)pfa_frame_ptr(a, i) & 0x0707070707070707ULL) /* each byte's state */
				break;
		for (; i < stop; i++)
			if (pfa_bits_state(*pfa_frame_ptr(a, i)) != PFA_RESERVED)
				return i;
	}
	return end;
}

/* A lazy section becomes wholly free (one unreported max-order block) or
 * wholly reserved without being written; the counters follow. */
static void lazy_section_set_free(struct pfa *a, uint64_t s, bool free)
{
	if (free) {
		sbitmap_set(&a->unreported[PFA_MAX_ORDER], s);
		a->st.free_blocks[PFA_MAX_ORDER]++;
		a->st.free += PFA_SECTION_FRAMES;
		a->st.managed += PFA_SECTION_FRAMES;
	} else {
		sbitmap_clear(&a->unreported[PFA_MAX_ORDER], s);
		a->st.free_blocks[PFA_MAX_ORDER]--;
		a->st.free -= PFA_SECTION_FRAMES;
		a->st.managed -= PFA_SECTION_FRAMES;
		a->st.reserved += PFA_SECTION_FRAMES;
	}
}

int pfa_add_free_range(struct pfa *a, uint64_t pfn, uint64_t count)
{
	if (pfn >= a->pfn_limit || count > a->pfn_limit - pfn)
		return -EINVAL;
	for (uint64_t sec = pfn >> PFA_MAX_ORDER; count && sec <= (pfn + count - 1) >> PFA_MAX_ORDER; sec++)
		if (pfa_section_absent(a, sec)) {
			bad_call("pfa_add_free_range", "frame in a section said to hold no memory",
				 sec << PFA_MAX_ORDER > pfn ? sec << PFA_MAX_ORDER : pfn, 0, NULL);
			return -EINVAL;
		}
	uint64_t bad = first_unreserved(a, pfn, pfn + count);
	if (bad < pfn + count)
		return bad_call("pfa_add_free_range", "frame already managed", bad, 0, NULL);
	bool lazy_freed = false;
	while (count) {
		uint64_t s = pfn >> PFA_MAX_ORDER;
		if (!(pfn & (PFA_SECTION_FRAMES - 1)) && count >= PFA_SECTION_FRAMES && pfa_section_lazy(a, s)) {
			lazy_section_set_free(a, s, true);
			lazy_freed = true;
			pfn += PFA_SECTION_FRAMES;
			count -= PFA_SECTION_FRAMES;
			continue;
		}
		unsigned order = 0;
		while (order < PFA_MAX_ORDER && !(pfn & (1ULL << order)) && (2ULL << order) <= count)
			order++;
		a->st.managed += 1ULL << order;
		own_section(a, pfn);
		mark_block(a, pfn, order, PFA_FREE, false);
		insert_free(a, pfn, order, false);
		pfn += 1ULL << order;
		count -= 1ULL << order;
	}
	/* What insert_free does for a block it made: tell reporting. */
	if (lazy_freed && a->free_hook)
		a->free_hook(a->free_hook_ctx);
	return 0;
}

/* The free block containing frame `pfn`: its first frame, and its order. */
static int64_t free_head_of(const struct pfa *a, uint64_t pfn, unsigned *order)
{
	for (unsigned k = 0; k <= PFA_MAX_ORDER; k++) {
		uint64_t head = pfn & ~((1ULL << k) - 1);
		uint8_t b = pfa_frame_byte(a, head);
		if (pfa_bits_state(b) == PFA_FREE && pfa_bits_order(b) != PFA_TAIL) {
			if (pfa_bits_order(b) < k)
				return -1;
			*order = pfa_bits_order(b);
			return (int64_t)head;
		}
	}
	return -1;
}

int pfa_reserve_range(struct pfa *a, uint64_t pfn, uint64_t count)
{
	if (pfn >= a->pfn_limit)
		return 0;
	if (count > a->pfn_limit - pfn)
		count = a->pfn_limit - pfn;
	uint64_t end = pfn + count;
	for (uint64_t i = pfn; i < end;) {
		if (pfa_section_lazy(a, i >> PFA_MAX_ORDER)) {
			i = ((i >> PFA_MAX_ORDER) + 1) << PFA_MAX_ORDER; /* free or reserved: both fine */
			continue;
		}
		unsigned s = pfa_bits_state(*pfa_frame_ptr(a, i));
		if (s != PFA_RESERVED && s != PFA_FREE)
			return bad_call("pfa_reserve_range", "frame is in use", i, 0, NULL);
		i++;
	}
	for (uint64_t i = pfn; i < end; i++) {
		uint64_t sec = i >> PFA_MAX_ORDER;
		if (!(i & (PFA_SECTION_FRAMES - 1)) && end - i >= PFA_SECTION_FRAMES && pfa_section_lazy(a, sec)) {
			if (sbitmap_test(&a->unreported[PFA_MAX_ORDER], sec))
				lazy_section_set_free(a, sec, false);
			i += PFA_SECTION_FRAMES - 1;
			continue;
		}
		if (pfa_bits_state(pfa_frame_byte(a, i)) == PFA_RESERVED)
			continue;
		unsigned order;
		int64_t head = free_head_of(a, i, &order);
		if (head < 0)
			return bad_call("pfa_reserve_range", "free frame outside any free block", i, 0, NULL);
		/* Pull the whole block, then give back what lies outside the range. */
		uint64_t h = (uint64_t)head, hend = h + (1ULL << order);
		list_remove(a, h, order);
		memset(pfa_frame_ptr(a, h), pfa_bits_pack(PFA_RESERVED, 0, 0), hend - h);
		uint64_t taken = (hend < end ? hend : end) - i;
		a->st.managed -= hend - h;
		a->st.reserved += taken;
		if (h < i)
			pfa_add_free_range(a, h, i - h);
		if (hend > end)
			pfa_add_free_range(a, end, hend - end);
		i += taken - 1;
	}
	return 0;
}

int64_t pfa_alloc_block(struct pfa *a, unsigned order)
{
	return pfa_alloc_block_flags(a, order, 0);
}

int64_t pfa_alloc_block_flags(struct pfa *a, unsigned order, unsigned flags)
{
	if (order > PFA_MAX_ORDER)
		return -EINVAL;
	for (int attempt = 0;; attempt++) {
		int64_t pfn = alloc_from_lists(a, order, PFA_USED);
		if (pfn >= 0) {
			a->st.allocs++;
			a->st.used += 1ULL << order;
			return pfn;
		}
		/* Bounded: a handler that frees something useless cannot loop us. */
		if ((flags & PFA_NO_OOM) || attempt == 3)
			break;
		/* The guest's own reclaim first (clean cache, cold pages to
		 * swap); the OOM handler (the balloon's deflate) when that
		 * found nothing, or twice did not help. */
		uint64_t freed = 0;
		if (a->reclaim && attempt < 2) {
			a->st.reclaim_calls++;
			freed = a->reclaim(a->reclaim_ctx, 1ULL << order);
			a->st.reclaim_freed += freed;
		}
		if (freed == 0)
			freed = pfa_ask_oom(a, 1ULL << order);
		if (freed == 0)
			break;
	}
	a->st.alloc_failures++;
	return -ENOMEM;
}

/* Give a block in state `from` back to the free lists: check the call (see
 * check_block; `fn` names the API function), run the release hook, mark its
 * frames free and insert it, merging. `host_released`: the host holds nothing
 * for it (the balloon's deflate), so it goes in reported unless the release
 * hook just touched it. The caller keeps its own counters. */
static int release_block(struct pfa *a, const char *fn, uint64_t pfn, unsigned order, unsigned from,
			 bool host_released, const void *caller)
{
	int rc = check_block(a, fn, pfn, order, from, caller);
	if (rc < 0)
		return rc;
	if (a->release_hook)
		a->release_hook(a->release_hook_ctx, pfn, order);
	mark_block(a, pfn, order, PFA_FREE, false);
	insert_free(a, pfn, order, host_released && a->release_hook == NULL);
	return 0;
}

int pfa_free_block(struct pfa *a, uint64_t pfn, unsigned order, const void *caller)
{
	int rc = release_block(a, "pfa_free_block", pfn, order, PFA_USED, false, caller);
	if (rc < 0)
		return rc;
	a->st.frees++;
	a->st.used -= 1ULL << order;
	return 0;
}

/* A block of exactly `order` for the balloon, reported first; -1 if none. */
static int64_t balloon_find(struct pfa *a, unsigned order, bool split_allowed)
{
	return take_first(a, order, split_allowed ? PFA_MAX_ORDER : order, true, PFA_BALLOONED);
}

uint64_t pfa_balloon_take(struct pfa *a, uint64_t frames, struct pfa_run *out, size_t max_out,
			  size_t *n_out)
{
	uint64_t taken = 0;
	size_t n = 0;
	while (taken < frames && n < max_out) {
		uint64_t room = a->st.free > a->reserve_floor ? a->st.free - a->reserve_floor : 0;
		uint64_t limit = frames - taken < room ? frames - taken : room;
		if (limit == 0)
			break;
		int64_t pfn = -1;
		unsigned order = 0;
		if (limit >= (1ULL << PFA_HUGE_ORDER)) {
			order = PFA_HUGE_ORDER;
			pfn = balloon_find(a, order, true);
		}
		if (pfn < 0) {
			/* No 2 MiB block (or less than 2 MiB wanted): the largest
			 * smaller block that fits, and split only as a last resort. */
			unsigned fit = 63 - __builtin_clzll(limit);
			if (fit >= PFA_HUGE_ORDER)
				fit = PFA_HUGE_ORDER - 1;
			for (int o = (int)fit; o >= 0 && pfn < 0; o--) {
				order = (unsigned)o;
				pfn = balloon_find(a, order, false);
			}
			if (pfn < 0) {
				order = fit;
				pfn = balloon_find(a, order, true);
			}
		}
		if (pfn < 0)
			break;
		out[n].pfn = (uint64_t)pfn;
		out[n].order = order;
		n++;
		taken += 1ULL << order;
		a->st.ballooned += 1ULL << order;
	}
	*n_out = n;
	return taken;
}

/* Released by the host: it holds nothing for these frames until they are
 * touched (unless the release hook poisons them). Never seen by the host
 * (cancel): still backed, so still worth reporting. */
static int balloon_back(struct pfa *a, const char *fn, uint64_t pfn, unsigned order, bool host_released,
			const void *caller)
{
	int rc = release_block(a, fn, pfn, order, PFA_BALLOONED, host_released, caller);
	if (rc < 0)
		return rc;
	a->st.ballooned -= 1ULL << order;
	return 0;
}

int pfa_balloon_return(struct pfa *a, uint64_t pfn, unsigned order, const void *caller)
{
	return balloon_back(a, "pfa_balloon_return", pfn, order, true, caller);
}

int pfa_balloon_cancel(struct pfa *a, uint64_t pfn, unsigned order, const void *caller)
{
	return balloon_back(a, "pfa_balloon_cancel", pfn, order, false, caller);
}

int pfa_balloon_split(struct pfa *a, uint64_t pfn, unsigned order)
{
	int rc = check_block(a, "pfa_balloon_split", pfn, order, PFA_BALLOONED, NULL);
	if (rc < 0)
		return rc;
	if (order == 0)
		return bad_call("pfa_balloon_split", "a single frame cannot be split", pfn, order, NULL);
	*pfa_frame_ptr(a, pfn) = pfa_bits_pack(PFA_BALLOONED, 0, order - 1);
	*pfa_frame_ptr(a, pfn + (1ULL << (order - 1))) = pfa_bits_pack(PFA_BALLOONED, 0, order - 1);
	return 0;
}

size_t pfa_report_take(struct pfa *a, unsigned min_order, struct pfa_run *out, size_t max_out)
{
	size_t n = 0;
	for (int o = PFA_MAX_ORDER; o >= (int)min_order && n < max_out; o--) {
		int64_t i;
		while (n < max_out && (i = sbitmap_first(&a->unreported[o])) >= 0) {
			uint64_t pfn = (uint64_t)i << o;
			list_remove(a, pfn, (unsigned)o);
			mark_block(a, pfn, (unsigned)o, PFA_ISOLATED, false);
			a->st.isolated += 1ULL << o;
			out[n].pfn = pfn;
			out[n].order = (unsigned)o;
			n++;
		}
	}
	return n;
}

int pfa_report_done(struct pfa *a, uint64_t pfn, unsigned order, bool reported)
{
	int rc = check_block(a, "pfa_report_done", pfn, order, PFA_ISOLATED, NULL);
	if (rc < 0)
		return rc;
	a->st.isolated -= 1ULL << order;
	mark_block(a, pfn, order, PFA_FREE, false);
	insert_free(a, pfn, order, reported);
	return 0;
}

uint64_t pfa_pool_init(struct pfa *a, uint64_t pages)
{
	while (a->st.pool_total < pages && a->st.pool_total < PFA_POOL_MAX) {
		int64_t pfn = alloc_from_lists(a, PFA_HUGE_ORDER, PFA_POOL_FREE);
		if (pfn < 0)
			break;
		a->pool[a->st.pool_total++] = (uint64_t)pfn;
		a->st.pool_free++;
	}
	return a->st.pool_total;
}

int64_t pfa_pool_alloc(struct pfa *a)
{
	for (uint64_t i = 0; i < a->st.pool_total; i++)
		if (pfa_bits_state(pfa_frame_byte(a, a->pool[i])) == PFA_POOL_FREE) {
			mark_block(a, a->pool[i], PFA_HUGE_ORDER, PFA_POOL_USED, false);
			a->st.pool_free--;
			a->st.huge_allocs++; /* as hugetlbfs counts: pool pages only */
			return (int64_t)a->pool[i];
		}
	a->st.huge_failures++;
	return -ENOMEM;
}

int pfa_pool_free(struct pfa *a, uint64_t pfn, const void *caller)
{
	int rc = check_block(a, "pfa_pool_free", pfn, PFA_HUGE_ORDER, PFA_POOL_USED, caller);
	if (rc < 0)
		return rc;
	mark_block(a, pfn, PFA_HUGE_ORDER, PFA_POOL_FREE, false);
	a->st.pool_free++;
	return 0;
}

enum pfa_state pfa_frame_state(const struct pfa *a, uint64_t pfn)
{
	return pfn < a->pfn_limit ? (enum pfa_state)pfa_bits_state(pfa_frame_byte(a, pfn)) : PFA_RESERVED;
}

bool pfa_frame_reported(const struct pfa *a, uint64_t pfn)
{
	unsigned order;
	if (pfa_frame_state(a, pfn) != PFA_FREE)
		return false;
	int64_t head = free_head_of(a, pfn, &order);
	return head >= 0 && pfa_bits_reported(pfa_frame_byte(a, head));
}

uint64_t pfa_fragmentation_permille(const struct pfa *a)
{
	uint64_t big = 0;
	for (unsigned o = PFA_HUGE_ORDER; o <= PFA_MAX_ORDER; o++)
		big += a->st.free_blocks[o] << o;
	return a->st.free ? (a->st.free - big) * 1000 / a->st.free : 0;
}
