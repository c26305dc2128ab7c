/*
 * fuzz_mptable: the MP table reader (kernel/mptable.c) fed firmware bytes
 * that lie.
 *
 * Input: a mode byte, then the bytes, in a heap buffer of exactly their
 * size. Mode bit 0 set: the harness writes "PCMP", the true length and a
 * right checksum first, so the fuzzer spends its time on the entries. The
 * bytes are read both as a memory area to search for a floating pointer
 * and as a configuration table.
 *
 * A found floating pointer is on a 16-byte boundary, inside the area,
 * signed "_MP_", one 16-byte unit long and sums to 0. A refused table has a
 * reason; an accepted one is signed, sums to 0 over its base length, and
 * every I/O APIC it gives is non-zero and 16-byte aligned, no more than
 * asked for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/mptable.h"
#include "tests/fuzz/host/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t n = size - 1;
	uint8_t *t = malloc(n ? n : 1);
	if (!t)
		fh_fail("out of memory");
	memcpy(t, data + 1, n);
	if ((mode & 1) && n >= MP_CONFIG_HEADER_LEN && n <= 0xffff) {
		memcpy(t, "PCMP", 4);
		t[4] = (uint8_t)n;
		t[5] = (uint8_t)(n >> 8);
		uint8_t s = 0;
		t[7] = 0;
		for (size_t i = 0; i < n; i++)
			s = (uint8_t)(s + t[i]);
		t[7] = (uint8_t)-s;
	}
	long off = mp_find_floating(t, n);
	if (off >= 0) {
		uint8_t s = 0;
		if ((off & 15) || (size_t)off + MP_FLOATING_LEN > n || memcmp(t + off, "_MP_", 4) || t[off + 8] != 1)
			fh_fail("floating pointer accepted at %ld", off);
		for (int i = 0; i < MP_FLOATING_LEN; i++)
			s = (uint8_t)(s + t[off + i]);
		if (s)
			fh_fail("floating pointer at %ld sums to %u", off, s);
	}
	struct mp_ioapic io[4];
	const char *why = NULL;
	int max = mode >> 6; /* 0..3 */
	int got = mp_parse_config(t, n, io, max, &why);
	fh_trace("config %zu bytes, max %d: %d (%s)", n, max, got, got < 0 ? why : "");
	if (got < 0) {
		if (!why || !*why)
			fh_fail("refused (%d) without a reason", got);
	} else {
		size_t base = n >= 6 ? (size_t)t[4] | (size_t)t[5] << 8 : 0;
		uint8_t s = 0;
		if (n < MP_CONFIG_HEADER_LEN || memcmp(t, "PCMP", 4) || base > n || base < MP_CONFIG_HEADER_LEN)
			fh_fail("accepted a table without signature or length");
		for (size_t i = 0; i < base; i++)
			s = (uint8_t)(s + t[i]);
		if (s)
			fh_fail("accepted a table that sums to %u", s);
		if (got > max)
			fh_fail("gave %d I/O APICs, asked for at most %d", got, max);
		for (int i = 0; i < got; i++)
			if (io[i].address == 0 || (io[i].address & 15))
				fh_fail("gave I/O APIC address %#x", io[i].address);
	}
	free(t);
	return 0;
}
