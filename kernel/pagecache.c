/*
 * pagecache: a page cache over a read-only disk (see pagecache.h for the
 * contract, docs/pagecache.md for the why), the `vm.cache=N` option and the
 * `cache` shell command.
 *
 * Storage, all on the heap, sized once at attach:
 *
 *   slot[n]    the clock's ring (struct replace_slot, kernel/replace.h);
 *              slot[s].page is the file page cached in slot s
 *   ent[n]     per slot: the frame holding the page, the software
 *              referenced bit, the next slot in the same hash bucket
 *   bucket[m]  file page -> first slot of its chain, m a power of two >= n
 *
 * n = min(pages in the file, frames the allocator manages): the cache can
 * never hold more than either, so n slots is all it could ever need, and a
 * miss allocates nothing but the frame itself. Growing by need would put a
 * heap allocation on the miss path, which runs exactly when memory is short.
 * The price is about 48 bytes per slot up front (1.2 % of the 4 KiB a slot
 * can describe): 6 MiB for a 512 MiB guest over a file at least that big.
 *
 * A page is read with one blk_read of 8 sectors into its frame (the last
 * page of a file that is not a whole number of pages is read short and
 * padded with zeros). A device whose block is bigger than 4 KiB refuses
 * such reads (-EINVAL from blk): no QEMU default does that.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pagecache.h"
#include "addr.h"
#include "cmdline.h"
#include "event.h"
#include "mm.h"
#include "panic.h"
#include "parse.h"
#include "replace.h"
#include "shell.h"
#include "drivers/virtio/blk.h"

CMDLINE_OPTION(vm_cache, "vm.cache", "use blk device N (read-only) as the page cache's file");

#define SECTORS_PER_PAGE (PAGE_SIZE / 512)

struct pc_entry {
	uint64_t pfn;    /* the frame holding the page */
	uint32_t hnext;  /* next slot in the bucket's chain, REPLACE_NONE at the end */
	bool ref;        /* set by a hit, cleared by the clock's hand */
};

static struct {
	bool attached;
	unsigned dev;
	uint64_t capacity;         /* the file, in 512-byte sectors */
	struct replace ring;
	struct replace_slot *slot;
	struct pc_entry *ent;
	uint32_t *bucket;
	unsigned bucket_bits;
	struct pagecache_stats st;
} pc = { .st = { .dev = -1 } };

/* ---------------------------------------------------------------- index */

static uint32_t *bucket_of(uint64_t page)
{
	return &pc.bucket[(page * 0x9e3779b97f4a7c15ULL) >> (64 - pc.bucket_bits)];
}

/* The slot caching `page`, or REPLACE_NONE. */
static uint32_t lookup(uint64_t page)
{
	uint32_t s = *bucket_of(page);
	while (s != REPLACE_NONE && pc.slot[s].page != page)
		s = pc.ent[s].hnext;
	return s;
}

static void unhash(uint32_t s)
{
	uint32_t *p = bucket_of(pc.slot[s].page);
	while (*p != s) {
		if (*p == REPLACE_NONE)
			panic("pagecache: slot %u (page %llu) is not in its hash chain", s,
			      (unsigned long long)pc.slot[s].page);
		p = &pc.ent[*p].hnext;
	}
	*p = pc.ent[s].hnext;
}

/* The clock reads R here. Never M: the file cannot be written, every page
 * is clean. No TLB to flush: the bit is ours, not the MMU's. */
static int pc_bits(void *ctx, uint32_t slot, uint64_t page, bool clear_r)
{
	(void)ctx;
	(void)page;
	bool r = pc.ent[slot].ref;
	if (clear_r)
		pc.ent[slot].ref = false;
	return r ? REPLACE_R : 0;
}

static const struct replace_ops pc_ops = { pc_bits, NULL };

/* Take the clock's victim out of the cache; its frame (still allocated,
 * now nobody's) in *pfn. -ENOENT when nothing is cached. */
