/*
 * memmap: normalize a firmware memory map (see memmap.h).
 *
 * The method is a sweep over boundaries: every range start and end is a
 * boundary; between two neighbouring boundaries the type is the most
 * restrictive type of all ranges covering that stretch. Maps here have at most
 * a few hundred entries, so a quadratic sweep is simpler than anything clever
 * and fast enough. No libc: the UEFI loader links this file too.
 */
#include "memmap.h"

/* Higher rank wins an overlap: usable < acpi-reclaim < nvs < unusable < reserved. */
static int type_rank(uint32_t type)
{
	switch (type) {
	case BOOT_MEM_USABLE: return 1;
	case BOOT_MEM_ACPI_RECLAIM: return 2;
	case BOOT_MEM_ACPI_NVS: return 3;
	case BOOT_MEM_UNUSABLE: return 4;
	default: return 5; /* reserved and anything unknown */
	}
}

static uint64_t range_end(const struct boot_mem_range *x)
{
	uint64_t end = x->base + x->size;
	return end < x->base ? UINT64_MAX : end; /* saturate a range that wraps */
}

/* The smallest boundary strictly above `pos`, or UINT64_MAX if none. */
static uint64_t next_boundary(const struct boot_mem_range *r, uint32_t n, uint64_t pos)
{
	uint64_t best = UINT64_MAX;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t b = r[i].base, e = range_end(&r[i]);
		if (b > pos && b < best)
			best = b;
		if (e > pos && e < best)
			best = e;
	}
	return best;
}

/* Type covering [pos, pos+1), 0 if none. */
static uint32_t type_at(const struct boot_mem_range *r, uint32_t n, uint64_t pos)
{
	uint32_t type = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (r[i].size == 0 || pos < r[i].base || pos >= range_end(&r[i]))
			continue;
		if (type == 0 || type_rank(r[i].type) > type_rank(type))
			type = r[i].type;
	}
	return type;
}

int memmap_normalize(struct boot_mem_range *r, uint32_t *count, uint32_t max)
{
	uint32_t n = *count;
	/* Work on a copy: the sweep reads the input while the output grows. */
	static struct boot_mem_range in[BOOT_MEMMAP_MAX * 2];
	uint32_t m = 0;

	if (n > BOOT_MEMMAP_MAX * 2)
		n = BOOT_MEMMAP_MAX * 2;
	for (uint32_t i = 0; i < n; i++)
		if (r[i].size != 0)
			in[m++] = r[i];

	uint32_t out = 0;
	int overflow = 0;
	uint64_t lowest = UINT64_MAX;
	for (uint32_t i = 0; i < m; i++)
		if (in[i].base < lowest)
			lowest = in[i].base;

	for (uint64_t pos = lowest; m != 0 && pos != UINT64_MAX;) {
		uint64_t next = next_boundary(in, m, pos);
		uint32_t type = type_at(in, m, pos);
		if (type != 0) {
			if (out > 0 && r[out - 1].type == type &&
			    r[out - 1].base + r[out - 1].size == pos) {
				r[out - 1].size += next - pos;
			} else if (out < max) {
				r[out].base = pos;
				r[out].size = next - pos;
				r[out].type = type;
				r[out].reserved = 0;
				out++;
			} else {
				overflow = 1;
				break;
			}
		}
		pos = next;
	}
	*count = out;
	return overflow ? -1 : 0;
}

uint64_t memmap_total(const struct boot_mem_range *r, uint32_t count, uint32_t type)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < count; i++)
		if (r[i].type == type)
			total += r[i].size;
	return total;
}

const char *memmap_type_name(uint32_t type)
{
	switch (type) {
	case BOOT_MEM_USABLE: return "usable";
	case BOOT_MEM_RESERVED: return "reserved";
	case BOOT_MEM_ACPI_RECLAIM: return "acpi-reclaim";
	case BOOT_MEM_ACPI_NVS: return "acpi-nvs";
	case BOOT_MEM_UNUSABLE: return "unusable";
	default: return "unknown";
	}
}
