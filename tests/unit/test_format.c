/*
 * Host tests for the kernel's formatter (kernel/format.c): every conversion
 * the kernel writes, with every flag, width, precision and length it could
 * use, gives the text and the length the host C library gives, and a small
 * buffer gets the same cut and NUL. Where C leaves it to the library (%p,
 * %s of NULL) the expected text is newlib's, which the kernel used before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/format.h"

/* Format with both, into buffers of every size up to a bound, and compare. */
static void both(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void both(const char *fmt, ...)
{
	char want[256], got[256];
	for (size_t size = 0; size < 40; size += size < 12 ? 1 : 9) {
		va_list a, b;
		va_start(a, fmt);
		memset(want, 'W', sizeof(want));
		memset(got, 'W', sizeof(got));
		int nw = vsnprintf(want, size, fmt, a);
		va_end(a);
		va_start(b, fmt);
		int ng = format_vsnprintf(got, size, fmt, b);
		va_end(b);
		if (nw != ng || memcmp(want, got, sizeof(want)) != 0)
			fail_msg("format \"%s\", buffer of %zu: expected %d \"%.*s\", got %d \"%.*s\"", fmt, size, nw,
				 (int)(size ? strnlen(want, size) : 0), want, ng, (int)(size ? strnlen(got, size) : 0),
				 got);
	}
}

static void integers(void **state)
{
	(void)state;
	static const long long values[] = { 0, 1, -1, 7, 8, 9, 10, 15, 16, 255, -255, 4096, 65535, 123456789,
					    -123456789, 2147483647LL, -2147483647LL - 1, 4294967295LL,
					    9223372036854775807LL, -9223372036854775807LL - 1 };
	static const char *const flags[] = { "", "-", "0", "#", "+", " ", "-#", "0#", "+0", "- ", "-0" };
	static const char *const widths[] = { "", "1", "5", "9", "18", "22" };
	static const char *const precs[] = { "", ".", ".0", ".1", ".3", ".12" };
	static const char *const convs[] = { "d", "i", "u", "x", "X", "o" };
	char fmt[32];
	for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++)
		for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++)
				for (size_t p = 0; p < sizeof(precs) / sizeof(precs[0]); p++)
					for (size_t c = 0; c < sizeof(convs) / sizeof(convs[0]); c++) {
						long long x = values[v];
						snprintf(fmt, sizeof(fmt), "<%%%s%s%s%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, (int)x);
						snprintf(fmt, sizeof(fmt), "<%%%s%s%sl%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, (long)x);
						snprintf(fmt, sizeof(fmt), "<%%%s%s%sll%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, x);
						snprintf(fmt, sizeof(fmt), "<%%%s%s%sh%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, (int)x);
						snprintf(fmt, sizeof(fmt), "<%%%s%s%shh%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, (int)x);
						snprintf(fmt, sizeof(fmt), "<%%%s%s%sz%s>", flags[f], widths[w], precs[p],
							 convs[c]);
						both(fmt, (size_t)x);
					}
}

/* The formats the kernel's sources use most, as they are written there. */
static void kernel_formats(void **state)
{
	(void)state;
	both("%lu MiB usable RAM (%lu MiB above 4 GiB), TSC %lu MHz (by %s)", 2047UL, 0UL, 2100UL, "pit");
	both("virtio-mmio: %s at %#lx, version %u%s, vendor %#x, GSI %u", "balloon", 0xfeb02e00UL, 1u,
	     " (legacy)", 0x554d4551u, 47u);
	both("  %016lx-%016lx %-12s %8lu KiB", 0x9fc00UL, 0xfffffUL, "reserved", 1024UL);
	both("%02x:%02x.%x %04x:%04x", 0u, 31u, 2u, 0x8086u, 0x29c0u);
	both("%#018llx %#11lx %9s|%-9s|%9lu %03lu %7u %6s %.4s", 0xdeadbeefULL, 0x1234UL, "ab", "cd", 77UL,
	     5UL, 3u, "xyz", "FACPxx");
	both("%c%c%5c%-3c|%%|%d%%", 'a', 'b', 'c', 'd', 50);
	both("%s %-15s|%-22s|%7s", "", "left", "", "right");
	both("%*d|%-*d|%.*s|%*s", 6, 42, 6, 42, 3, "abcdef", -5, "x");
	both("%zu %zd %zx", (size_t)123, (ssize_t)-5, (size_t)0xabc);
	both("no conversion at all");
	both("%s", "");
}

/* Formats the compiler would refuse to check, on purpose. */
static int raw(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = format_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* Left to the library by C: the kernel keeps newlib's text. */
static void library_defined(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(raw(buf, sizeof(buf), "[%s]", (const char *)NULL), 8);
	assert_string_equal(buf, "[(null)]");
	assert_int_equal(format_snprintf(buf, sizeof(buf), "%p", (void *)0x1000), 6);
	assert_string_equal(buf, "0x1000");
	assert_int_equal(format_snprintf(buf, sizeof(buf), "%p|%8p|%-8p|", (void *)0, (void *)0xab, (void *)0xab),
			 22);
	assert_string_equal(buf, "0x0|    0xab|0xab    |");
}

/* A conversion it does not know is copied as written, arguments untouched. */
static void unknown_conversions(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(raw(buf, sizeof(buf), "a%5.2qb%d", 7), 8);
	assert_string_equal(buf, "a%5.2qb7");
	assert_int_equal(raw(buf, sizeof(buf), "end %"), 5);
	assert_string_equal(buf, "end %");
	assert_int_equal(raw(buf, sizeof(buf), "end %-0"), 7);
	assert_string_equal(buf, "end %-0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(integers),
		cmocka_unit_test(kernel_formats),
		cmocka_unit_test(library_defined),
		cmocka_unit_test(unknown_conversions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
