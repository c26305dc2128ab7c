/*
 * acpi_devices: see acpi_devices.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include "acpi_devices.h"
#include "le.h"

static const uint8_t hid_lnro[] = { 0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0 };
static const uint8_t name_hid[] = { 0x08, '_', 'H', 'I', 'D' };
static const uint8_t name_crs[] = { 0x08, '_', 'C', 'R', 'S', 0x11 };

static long find(const uint8_t *p, size_t from, size_t to, const uint8_t *pat, size_t n)
{
	for (size_t i = from; i + n <= to; i++)
		if (memcmp(p + i, pat, n) == 0)
			return (long)i;
	return -1;
}

static int refuse(const char **why, const char *what)
{
	*why = what;
	return -EINVAL;
}

/* PkgLength at p[0..avail) (20.2.4): its value (which counts itself) and
 * how many bytes it took; -1 when it does not fit. */
static long pkg_length(const uint8_t *p, size_t avail, size_t *used)
{
	if (avail < 1)
		return -1;
	unsigned follow = p[0] >> 6;
	if (avail < 1 + follow)
		return -1;
	long v = follow ? (p[0] & 0x0f) : (p[0] & 0x3f);
	for (unsigned i = 0; i < follow; i++)
		v |= (long)p[1 + i] << (4 + 8 * i);
	*used = 1 + follow;
	return v;
}

/* The resource template in b[0..n): the first Memory32Fixed and the first
 * interrupt of the first Extended Interrupt descriptor. */
static int read_resources(const uint8_t *b, size_t n, struct acpi_mmio_dev *d, const char **why)
{
	bool mem = false, irq = false;
	size_t i = 0;
	while (i < n) {
		uint8_t tag = b[i];
		if (!(tag & 0x80)) { /* small item: length in the tag */
			if ((tag >> 3) == 0x0f) /* end tag */
				break;
			i += 1 + (tag & 7);
			continue;
		}
		if (i + 3 > n)
			return refuse(why, "a large resource descriptor runs past the buffer");
		size_t dlen = (size_t)le_read(b + i + 1, 2);
		if (i + 3 + dlen > n)
			return refuse(why, "a resource descriptor runs past the buffer");
		const uint8_t *body = b + i + 3;
		if (tag == 0x86 && !mem) {
			if (dlen < 9)
				return refuse(why, "Memory32Fixed shorter than 9 bytes");
			d->base = le32(body + 1);
			d->size = le32(body + 5);
			mem = true;
		} else if (tag == 0x89 && !irq) {
			if (dlen < 6 || body[1] == 0)
				return refuse(why, "Extended Interrupt without an interrupt");
			d->gsi = le32(body + 2);
			irq = true;
		}
		i += 3 + dlen;
	}
	if (!mem || !irq)
		return refuse(why, "LNRO0005 _CRS lacks a Memory32Fixed or an interrupt");
	return 0;
}

int acpi_aml_find_mmio(const uint8_t *aml, size_t len, struct acpi_mmio_dev *out, int max, const char **why)
{
	int n = 0;
	long at = find(aml, 0, len, hid_lnro, sizeof(hid_lnro));
	while (at >= 0) {
		size_t after = (size_t)at + sizeof(hid_lnro);
		long next_hid = find(aml, after, len, name_hid, sizeof(name_hid));
		size_t scope_end = next_hid < 0 ? len : (size_t)next_hid;
		long crs = find(aml, after, scope_end, name_crs, sizeof(name_crs));
		if (crs < 0)
			return refuse(why, "an LNRO0005 device without Name(_CRS, Buffer)");
		size_t p = (size_t)crs + sizeof(name_crs), used;
		long plen = pkg_length(aml + p, len - p, &used);
		if (plen < 0 || (size_t)plen < used || (size_t)plen > len - p)
			return refuse(why, "_CRS buffer length runs past the table");
		size_t end = p + (size_t)plen;
		p += used;
		/* BufferSize: BytePrefix, WordPrefix or DWordPrefix and the value */
		if (p >= end)
			return refuse(why, "_CRS buffer without a size");
		unsigned w = aml[p] == 0x0a ? 1 : aml[p] == 0x0b ? 2 : aml[p] == 0x0c ? 4 : 0;
		if (w == 0 || p + 1 + w > end)
			return refuse(why, "_CRS buffer size is not a byte, word or dword constant");
		size_t bsize = (size_t)le_read(aml + p + 1, (int)w);
		p += 1 + w;
		if (bsize > end - p)
			return refuse(why, "_CRS buffer size larger than its package");
		struct acpi_mmio_dev d = { 0 };
		int rc = read_resources(aml + p, bsize, &d, why);
		if (rc < 0)
			return rc;
		if (n < max)
			out[n] = d;
		n++;
		at = find(aml, after, len, hid_lnro, sizeof(hid_lnro));
	}
	return n < max ? n : max;
}