static int evict_one(uint64_t *pfn)
{
	int64_t s = replace_victim(&pc.ring);
	if (s < 0)
		return (int)s;
	unhash((uint32_t)s);
	*pfn = pc.ent[s].pfn;
	int rc = replace_remove(&pc.ring, (uint32_t)s);
	if (rc < 0)
		panic("pagecache: replace_remove(%lld) failed (%d)", (long long)s, rc);
	pc.st.pages = pc.ring.n_used;
	return 0;
}

/* A frame for a miss: a free one if there is a free slot and a free frame
 * (without the OOM handler: the cache must not take memory by force),
 * else the frame of a cached page, which is dropped. -ENOMEM if neither. */
static int64_t take_frame(void)
{
	if (pc.ring.n_used < pc.ring.n_slots) {
		int64_t pfn = pfa_alloc_block_flags(&kernel_pfa, 0, PFA_NO_OOM);
		if (pfn >= 0)
			return pfn;
	}
	uint64_t pfn;
	if (evict_one(&pfn) < 0)
		return -ENOMEM;
	pc.st.reused++;
	return (int64_t)pfn;
}

static void give_frame(uint64_t pfn)
{
	int rc = pfa_free_block(&kernel_pfa, pfn, 0, __builtin_return_address(0));
	if (rc < 0)
		panic("pagecache: frame %#llx was not ours to free (%d)", (unsigned long long)pfn, rc);
}

/* ---------------------------------------------------------------- API */

int pagecache_attach(unsigned dev)
{
	if (pc.attached)
		return -EBUSY;
	int ro = blk_read_only(dev);
	if (ro < 0)
		return ro;
	uint64_t capacity = blk_capacity(dev);
	if (capacity == 0)
		return -ENODEV;
	if (!ro)
		return -EINVAL;
	uint64_t file_pages = (capacity + SECTORS_PER_PAGE - 1) / SECTORS_PER_PAGE;
	uint64_t n = file_pages < kernel_pfa.st.managed ? file_pages : kernel_pfa.st.managed;
	if (n >= REPLACE_NONE)
		n = REPLACE_NONE - 1;
	unsigned bits = 4;
	while ((1ULL << bits) < n)
		bits++;
	struct replace_slot *slot = calloc(n, sizeof(*slot));
	struct pc_entry *ent = calloc(n, sizeof(*ent));
	uint32_t *bucket = malloc(sizeof(*bucket) << bits);
	if (!slot || !ent || !bucket || replace_init(&pc.ring, REPLACE_CLOCK, &pc_ops, NULL, slot, (uint32_t)n) < 0) {
		free(slot);
		free(ent);
		free(bucket);
		return -ENOMEM;
	}
	memset(bucket, 0xff, sizeof(*bucket) << bits); /* every chain empty: REPLACE_NONE */
	pc.slot = slot;
	pc.ent = ent;
	pc.bucket = bucket;
	pc.bucket_bits = bits;
	pc.dev = dev;
	pc.capacity = capacity;
	memset(&pc.st, 0, sizeof(pc.st));
	pc.st.dev = (int)dev;
	pc.st.file_pages = file_pages;
	pc.st.slots = n;
	pc.attached = true;
	return 0;
}

