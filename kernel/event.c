/*
 * event: one JSON object per line, behind a fixed prefix (see event.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include "event.h"
#include "clock.h"
#include "console.h"

void event_emit(const char *name, const char *fields_fmt, ...)
{
	/* Static: events can be long and some callers run on small stacks. */
	static char line[1024];
	int n = snprintf(line, sizeof(line), EVENT_PREFIX "{\"ev\":\"%s\",\"t_ms\":%lu",
			 name, (unsigned long)clock_ms());
	if (fields_fmt && n < (int)sizeof(line) - 3) {
		line[n++] = ',';
		va_list ap;
		va_start(ap, fields_fmt);
		n += vsnprintf(line + n, sizeof(line) - n, fields_fmt, ap);
		va_end(ap);
	}
	if (n > (int)sizeof(line) - 3)
		n = sizeof(line) - 3; /* truncated: still close the object */
	line[n++] = '}';
	line[n++] = '\n';
	fflush(stdout); /* keep order with console text still in stdio */
	console_write_line(line, n); /* whole or not at all, on a line of its own */
}

char *event_json_escape(char *dst, size_t dst_size, const char *s)
{
	size_t o = 0;
	for (; *s && o + 7 < dst_size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += snprintf(dst + o, dst_size - o, "\\u%04x", c);
		} else {
			dst[o++] = c;
		}
	}
	dst[o] = 0;
	return dst;
}
