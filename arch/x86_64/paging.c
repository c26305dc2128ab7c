/*
 * paging: four-level page tables for the direct map (see paging.h).
 *
 * Only one address space exists, so there is one PML4, and every helper
 * walks from it. Entries use the identity mapping for table frames too:
 * a table's physical address is the pointer to it.
 */
#include <errno.h>
#include <string.h>
#include "paging.h"
#include "cpu.h"
#include "kernel/addr.h"
#include "kernel/bootmem.h"
#include "kernel/panic.h"

#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_AD (PTE_A | PTE_D) /* set by the CPU: not part of what we asked for */
#define PTE_ADDR 0x000ffffffffff000ULL
#define GIB (1ULL << 30)

static uint64_t *pml4;
static paging_frame_fn frame_provider;
static paging_frame_free_fn frame_release;
static uint64_t table_frames, tables_collapsed, reserve_uses;

/*
 * Frames kept for page tables that must be had when the allocator has none:
 * re-mapping part of a 2 MiB block the balloon gave back (a deflate on the
 * OOM path, when the guest has taken every free frame) needs one new table,
 * and failing there would leave frames nobody may touch. One deflate batch
 * splits at most one 2 MiB block (balloon_core.c start_deflate), so a few
 * suffice; the reserve is refilled before each range change.
 */
#define TABLE_RESERVE 4
static uint64_t reserve[TABLE_RESERVE];
static unsigned n_reserve;

void paging_set_frame_provider(paging_frame_fn fn, paging_frame_free_fn release)
{
	frame_provider = fn;
	frame_release = release;
}

uint64_t paging_table_frames(void)
{
	return table_frames;
}

void paging_table_stats(struct paging_table_stats *st)
{
	st->tables = table_frames;
	st->reserve = n_reserve;
	st->reserve_uses = reserve_uses;
	st->collapsed = tables_collapsed;
}

/* A frame for a table, not yet cleared: the caller writes all of it. */
static uint64_t *new_table_unset(void)
{
	uint64_t pa = frame_provider ? frame_provider() : 0;
	if (!pa && n_reserve) {
		pa = reserve[--n_reserve];
		reserve_uses++;
	}
	if (!pa)
		return NULL;
	table_frames++;
	return phys_to_virt(pa);
}

static uint64_t *new_table(void)
{
	uint64_t *t = new_table_unset();
	return t ? memset(t, 0, PAGE_SIZE) : NULL;
}

/* A table no longer in use: back to the reserve first, then to its owner. */
static void drop_table(uint64_t pa)
{
	table_frames--;
	if (n_reserve < TABLE_RESERVE)
		reserve[n_reserve++] = pa;
	else if (frame_release)
		frame_release(pa);
	/* else: a boot-time frame, and boot memory is never reused */
}

/* Top the reserve up from the allocator (not at boot: no release yet). */
static void refill_reserve(void)
{
	while (n_reserve < TABLE_RESERVE && frame_release) {
		uint64_t pa = frame_provider ? frame_provider() : 0;
		if (!pa)
			break;
		reserve[n_reserve++] = pa;
	}
}

/* The entry slot for `va` at `level` (3 = PML4 ... 0 = PT), creating tables
 * on the way down; NULL if a frame for a table could not be had. Stops early
 * (returns the large-page entry) if it meets a 2 MiB mapping above level 0
 * and `split` is false. */
static uint64_t *walk(uint64_t va, int level, int split)
{
	uint64_t *table = pml4;
	for (int l = 3; l > level; l--) {
		uint64_t *e = &table[(va >> (12 + 9 * l)) & 511];
		if ((*e & PTE_P) && (*e & PTE_PS)) {
			if (!split)
				return e;
			/* Replace one 2 MiB page by 512 4 KiB ones with the same flags. */
			uint64_t *pt = new_table();
			if (!pt)
				return NULL;
			uint64_t base = *e & PTE_ADDR & ~(HUGE_PAGE_SIZE - 1);
			uint64_t flags = (*e & 0xfff & ~PTE_PS);
			for (int i = 0; i < 512; i++)
				pt[i] = (base + i * PAGE_SIZE) | flags;
			*e = virt_to_phys(pt) | PTE_P | PTE_W;
			invlpg(va & ~(HUGE_PAGE_SIZE - 1));
		} else if (!(*e & PTE_P)) {
			uint64_t *t = new_table();
			if (!t)
				return NULL;
			*e = virt_to_phys(t) | PTE_P | PTE_W;
		}
		table = phys_to_virt(*e & PTE_ADDR);
	}
	return &table[(va >> (12 + 9 * level)) & 511];
}