int pagecache_read(uint64_t page, void *dst)
{
	if (!pc.attached)
		return -ENODEV;
	if (page >= pc.st.file_pages)
		return -ERANGE;
	uint32_t s = lookup(page);
	if (s != REPLACE_NONE) {
		pc.ent[s].ref = true;
		pc.st.hits++;
		memcpy(dst, phys_to_virt(pc.ent[s].pfn << PAGE_SHIFT), PAGE_SIZE);
		return 0;
	}
	pc.st.misses++;
	int64_t pfn = take_frame();
	if (pfn < 0) {
		pc.st.nomem++;
		return (int)pfn;
	}
	/* The frame is in no index while the disk fills it: a shrink meanwhile
	 * cannot see it, and on an error it simply goes back. */
	uint8_t *frame = phys_to_virt((uint64_t)pfn << PAGE_SHIFT);
	uint64_t sector = page * SECTORS_PER_PAGE;
	uint32_t n = pc.capacity - sector < SECTORS_PER_PAGE ? (uint32_t)(pc.capacity - sector) : SECTORS_PER_PAGE;
	memset(frame + (uint64_t)n * 512, 0, PAGE_SIZE - (uint64_t)n * 512);
	pc.st.read_ops++;
	int rc = blk_read(pc.dev, sector, frame, n);
	if (rc < 0) {
		pc.st.read_errors++;
		give_frame((uint64_t)pfn);
		return rc;
	}
	pc.st.read_bytes += (uint64_t)n * 512;
	/* A page comes in with R clear: read once (a scan) it is the first to
	 * go; read again, the hit gives it its second chance. */
	int64_t ns = replace_insert(&pc.ring, page);
	if (ns < 0)
		panic("pagecache_read: no free slot for page %llu after take_frame (%lld)",
		      (unsigned long long)page, (long long)ns);
	pc.ent[ns] = (struct pc_entry){ .pfn = (uint64_t)pfn, .hnext = *bucket_of(page), .ref = false };
	*bucket_of(page) = (uint32_t)ns;
	pc.st.pages = pc.ring.n_used;
	memcpy(dst, frame, PAGE_SIZE);
	return 0;
}

uint64_t pagecache_shrink(uint64_t want)
{
	uint64_t done = 0, pfn;
	while (pc.attached && done < want && evict_one(&pfn) == 0) {
		give_frame(pfn);
		done++;
	}
	pc.st.dropped += done;
	return done;
}

uint64_t pagecache_pages(void)
{
	return pc.attached ? pc.ring.n_used : 0;
}

void pagecache_get_stats(struct pagecache_stats *out)
{
	*out = pc.st;
}

/* ---------------------------------------------------------------- attach, boot */

/* Attach and say so: one line for people, a cache_attach event for tools. */
static int attach_and_report(uint64_t dev)
{
	int rc = dev < BLK_MAX_DEVS ? pagecache_attach((unsigned)dev) : -ENODEV;
	switch (rc) {
	case 0:
		printf("cache: blk%llu attached as the file: %llu pages, room for %llu\n",
		       (unsigned long long)dev, (unsigned long long)pc.st.file_pages, (unsigned long long)pc.st.slots);
		break;
	case -ENODEV:
		printf("cache: no usable blk device %llu (there are %d)\n", (unsigned long long)dev, blk_count());
		break;
	case -EBUSY:
		printf("cache: blk%u is attached already; one file at a time\n", pc.dev);
		break;
	case -EINVAL:
		printf("cache: blk%llu is writable; the cache needs a read-only disk (readonly=on on the -drive), "
		       "or its copies could go stale\n", (unsigned long long)dev);
		break;
	default:
		printf("cache: attaching blk%llu failed (%d): no memory for the index\n", (unsigned long long)dev, rc);
	}
	event_emit("cache_attach", "\"dev\":%llu,\"rc\":%d,\"file_pages\":%llu,\"slots\":%llu",
		   (unsigned long long)dev, rc, rc == 0 ? (unsigned long long)pc.st.file_pages : 0ULL,
		   rc == 0 ? (unsigned long long)pc.st.slots : 0ULL);
	return rc;
}

void pagecache_init(void)
{
	if (!cmdline_has("vm.cache"))
		return;
	uint64_t dev = cmdline_get_u64("vm.cache", UINT64_MAX); /* malformed: reported there */
	if (dev != UINT64_MAX)
		attach_and_report(dev);
}

/* ---------------------------------------------------------------- shell */

/* The ring is consistent (replace_check) and the hash table holds exactly
 * the ring's pages, each in its own bucket: 0, or -EFAULT with `why`. */
