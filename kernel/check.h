/*
 * check: how an invariant checker says what is wrong.
 *
 * Every checker (pfa_check, swap_slots_check, replace_check, ...) returns 0,
 * or -EFAULT with one sentence in the caller's `why` buffer naming what broke
 * and where. check_fail writes that sentence and gives the -EFAULT, so a
 * checker ends a failed test with `return check_fail(why, len, "...", ...)`.
 * Host-compilable: it needs only vsnprintf.
 */
#ifndef BLIMP_CHECK_H
#define BLIMP_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline int check_fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int check_fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && len)
		vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EFAULT;
}

#endif