/* The 2 MiB block at `base` is split into 4 KiB entries that all point at
 * themselves with `flags`: put the one 2 MiB entry back and let the table
 * go, so deflated memory is mapped as it was before the balloon took it. */
static void try_collapse(uint64_t base, uint64_t flags)
{
	uint64_t *e = walk(base, 1, 0);
	if (!e || !(*e & PTE_P) || (*e & PTE_PS))
		return;
	uint64_t *pt = phys_to_virt(*e & PTE_ADDR);
	for (int i = 0; i < 512; i++)
		if ((pt[i] & ~PTE_AD) != ((base + i * PAGE_SIZE) | flags))
			return;
	uint64_t table = *e & PTE_ADDR;
	*e = base | flags | PTE_PS;
	/* Every 4 KiB translation of the block and the cached pointer to the
	 * table must go before the table's frame can be reused. */
	write_cr3(read_cr3());
	tables_collapsed++;
	drop_table(table);
}

/* Point [pa, pa+size) at itself with `flags` (0: unmap it), as 2 MiB
 * entries where aligned and not already split into 4 KiB ones. A 2 MiB
 * entry already in the wanted state is left alone (no split, no table);
 * a block whose 4 KiB entries end up all mapped becomes one entry again.
 * On -ENOMEM, the block that needed a table is unchanged; blocks before it
 * in the range have been changed. */
static int map_identity(uint64_t pa, uint64_t size, uint64_t flags)
{
	uint64_t end = pa + size;
	pa &= ~(PAGE_SIZE - 1);
	while (pa < end) {
		uint64_t *e;
		if ((pa & (HUGE_PAGE_SIZE - 1)) == 0 && end - pa >= HUGE_PAGE_SIZE) {
			e = walk(pa, 1, 0);
			if (!e)
				return -ENOMEM;
			if (!(*e & PTE_P) || (*e & PTE_PS)) {
				*e = flags ? pa | flags | PTE_PS : 0;
				invlpg(pa);
				pa += HUGE_PAGE_SIZE;
				continue;
			}
			/* Already split into 4 KiB pages: set them one by one. */
		}
		e = walk(pa, 1, 0);
		if (e && !(*e & PTE_P) && !flags) {
			pa = (pa & ~(HUGE_PAGE_SIZE - 1)) + HUGE_PAGE_SIZE; /* already unmapped */
			continue;
		}
		if (e && (*e & PTE_PS) && (*e & 0xfff & ~(PTE_PS | PTE_AD)) == flags) {
			pa = (pa & ~(HUGE_PAGE_SIZE - 1)) + HUGE_PAGE_SIZE; /* already so, as 2 MiB */
			continue;
		}
		e = walk(pa, 0, 1);
		if (!e)
			return -ENOMEM;
		*e = flags ? pa | flags : 0;
		invlpg(pa);
		pa += PAGE_SIZE;
		if (flags && ((pa & (HUGE_PAGE_SIZE - 1)) == 0 || pa >= end))
			try_collapse((pa - 1) & ~(HUGE_PAGE_SIZE - 1), flags);
	}
	return 0;
}

/*
 * The direct map of [lo, hi) (2 MiB aligned) as 2 MiB entries, at boot,
 * before the tables are loaded: one directory per GiB, written whole in a
 * loop, with no walk per entry and no invlpg. map_identity would do the
 * same one entry at a time: ~0.2 ms per GiB under TCG, 200 ms of a 1 TiB
 * guest's boot; this is a few microseconds per GiB.
 */
static int map_boot_ram(uint64_t lo, uint64_t hi)
{
	for (uint64_t g = lo & ~(GIB - 1); g < hi; g += GIB) {
		uint64_t *e = walk(g, 2, 0); /* the PDPT entry for this GiB */
		if (!e)
			return -ENOMEM;
		uint64_t *pd;
		if (*e & PTE_P) {
			pd = phys_to_virt(*e & PTE_ADDR); /* shared with a range before */
		} else {
			pd = new_table_unset();
			if (!pd)
				return -ENOMEM;
			for (int i = 0; i < 512; i++)
				pd[i] = 0;
			*e = virt_to_phys(pd) | PTE_P | PTE_W;
		}
		uint64_t from = g > lo ? g : lo, to = g + GIB < hi ? g + GIB : hi;
		for (uint64_t pa = from; pa < to; pa += HUGE_PAGE_SIZE)
			pd[(pa >> 21) & 511] = pa | PTE_P | PTE_W | PTE_PS;
	}
	return 0;
}

