/*
 * parse: numbers and sizes as people type them ("512M", "0x1000", "3").
 * Shared by the command line and the shell; compiles on the host too.
 */
#ifndef BLIMP_PARSE_H
#define BLIMP_PARSE_H

#include <stdint.h>

/* Decimal or 0x-hex, whole string, no overflow. Returns 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/* Like parse_u64 with an optional K, M, G or T suffix (powers of 1024,
 * case-insensitive, an optional trailing "iB"/"B"). Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* parse_u64 and parse_size with a bound: -ERANGE for a value above max, so
 * a caller that keeps the number in something smaller (an int id, a frame
 * count rounded up) never sees one that would be cut or wrap. *out is
 * written only on success. */
int parse_u64_max(const char *s, uint64_t max, uint64_t *out);
int parse_size_max(const char *s, uint64_t max, uint64_t *out);

#endif
