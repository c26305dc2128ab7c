/*
 * virtio_mmio_parse: the `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`
 * command-line word (see virtio_mmio.h). The command line is written by
 * the VMM (QEMU's microvm appends these words itself), so it is checked
 * like device data. Pure: compiles into the kernel, the unit test
 * (tests/unit/test_virtio_mmio.c) and the fuzzer (fuzz_mmio).
 */
#include <errno.h>
#include <string.h>
#include "virtio_mmio.h"
#include "kernel/parse.h"

#define MMIO_PHYS_LIMIT (1ULL << 52)
#define WORD_MAX 80

static int refuse(const char **why, const char *what)
{
	*why = what;
	return -EINVAL;
}

int virtio_mmio_parse_device(const char *s, struct virtio_mmio_desc *out, const char **why)
{
	char buf[WORD_MAX];
	size_t n = strnlen(s, sizeof(buf));
	if (n == sizeof(buf))
		return refuse(why, "longer than any <size>@<base>:<irq>[:<id>] can be");
	memcpy(buf, s, n + 1);
	char *at = strchr(buf, '@');
	if (!at)
		return refuse(why, "no '@' between size and base");
	*at = 0;
	char *colon = strchr(at + 1, ':');
	if (!colon)
		return refuse(why, "no ':' between base and irq");
	*colon = 0;
	char *id = strchr(colon + 1, ':');
	if (id)
		*id++ = 0;
	struct virtio_mmio_desc d = { 0 };
	uint64_t v;
	if (parse_size(buf, &d.size) < 0)
		return refuse(why, "size is not a number (with an optional K/M/G)");
	if (parse_u64(at + 1, &d.base) < 0)
		return refuse(why, "base is not a number");
	if (parse_u64_max(colon + 1, 255, &v) < 0)
		return refuse(why, "irq is not a number below 256");
	d.irq = (uint32_t)v;
	if (id) {
		if (parse_u64_max(id, UINT32_MAX, &v) < 0)
			return refuse(why, "device id is not a 32-bit number");
		d.id = (uint32_t)v;
	}
	if (virtio_mmio_check(&d, why) < 0)
		return -EINVAL;
	*out = d;
	return 0;
}

int virtio_mmio_check(const struct virtio_mmio_desc *d, const char **why)
{
	if (d->size < VIRTIO_MMIO_CONFIG)
		return refuse(why, "size is smaller than the 0x100 bytes of registers");
	if (d->base & 3)
		return refuse(why, "base is not 4-byte aligned");
	if (d->base >= MMIO_PHYS_LIMIT || d->size > MMIO_PHYS_LIMIT - d->base)
		return refuse(why, "the block reaches past 2^52, beyond any physical address");
	if (d->irq > 255)
		return refuse(why, "irq is not a number below 256");
	return 0;
}