static int pagecache_check(char *why, size_t len)
{
	if (!pc.attached)
		return 0;
	int rc = replace_check(&pc.ring, why, len);
	if (rc < 0)
		return rc;
	uint64_t hashed = 0;
	for (uint64_t b = 0; b < 1ULL << pc.bucket_bits; b++)
		for (uint32_t s = pc.bucket[b]; s != REPLACE_NONE; s = pc.ent[s].hnext, hashed++)
			if (s >= pc.ring.n_slots || !pc.slot[s].used || bucket_of(pc.slot[s].page) != &pc.bucket[b] ||
			    hashed > pc.ring.n_used) {
				snprintf(why, len, "hash bucket %llu holds slot %u, which is not a cached page of it",
					 (unsigned long long)b, s);
				return -EFAULT;
			}
	if (hashed != pc.ring.n_used) {
		snprintf(why, len, "%llu pages hashed, %u in the ring", (unsigned long long)hashed, pc.ring.n_used);
		return -EFAULT;
	}
	return 0;
}

/* The counters and the check, for people and as a `cache` event; the check's result. */
static int print_stats(void)
{
	struct pagecache_stats *s = &pc.st;
	char why[160] = "ok", esc[320];
	int rc = pagecache_check(why, sizeof(why));
	if (rc < 0)
		printf("cache: check failed: %s\n", why);
	if (!pc.attached)
		printf("cache: no file attached (vm.cache=N or `cache attach N`)\n");
	else
		printf("cache: blk%d, %llu of %llu pages cached (room for %llu), hits %llu, misses %llu, "
		       "dropped %llu, reused %llu, read %llu bytes in %llu reads, read errors %llu, no memory %llu\n",
		       s->dev, (unsigned long long)s->pages, (unsigned long long)s->file_pages,
		       (unsigned long long)s->slots, (unsigned long long)s->hits, (unsigned long long)s->misses,
		       (unsigned long long)s->dropped, (unsigned long long)s->reused,
		       (unsigned long long)s->read_bytes, (unsigned long long)s->read_ops,
		       (unsigned long long)s->read_errors, (unsigned long long)s->nomem);
	event_emit("cache", "\"dev\":%d,\"file_pages\":%llu,\"slots\":%llu,\"pages\":%llu,\"hits\":%llu,"
		   "\"misses\":%llu,\"dropped\":%llu,\"reused\":%llu,\"read_ops\":%llu,\"read_bytes\":%llu,"
		   "\"read_errors\":%llu,\"nomem\":%llu,\"check\":\"%s\"",
		   s->dev, (unsigned long long)s->file_pages, (unsigned long long)s->slots,
		   (unsigned long long)s->pages, (unsigned long long)s->hits, (unsigned long long)s->misses,
		   (unsigned long long)s->dropped, (unsigned long long)s->reused,
		   (unsigned long long)s->read_ops, (unsigned long long)s->read_bytes,
		   (unsigned long long)s->read_errors, (unsigned long long)s->nomem,
		   event_json_escape(esc, sizeof(esc), why));
	return rc;
}

/* The page `cache read` copies into: in .bss, so the command needs no heap
 * and still runs when `alloc` has taken all memory. */
static uint64_t read_buf[PAGE_SIZE / 8];

/*
 * `cache read FIRST COUNT`: read pages [FIRST, FIRST + COUNT) through the
 * cache. The checksum is FNV-1a over the pages' 64-bit little-endian words
 * in order (h = (h ^ w) * 0x100000001b3, from 0xcbf29ce484222325), so the
 * host can compute it from the image. `misplaced` counts pages whose first
 * word is not their own page number: the layout of the test image
 * (tests/qemu/test_pagecache.py), meaningless for other files.
 */
