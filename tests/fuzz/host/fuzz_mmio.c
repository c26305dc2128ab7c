/*
 * fuzz_mmio: the `virtio_mmio.device=` word parser
 * (drivers/virtio/virtio_mmio_parse.c) fed any bytes as the VMM's word.
 *
 * Input: the word (a NUL ends it early). A refusal must carry a sentence
 * and leave the output untouched. An accepted block holds the registers
 * (size >= 0x100), is 4-byte aligned, does not wrap or reach 2^52, has an
 * irq below 256, and reads back the same when printed in the canonical
 * form `0x<size>@0x<base>:<irq>:<id>` and parsed again.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/virtio/virtio_mmio.h"
#include "tests/fuzz/host/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		fh_fail("out of memory");
	memcpy(s, data, size);
	s[size] = 0;
	struct virtio_mmio_desc d = { .base = 1, .size = 2, .irq = 3, .id = 4 };
	const char *why = NULL;
	int rc = virtio_mmio_parse_device(s, &d, &why);
	fh_trace("'%s': rc %d (%s)", s, rc, rc ? why : "");
	if (rc != 0) {
		if (!why || !*why)
			fh_fail("refused (%d) without a reason", rc);
		if (d.base != 1 || d.size != 2 || d.irq != 3 || d.id != 4)
			fh_fail("refused but wrote the output");
	} else {
		if (d.size < 0x100 || (d.base & 3) || d.base >= (1ULL << 52) || d.size > (1ULL << 52) - d.base ||
		    d.irq > 255)
			fh_fail("accepted %#" PRIx64 "@%#" PRIx64 ":%u", d.size, d.base, d.irq);
		if (!strchr(s, '@') || !strchr(s, ':'))
			fh_fail("accepted '%s' without '@' and ':'", s);
		char again[80];
		snprintf(again, sizeof(again), "%#" PRIx64 "@%#" PRIx64 ":%u:%u", d.size, d.base, d.irq, d.id);
		struct virtio_mmio_desc e;
		if (virtio_mmio_parse_device(again, &e, &why) != 0 || memcmp(&d, &e, sizeof(d)) != 0)
			fh_fail("'%s' parsed, but its canonical form '%s' does not read back the same", s, again);
	}
	free(s);
	return 0;
}