/*
 * RAM above 4 GiB, mapped when it is first used. A 1 TiB guest's direct map
 * is 1024 directories of 512 entries: writing them at boot cost ~5 ms of
 * its boot under TCG, for memory nothing touches until the allocator hands
 * it out. The allocator says when it first writes a section (pfa's section
 * hook, kernel/mm.c), and paging_ram_used maps the GiB around it then. It
 * must not fail and must not allocate (it runs inside an allocator call),
 * so what it needs is set aside at boot: the PDPT tables, and one directory
 * frame per GiB with RAM, taken from boot memory but not written until used.
 */
#define LAZY_RANGES 16
static struct { uint64_t lo, hi; } lazy_ram[LAZY_RANGES]; /* 2 MiB aligned */
static unsigned n_lazy_ram;
static uint64_t *gib_mapped; /* a bit per GiB below gib_limit: its RAM is mapped */
static uint64_t gib_limit;
static uint64_t *pd_pool;    /* directory frames set aside, not yet written */
static uint64_t pd_pool_left;

static bool gib_has_lazy_ram(uint64_t g)
{
	for (unsigned i = 0; i < n_lazy_ram; i++)
		if (lazy_ram[i].lo < (g + 1) * GIB && lazy_ram[i].hi > g * GIB)
			return true;
	return false;
}

static void map_gib(uint64_t g)
{
	uint64_t *e = walk(g * GIB, 2, 0); /* its PDPT table exists since boot */
	if (!e)
		panic("paging: no PDPT entry for GiB %lu, set up at boot", (unsigned long)g);
	uint64_t *pd;
	if (*e & PTE_P) {
		pd = phys_to_virt(*e & PTE_ADDR); /* made since, for device memory here */
	} else {
		if (!pd_pool_left)
			panic("paging: no directory set aside for GiB %lu", (unsigned long)g);
		pd = pd_pool;
		pd_pool += 512;
		pd_pool_left--;
		table_frames++;
		for (int i = 0; i < 512; i++)
			pd[i] = 0;
		*e = virt_to_phys(pd) | PTE_P | PTE_W;
	}
	for (unsigned i = 0; i < n_lazy_ram; i++) {
		uint64_t lo = lazy_ram[i].lo > g * GIB ? lazy_ram[i].lo : g * GIB;
		uint64_t hi = lazy_ram[i].hi < (g + 1) * GIB ? lazy_ram[i].hi : (g + 1) * GIB;
		for (uint64_t pa = lo; pa < hi; pa += HUGE_PAGE_SIZE)
			if (!pd[(pa >> 21) & 511])
				pd[(pa >> 21) & 511] = pa | PTE_P | PTE_W | PTE_PS;
	}
	gib_mapped[g / 64] |= 1ULL << (g % 64);
}

void paging_ram_used(uint64_t pa, uint64_t size)
{
	for (uint64_t g = pa / GIB; g * GIB < pa + size && g < gib_limit; g++)
		if (!(gib_mapped[g / 64] & (1ULL << (g % 64))) && gib_has_lazy_ram(g))
			map_gib(g);
}

/* Boot: record the RAM above 4 GiB, and set aside what mapping it takes. */
static int defer_high_ram(const struct boot_info *bi)
{
	for (uint32_t i = 0; i < bi->memmap_count; i++) {
		const struct boot_mem_range *r = &bi->memmap[i];
		if (r->base + r->size <= 4 * GIB)
			continue;
		uint64_t lo = (r->base < 4 * GIB ? 4 * GIB : r->base) & ~(HUGE_PAGE_SIZE - 1);
		uint64_t hi = (r->base + r->size + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1);
		if (hi > PAGING_PHYS_LIMIT)
			return -EINVAL;
		if (r->type != BOOT_MEM_USABLE || n_lazy_ram == LAZY_RANGES) {
			int rc = map_boot_ram(lo, hi); /* firmware's, or a map too ragged to keep */
			if (rc < 0)
				return rc;
			continue;
		}
		lazy_ram[n_lazy_ram].lo = lo;
		lazy_ram[n_lazy_ram].hi = hi;
		n_lazy_ram++;
		if (hi / GIB + 1 > gib_limit)
			gib_limit = hi / GIB + 1;
	}
	if (!n_lazy_ram)
		return 0;
	uint64_t gibs = 0;
	for (uint64_t g = 4; g < gib_limit; g++) {
		if (!gib_has_lazy_ram(g))
			continue;
		gibs++;
		if (!walk(g * GIB, 2, 0)) /* the PDPT table over it, now */
			return -ENOMEM;
	}
	uint64_t words = (gib_limit + 63) / 64;
	uint64_t bits = bootmem_alloc(words * 8), pool = bootmem_alloc(gibs * PAGE_SIZE);
	if (!bits || !pool)
		return -ENOMEM;
	gib_mapped = memset(phys_to_virt(bits), 0, words * 8);
	pd_pool = phys_to_virt(pool);
	pd_pool_left = gibs;
	return 0;
}

