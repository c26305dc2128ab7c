/*
 * event: machine-readable lines for the host tools.
 *
 * Every event is one line on the serial port:
 *
 *   @ev {"ev":"<name>","t_ms":<guest ms since boot>,<fields>}
 *
 * The prefix is fixed so a reader can pick events out of human console
 * text; each line is one JSON object. docs/events.md lists every event and
 * its fields.
 *
 * Part of the kernel's base (console, event, work, panic, clock); the
 * cycles among them are on purpose, listed in kernel/console.h.
 */
#ifndef BLIMP_EVENT_H
#define BLIMP_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_PREFIX "@ev "
#define EVENT_LINE_MAX 1024 /* bytes of an event line, prefix and newline included */
#define EVENT_TRUNCATED "\"truncated\":true"

/* Emit one event. `fields_fmt` (printf format, may be NULL) produces the
 * remaining members, e.g. "\"pages\":%lu"; it must not start with a comma.
 * An event longer than EVENT_LINE_MAX is cut with event_fit_members: still
 * one JSON object, ending in "truncated":true. */
void event_emit(const char *name, const char *fields_fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Make `text`, the members of a JSON object without its braces (len bytes,
 * possibly cut off anywhere by a full buffer), into valid members of at most
 * `max` bytes, ending in EVENT_TRUNCATED: whole members are kept, a string
 * value may be cut short (never inside an escape), objects and arrays still
 * open are closed, a number or a key is never cut. Rewrites text in place
 * (room for `max` bytes) and returns the new length; 0 if even the mark
 * does not fit.
 */
size_t event_fit_members(char *text, size_t len, size_t max);

/*
 * At most `per_s` events a second from one source, so a storm (faults,
 * reclaim) cannot flood the console: ok says whether this one may go out;
 * the number held back since the last one that went is reported by
 * event_ratelimit_suppressed (and reset) — put it in the event.
 */
struct event_ratelimit {
	uint64_t window_ms;
	unsigned in_window, suppressed, report;
};
bool event_ratelimit_ok(struct event_ratelimit *rl, uint64_t now_ms, unsigned per_s);
unsigned event_ratelimit_suppressed(struct event_ratelimit *rl);

/* Copy `s` into dst as the inside of a JSON string (quotes, backslashes and
 * control characters escaped), truncating to fit. Returns dst. */
char *event_json_escape(char *dst, size_t dst_size, const char *s);

#endif
