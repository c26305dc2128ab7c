/*
 * format: C's snprintf and vsnprintf for the kernel, small enough for TCG
 * to translate quickly (format.c says why and what it knows). The kernel's
 * snprintf and vsnprintf are these; the host tests call them by these names.
 *
 * The contract is C's: at most size - 1 bytes and a NUL are written (none
 * when size is 0), and the length the whole text needs is returned.
 */
#ifndef BLIMP_FORMAT_H
#define BLIMP_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

int format_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int format_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
