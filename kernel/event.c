/*
 * event: one JSON object per line, behind a fixed prefix (see event.h).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "event.h"
#include "clock.h"
#include "console.h"

void event_emit(const char *name, const char *fields_fmt, ...)
{
	/* Static: events can be long and some callers run on small stacks. */
	static char line[EVENT_LINE_MAX];
	int n = snprintf(line, sizeof(line), EVENT_PREFIX "{\"ev\":\"%s\",\"t_ms\":%lu",
			 name, (unsigned long)clock_ms());
	if (fields_fmt) {
		line[n++] = ',';
		va_list ap;
		va_start(ap, fields_fmt);
		int f = vsnprintf(line + n, sizeof(line) - n, fields_fmt, ap);
		va_end(ap);
		size_t room = sizeof(line) - n - 2; /* and "}\n" */
		if (f < 0)
			f = 0;
		if ((size_t)f > room) {
			size_t got = (size_t)f < sizeof(line) - n - 1 ? (size_t)f : sizeof(line) - n - 1;
			f = (int)event_fit_members(line + n, got, room);
		}
		n += f;
		if (f == 0)
			n--; /* no members after all: no comma */
	}
	line[n++] = '}';
	line[n++] = '\n';
	fflush(stdout); /* keep order with console text still in stdio */
	console_write_line(line, n);
}

#define FIT_DEPTH 16

/*
 * One pass over the text, remembering the last place it can be cut and
 * closed within `max`: inside a string value (not in an escape), right after
 * an opening bracket, or before a comma or closing bracket that follows a
 * whole value. The end of the text is a place only inside a string: a number
 * there may have lost digits.
 */
size_t event_fit_members(char *text, size_t len, size_t max)
{
	const size_t mark = sizeof(EVENT_TRUNCATED) - 1;
	char open[FIT_DEPTH], best_open[FIT_DEPTH];
	int depth = 0, best_depth = 0, esc = 0;
	bool in_str = false, key = false, expect_key = true, value_done = false, just_opened = false;
	bool best_quote = false, found = false;
	size_t best = 0;

	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? text[i] : 0;
		bool safe;
		if (in_str)
			safe = !key && esc == 0;
		else if (i == 0 || just_opened)
			safe = true;
		else
			safe = i < len && value_done && (c == ',' || c == '}' || c == ']');
		if (safe) {
			size_t total = i + in_str + depth + (i > 0) + mark;
			if (total > max)
				break; /* later places only keep more */
			best = i;
			best_quote = in_str;
			best_depth = depth;
			memcpy(best_open, open, depth);
			found = true;
		}
		if (i == len)
			break;
		just_opened = false;
		if (in_str) {
			if (esc < 0)
				esc = c == 'u' ? 4 : 0;
			else if (esc > 0)
				esc--;
			else if (c == '\\')
				esc = -1;
			else if (c == '"') {
				in_str = false;
				value_done = !key;
			}
			continue;
		}
		bool in_object = depth == 0 || open[depth - 1] == '{';
		switch (c) {
		case '"':
			in_str = true;
			key = in_object && expect_key;
			break;
		case ':':
			expect_key = false;
			value_done = false;
			break;
		case ',':
			expect_key = in_object;
			value_done = false;
			break;
		case '{':
		case '[':
			if (depth == FIT_DEPTH)
				goto done; /* deeper than any event: keep what is known good */
			open[depth++] = c;
			expect_key = c == '{';
			value_done = false;
			just_opened = true;
			break;
		case '}':
		case ']':
			if (depth == 0)
				goto done; /* not ours to close: malformed, stop here */
			depth--;
			value_done = true;
			expect_key = false;
			break;
		case ' ':
			break;
		default:
			value_done = true; /* a number, true, false, null */
			break;
		}
	}
done:
	if (!found)
		return 0;
	size_t n = best;
	if (best_quote)
		text[n++] = '"';
	while (best_depth > 0)
		text[n++] = best_open[--best_depth] == '{' ? '}' : ']';
	if (best > 0)
		text[n++] = ',';
	memcpy(text + n, EVENT_TRUNCATED, mark);
	return n + mark;
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

bool event_ratelimit_ok(struct event_ratelimit *rl, uint64_t now_ms, unsigned per_s)
{
	if (now_ms - rl->window_ms >= 1000 || now_ms < rl->window_ms) {
		rl->window_ms = now_ms;
		rl->in_window = 0;
	}
	if (rl->in_window >= per_s) {
		rl->suppressed++;
		return false;
	}
	rl->in_window++;
	rl->report = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

unsigned event_ratelimit_suppressed(struct event_ratelimit *rl)
{
	return rl->report;
}
