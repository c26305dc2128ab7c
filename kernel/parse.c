/*
 * parse: see parse.h.
 */
#include <errno.h>
#include <ctype.h>
#include "parse.h"

static int parse_digits(const char **sp, uint64_t *out)
{
	const char *s = *sp;
	unsigned base = 10;
	uint64_t v = 0;
	int any = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && isxdigit((unsigned char)*s))
			d = (tolower((unsigned char)*s) - 'a') + 10;
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
		any = 1;
	}
	if (!any)
		return -EINVAL;
	*sp = s;
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v;
	int rc = parse_digits(&s, &v);
	if (rc < 0)
		return rc;
	if (*s)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	int rc = parse_digits(&s, &v);
	if (rc < 0)
		return rc;
	unsigned shift = 0;
	switch (tolower((unsigned char)*s)) {
	case 'k': shift = 10; s++; break;
	case 'm': shift = 20; s++; break;
	case 'g': shift = 30; s++; break;
	case 't': shift = 40; s++; break;
	default: break;
	}
	if (shift && tolower((unsigned char)s[0]) == 'i' && tolower((unsigned char)s[1]) == 'b')
		s += 2;
	else if (tolower((unsigned char)*s) == 'b')
		s++;
	if (*s)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

/* The bound for both parsers; one place, so the two cannot drift apart. */
static int bounded(int (*parse)(const char *, uint64_t *), const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int rc = parse(s, &v);
	if (rc < 0)
		return rc;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_u64_max(const char *s, uint64_t max, uint64_t *out)
{
	return bounded(parse_u64, s, max, out);
}

int parse_size_max(const char *s, uint64_t max, uint64_t *out)
{
	return bounded(parse_size, s, max, out);
}