static int cache_read_cmd(uint64_t first, uint64_t count)
{
	uint64_t h = 0xcbf29ce484222325ULL, done = 0, misplaced = 0;
	uint64_t hits = pc.st.hits, misses = pc.st.misses;
	int rc = 0;
	for (; done < count; done++) {
		rc = pagecache_read(first + done, read_buf);
		if (rc < 0)
			break;
		if (read_buf[0] != first + done)
			misplaced++;
		for (unsigned i = 0; i < PAGE_SIZE / 8; i++)
			h = (h ^ read_buf[i]) * 0x100000001b3ULL;
	}
	hits = pc.st.hits - hits;
	misses = pc.st.misses - misses;
	if (rc == -ERANGE)
		printf("cache read: page %llu is past the end of the file (%llu pages); stopped after %llu\n",
		       (unsigned long long)(first + done), (unsigned long long)pc.st.file_pages,
		       (unsigned long long)done);
	else if (rc == -ENOMEM)
		printf("cache read: page %llu: no free frame and nothing cached to reuse; stopped after %llu\n",
		       (unsigned long long)(first + done), (unsigned long long)done);
	else if (rc < 0)
		printf("cache read: page %llu: %s (%d); stopped after %llu\n", (unsigned long long)(first + done),
		       rc == -ENODEV ? "no file attached" : "the disk failed", rc, (unsigned long long)done);
	printf("cache read: %llu pages from %llu, checksum %#018llx, hits %llu, misses %llu, misplaced %llu\n",
	       (unsigned long long)done, (unsigned long long)first, (unsigned long long)h,
	       (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)misplaced);
	event_emit("cache_read", "\"first\":%llu,\"count\":%llu,\"done\":%llu,\"checksum\":\"%#018llx\","
		   "\"hits\":%llu,\"misses\":%llu,\"misplaced\":%llu,\"pages\":%llu,\"rc\":%d",
		   (unsigned long long)first, (unsigned long long)count, (unsigned long long)done,
		   (unsigned long long)h, (unsigned long long)hits, (unsigned long long)misses,
		   (unsigned long long)misplaced, (unsigned long long)pagecache_pages(), rc);
	return rc;
}

/* `cache` | `cache attach DEV` | `cache read FIRST COUNT` | `cache drop [N]`.
 * 0, -EINVAL (usage), or the call's error. */
static int cmd_cache(int argc, char **argv)
{
	uint64_t a = 0, b = 0;
	if (argc == 1) {
		int rc = print_stats();
		return rc < 0 ? rc : pc.attached ? 0 : -ENODEV;
	}
	if (strcmp(argv[1], "attach") == 0 && argc == 3 && parse_u64(argv[2], &a) == 0)
		return attach_and_report(a);
	if (strcmp(argv[1], "read") == 0 && argc == 4 && parse_u64(argv[2], &a) == 0 &&
	    parse_u64(argv[3], &b) == 0)
		return cache_read_cmd(a, b);
	if (strcmp(argv[1], "drop") == 0 && (argc == 2 || (argc == 3 && parse_u64(argv[2], &a) == 0))) {
		uint64_t want = argc == 2 ? pagecache_pages() : a; /* no N: all of them */
		uint64_t dropped = pagecache_shrink(want);
		printf("cache drop: %llu pages dropped, their frames freed without I/O; %llu still cached\n",
		       (unsigned long long)dropped, (unsigned long long)pagecache_pages());
		event_emit("cache_drop", "\"wanted\":%llu,\"dropped\":%llu,\"pages\":%llu",
			   (unsigned long long)want, (unsigned long long)dropped,
			   (unsigned long long)pagecache_pages());
		return 0;
	}
	printf("usage: cache | cache attach DEV | cache read FIRST COUNT | cache drop [N]\n");
	return -EINVAL;
}
SHELL_COMMAND(cache, "[attach DEV | read FIRST COUNT | drop [N]]",
	      "the page cache over a read-only disk: stats; read pages through it; drop pages", cmd_cache);
