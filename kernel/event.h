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
 */
#ifndef BLIMP_EVENT_H
#define BLIMP_EVENT_H

#include <stddef.h>

#define EVENT_PREFIX "@ev "

/* Emit one event. `fields_fmt` (printf format, may be NULL) produces the
 * remaining members, e.g. "\"pages\":%lu"; it must not start with a comma. */
void event_emit(const char *name, const char *fields_fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Copy `s` into dst as the inside of a JSON string (quotes, backslashes and
 * control characters escaped), truncating to fit. Returns dst. */
char *event_json_escape(char *dst, size_t dst_size, const char *s);

#endif
