/*
 * mptable: see mptable.h. Every offset read is checked against the length
 * the caller gives.
 */
#include <errno.h>
#include <string.h>
#include "mptable.h"
#include "le.h"

static int sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

long mp_find_floating(const uint8_t *area, size_t len)
{
	for (size_t off = 0; off + MP_FLOATING_LEN <= len; off += 16)
		if (memcmp(area + off, "_MP_", 4) == 0 && area[off + 8] == 1 &&
		    sum8(area + off, MP_FLOATING_LEN) == 0)
			return (long)off;
	return -1;
}

uint32_t mp_config_address(const uint8_t *fp)
{
	return le32(fp + 4);
}

static int refuse(const char **why, const char *what)
{
	*why = what;
	return -EINVAL;
}

int mp_parse_config(const uint8_t *t, size_t len, struct mp_ioapic *out, int max, const char **why)
{
	if (len < MP_CONFIG_HEADER_LEN || memcmp(t, "PCMP", 4) != 0)
		return refuse(why, "no PCMP signature");
	size_t base_len = (size_t)le_read(t + 4, 2);
	if (base_len < MP_CONFIG_HEADER_LEN || base_len > len)
		return refuse(why, "base table length shorter than its header or past the mapping");
	if (sum8(t, base_len) != 0)
		return refuse(why, "checksum is not zero");
	/* Walked by the base table's length, as Linux does: the entry count
	 * at +34 is not trusted (qboot writes 0 there). */
	size_t off = MP_CONFIG_HEADER_LEN;
	int n = 0;
	while (off < base_len) {
		uint8_t type = t[off];
		size_t size = type == 0 ? 20 : type <= 4 ? 8 : 0;
		if (size == 0)
			return refuse(why, "an entry of unknown type: its length is unknown");
		if (off + size > base_len)
			return refuse(why, "an entry runs past the base table");
		if (type == 2 && (t[off + 3] & 1)) {
			uint32_t addr = le32(t + off + 4);
			if (addr == 0 || (addr & 15))
				return refuse(why, "an I/O APIC address is zero or not 16-byte aligned");
			if (n < max) {
				out[n].id = t[off + 1];
				out[n].address = addr;
			}
			n++;
		}
		off += size;
	}
	return n < max ? n : max;
}
