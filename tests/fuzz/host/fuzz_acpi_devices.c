/*
 * fuzz_acpi_devices: the DSDT scan for virtio-mmio devices
 * (kernel/acpi_devices.c) fed AML that lies.
 *
 * Input: a byte giving how many devices to ask for (0-7), then the AML, in
 * a heap buffer of exactly its size. A refusal has a reason; an accepted
 * scan returns no more than asked for, and finds a device only if the bytes
 * `_HID "LNRO0005"` and `_CRS` with BufferOp are really in the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/acpi_devices.h"
#include "tests/fuzz/host/fuzz_util.h"

static int contains(const uint8_t *p, size_t n, const char *pat, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(p + i, pat, m) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int max = data[0] & 7;
	size_t n = size - 1;
	uint8_t *t = malloc(n ? n : 1);
	if (!t)
		fh_fail("out of memory");
	memcpy(t, data + 1, n);
	struct acpi_mmio_dev d[8];
	const char *why = NULL;
	int got = acpi_aml_find_mmio(t, n, d, max, &why);
	fh_trace("%zu bytes, max %d: %d (%s)", n, max, got, got < 0 ? why : "");
	if (got < 0 && (!why || !*why))
		fh_fail("refused (%d) without a reason", got);
	if (got > max)
		fh_fail("found %d devices, asked for at most %d", got, max);
	if (got > 0 && (!contains(t, n, "\x08_HID\x0dLNRO0005", 15) || !contains(t, n, "\x08_CRS\x11", 6)))
		fh_fail("found a device in bytes without LNRO0005 and _CRS");
	free(t);
	return 0;
}