int paging_init(const struct boot_info *bi)
{
	pml4 = new_table();
	if (!pml4)
		return -ENOMEM;
	/* The low 4 GiB whole: RAM, firmware, and the chipset's MMIO. */
	int rc = map_boot_ram(0, 4 * GIB);
	if (rc == 0)
		rc = defer_high_ram(bi);
	if (rc == 0) {
		/* Page 0 stays unmapped so NULL dereferences fault. */
		uint64_t *e = walk(0, 0, 1);
		if (!e)
			return -ENOMEM;
		*e = 0;
	}
	if (rc == 0)
		write_cr3(virt_to_phys(pml4));
	return rc;
}

int paging_map_mmio(uint64_t pa, uint64_t size)
{
	/* Past the limit, walk() would index the tables with the wrong bits and
	 * overwrite the mapping of some other, low, address. */
	if (size == 0 || pa >= PAGING_PHYS_LIMIT || size > PAGING_PHYS_LIMIT - pa)
		return -EINVAL;
	uint64_t start = pa & ~(PAGE_SIZE - 1);
	return map_identity(start, pa + size - start, PTE_P | PTE_W | PTE_PCD | PTE_PWT);
}

static int set_range(uint64_t pa, uint64_t size, int present)
{
	if ((pa | size) & (PAGE_SIZE - 1))
		return -EINVAL;
	refill_reserve();
	return map_identity(pa, size, present ? PTE_P | PTE_W : 0);
}

int paging_unmap_range(uint64_t pa, uint64_t size)
{
	return set_range(pa, size, 0);
}

int paging_map_range(uint64_t pa, uint64_t size)
{
	return set_range(pa, size, 1);
}

int paging_map_page(uint64_t va, uint64_t pa)
{
	if ((va | pa) & (PAGE_SIZE - 1))
		return -EINVAL;
	uint64_t *e = walk(va, 0, 1);
	if (!e)
		return -ENOMEM;
	*e = pa | PTE_P | PTE_W;
	invlpg(va);
	return 0;
}

uint64_t paging_unmap_page(uint64_t va)
{
	if (!paging_is_mapped(va))
		return 0;
	uint64_t *e = walk(va, 0, 1);
	if (!e)
		return 0;
	uint64_t pa = *e & PTE_ADDR;
	*e = 0;
	invlpg(va);
	return pa;
}

int paging_page_bits(uint64_t va, bool clear_accessed)
{
	uint64_t *table = pml4;
	for (int l = 3; l > 0; l--) {
		uint64_t e = table[(va >> (12 + 9 * l)) & 511];
		if (!(e & PTE_P) || (e & PTE_PS))
			return -ENOENT; /* not a 4 KiB page of its own */
		table = phys_to_virt(e & PTE_ADDR);
	}
	uint64_t *e = &table[(va >> 12) & 511];
	if (!(*e & PTE_P))
		return -ENOENT;
	int bits = ((*e & PTE_A) ? PAGING_ACCESSED : 0) | ((*e & PTE_D) ? PAGING_DIRTY : 0);
	if (clear_accessed && (*e & PTE_A)) {
		/* The TLB may hold the translation with A set, and a CPU does not
		 * set A again for a translation it has cached: without the INVLPG
		 * the page would look unused from now on while it is hot. */
		*e &= ~PTE_A;
		invlpg(va);
	}
	return bits;
}

int paging_is_mapped(uint64_t va)
{
	uint64_t *table = pml4;
	for (int l = 3; l >= 0; l--) {
		uint64_t e = table[(va >> (12 + 9 * l)) & 511];
		if (!(e & PTE_P))
			return 0;
		if (l == 0 || (e & PTE_PS))
			return 1;
		table = phys_to_virt(e & PTE_ADDR);
	}
	return 0;
}
