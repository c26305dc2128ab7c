/*
 * format: the kernel's vsnprintf and snprintf, in place of newlib's (see
 * format.h).
 *
 * Why: under TCG every piece of code costs its translation the first time
 * it runs. newlib's formatter (_svfprintf_r, written for stdio streams,
 * locales and floating point) was about 140 translated blocks of every
 * microvm boot, the biggest single piece of it, and 10-20 us a call. This
 * one knows what the kernel writes and nothing more:
 *
 *   %[flags][width][.precision][length]conversion
 *   flags - 0 # + space; width and precision digits or *;
 *   lengths hh h l ll z j t; conversions d i u o x X c s p %
 *
 * No floating point (the kernel has none). %s of NULL is "(null)" and %p
 * is "0x" and the hex digits, as newlib's. A conversion it does not know
 * (%n among them) is copied as written, so a mistake shows in the text.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "format.h"

struct out {
	char *buf;
	size_t size, len; /* len: what the whole text needs, written or not */
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_n(struct out *o, char c, int n)
{
	while (n-- > 0)
		put(o, c);
}

enum { F_LEFT = 1, F_ZERO = 2, F_ALT = 4, F_PLUS = 8, F_SPACE = 16 };

/* An integer conversion: the sign or prefix, zeros to the precision (C's
 * rules: the default is 1, 0 with a zero prints no digits, and the 0 flag
 * counts only without one), then the width. */
static void number(struct out *o, uint64_t v, bool neg, unsigned base, bool upper, bool is_ptr, int flags,
		   int width, int prec)
{
	static const char lower_set[] = "0123456789abcdef", upper_set[] = "0123456789ABCDEF";
	const char *set = upper ? upper_set : lower_set;
	char digits[24];
	int nd = 0;
	for (uint64_t x = v; x; x /= base)
		digits[nd++] = set[x % base];
	if (prec < 0)
		prec = 1;
	else
		flags &= ~F_ZERO;
	int zeros = prec > nd ? prec - nd : 0;
	if (base == 8 && (flags & F_ALT) && zeros == 0 && (nd == 0 || digits[nd - 1] != '0'))
		zeros = 1; /* # on octal: the first digit is a 0 */
	const char *prefix = "";
	if (neg)
		prefix = "-";
	else if (flags & F_PLUS)
		prefix = "+";
	else if (flags & F_SPACE)
		prefix = " ";
	else if (base == 16 && (is_ptr || ((flags & F_ALT) && v != 0)))
		prefix = upper ? "0X" : "0x";
	int plen = 0;
	while (prefix[plen])
		plen++;
	int body = plen + zeros + nd;
	int fill = width > body ? width - body : 0;
	if (!(flags & (F_LEFT | F_ZERO)))
		put_n(o, ' ', fill);
	for (int i = 0; i < plen; i++)
		put(o, prefix[i]);
	if (flags & F_ZERO && !(flags & F_LEFT))
		put_n(o, '0', fill);
	put_n(o, '0', zeros);
	while (nd > 0)
		put(o, digits[--nd]);
	if (flags & F_LEFT)
		put_n(o, ' ', fill);
}

static void text(struct out *o, const char *s, int flags, int width, int prec)
{
	if (!s)
		s = "(null)";
	int n = 0;
	while ((prec < 0 || n < prec) && s[n])
		n++;
	int fill = width > n ? width - n : 0;
	if (!(flags & F_LEFT))
		put_n(o, ' ', fill);
	for (int i = 0; i < n; i++)
		put(o, s[i]);
	if (flags & F_LEFT)
		put_n(o, ' ', fill);
}

int format_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	while (*fmt) {
		if (*fmt != '%') {
			put(&o, *fmt++);
			continue;
		}
		const char *spec = fmt++;
		int flags = 0, width = 0, prec = -1;
		for (;; fmt++) {
			if (*fmt == '-')
				flags |= F_LEFT;
			else if (*fmt == '0')
				flags |= F_ZERO;
			else if (*fmt == '#')
				flags |= F_ALT;
			else if (*fmt == '+')
				flags |= F_PLUS;
			else if (*fmt == ' ')
				flags |= F_SPACE;
			else
				break;
		}
		if (*fmt == '*') {
			width = va_arg(ap, int);
			if (width < 0) {
				flags |= F_LEFT;
				width = -width;
			}
			fmt++;
		} else {
			while (*fmt >= '0' && *fmt <= '9')
				width = width * 10 + (*fmt++ - '0');
		}
		if (*fmt == '.') {
			fmt++;
			prec = 0;
			if (*fmt == '*') {
				prec = va_arg(ap, int);
				if (prec < 0)
					prec = -1;
				fmt++;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					prec = prec * 10 + (*fmt++ - '0');
			}
		}
		/* The argument's size: 0 int, 1 char, 2 short, 3 long long. */
		int len = 0;
		if (*fmt == 'h') {
			len = fmt[1] == 'h' ? 1 : 2;
			fmt += len == 1 ? 2 : 1;
		} else if (*fmt == 'l') {
			len = 3; /* long and long long are both 64 bits here */
			fmt += fmt[1] == 'l' ? 2 : 1;
		} else if (*fmt == 'z' || *fmt == 'j' || *fmt == 't') {
			len = 3;
			fmt++;
		}
		char c = *fmt;
		if (c == 'd' || c == 'i') {
			int64_t v = len == 3 ? va_arg(ap, long long) : va_arg(ap, int);
			if (len == 1)
				v = (signed char)v;
			else if (len == 2)
				v = (short)v;
			uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
			number(&o, mag, v < 0, 10, false, false, flags, width, prec);
		} else if (c == 'u' || c == 'x' || c == 'X' || c == 'o') {
			uint64_t v = len == 3 ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int);
			if (len == 1)
				v = (unsigned char)v;
			else if (len == 2)
				v = (unsigned short)v;
			number(&o, v, false, c == 'u' ? 10 : c == 'o' ? 8 : 16, c == 'X', false,
			       flags & ~(F_PLUS | F_SPACE), width, prec);
		} else if (c == 'p') {
			number(&o, (uintptr_t)va_arg(ap, void *), false, 16, false, true, flags & F_LEFT, width, -1);
		} else if (c == 'c') {
			char ch = (char)va_arg(ap, int);
			int fill = width > 1 ? width - 1 : 0;
			if (!(flags & F_LEFT))
				put_n(&o, ' ', fill);
			put(&o, ch);
			if (flags & F_LEFT)
				put_n(&o, ' ', fill);
		} else if (c == 's') {
			text(&o, va_arg(ap, const char *), flags, width, prec);
		} else if (c == '%') {
			put(&o, '%');
		} else {
			/* Unknown: as written (a bare % at the end, too). */
			for (const char *p = spec; p < fmt; p++)
				put(&o, *p);
			if (!c)
				break;
			put(&o, c);
		}
		fmt++;
	}
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = 0;
	return o.len > INT32_MAX ? -1 : (int)o.len;
}

int format_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = format_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

#ifdef BLIMP_KERNEL
/* The kernel's: every snprintf, vsnprintf and (console.c) printf. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	return format_vsnprintf(buf, size, fmt, ap);
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = format_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
#endif
