/*
 * Host tests for event lines (kernel/event.c): whatever the fields, an event
 * is one line holding exactly one JSON object. Before, an event longer than
 * the line buffer was cut wherever the buffer ended and closed with a brace,
 * inside a string: the `ready` event of a long command line did not parse.
 *
 * The console and the clock are stubbed: event_emit's line is captured here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernel/console.h"
#include "kernel/event.h"

static char captured[EVENT_LINE_MAX + 1];
static size_t captured_len;

uint64_t clock_ms(void)
{
	return 1234;
}

bool console_write_line(const char *s, size_t n)
{
	assert_true(n <= EVENT_LINE_MAX);
	memcpy(captured, s, n);
	captured[n] = 0;
	captured_len = n;
	return true;
}

/* ---- a strict JSON checker, enough for events (no floats needed) ---- */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
	}
	return p + 1;
}

static const char *json_members(const char *p, char close, bool keys)
{
	p = json_ws(p);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keys) {
			p = json_string(json_ws(p));
			if (!p || *(p = json_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = json_value(json_ws(p));
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	if (*p == '"')
		return json_string(p);
	if (*p == '{')
		return json_members(p + 1, '}', true);
	if (*p == '[')
		return json_members(p + 1, ']', false);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	const char *s = p;
	if (*p == '-')
		p++;
	while (*p >= '0' && *p <= '9')
		p++;
	return p > s && p[-1] != '-' ? p : NULL;
}

/* The captured line is "@ev " + one object + "\n", nothing else. */
static void expect_valid_event(void)
{
	if (strncmp(captured, EVENT_PREFIX, 4) != 0 || captured[captured_len - 1] != '\n')
		fail_msg("not an event line: %s", captured);
	captured[captured_len - 1] = 0;
	const char *end = json_value(captured + 4);
	if (!end || *end)
		fail_msg("not one JSON object: %s", captured);
	captured[captured_len - 1] = '\n';
}

/* ---- event_emit ---- */

static void short_event_is_unchanged(void **state)
{
	(void)state;
	event_emit("x", "\"a\":%d,\"s\":\"%s\"", 5, "hi");
	assert_string_equal(captured, "@ev {\"ev\":\"x\",\"t_ms\":1234,\"a\":5,\"s\":\"hi\"}\n");
	event_emit("poweroff", NULL);
	assert_string_equal(captured, "@ev {\"ev\":\"poweroff\",\"t_ms\":1234}\n");
}

/* The ready event of a 1023-character command line (what boot_info holds). */
static void ready_with_a_long_command_line_is_cut_inside_the_string(void **state)
{
	(void)state;
	char cmdline[1023 + 1], esc[2 * 1023];
	memset(cmdline, 'a', 1023);
	cmdline[1023] = 0;
	cmdline[500] = '"'; /* escaped to \" : never cut between the two */
	event_emit("ready", "\"boot\":\"%s\",\"mem_usable\":%lu,\"cmdline\":\"%s\",\"after\":1", "pvh",
		   536346624UL, event_json_escape(esc, sizeof(esc), cmdline));
	expect_valid_event();
	assert_true(captured_len <= EVENT_LINE_MAX);
	assert_non_null(strstr(captured, "\"mem_usable\":536346624,\"cmdline\":\"aaa"));
	assert_non_null(strstr(captured, "aaa\"," EVENT_TRUNCATED "}\n"));
	assert_null(strstr(captured, "after"));
}

/* A long array member: cut between elements, the array closed. */
static void long_array_is_closed(void **state)
{
	(void)state;
	char list[3000];
	size_t o = 0;
	for (int i = 0; i < 400; i++)
		o += sprintf(list + o, "%s%d", i ? "," : "", 1000 + i);
	event_emit("pci_device", "\"bus\":0,\"caps\":[%s],\"tail\":\"x\"", list);
	expect_valid_event();
	assert_non_null(strstr(captured, "],\"truncated\":true}\n"));
}

/* ---- event_fit_members, cut at every length ---- */

static const char *samples[] = {
	"\"a\":1,\"b\":\"xy\\\"z\\u0001w\",\"c\":[1,{\"d\":\"e\"},[]],\"f\":{\"g\":[\"h\",2]},\"i\":true",
	"\"k\":\"\\\\\\\\\\\\\",\"n\":-12,\"o\":null,\"p\":{}",
	"\"only\":12345678901234567890",
};

static void every_cut_of_every_sample_is_valid(void **state)
{
	(void)state;
	for (size_t s = 0; s < sizeof(samples) / sizeof(samples[0]); s++) {
		size_t full = strlen(samples[s]);
		for (size_t len = 0; len <= full; len++) {
			for (size_t max = 0; max <= full + 20; max++) {
				char text[256];
				memcpy(text, samples[s], len);
				size_t n = event_fit_members(text, len, max);
				if (n == 0) {
					assert_true(max < sizeof(EVENT_TRUNCATED) - 1);
					continue;
				}
				assert_true(n <= max);
				char obj[300];
				snprintf(obj, sizeof(obj), "{%.*s}", (int)n, text);
				const char *end = json_value(obj);
				if (!end || *end)
					fail_msg("sample %zu cut at %zu into %zu: %s", s, len, max, obj);
				if (!strstr(obj, EVENT_TRUNCATED "}"))
					fail_msg("no truncation mark: %s", obj);
			}
		}
	}
}

/* A number at the end of cut text may have lost digits: it is left out,
 * never shortened. */
static void a_number_at_the_cut_is_left_out(void **state)
{
	(void)state;
	char text[64] = "\"a\":1,\"big\":123456789";
	size_t n = event_fit_members(text, strlen(text), 28);
	text[n] = 0;
	assert_string_equal(text, "\"a\":1," EVENT_TRUNCATED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(short_event_is_unchanged),
		cmocka_unit_test(ready_with_a_long_command_line_is_cut_inside_the_string),
		cmocka_unit_test(long_array_is_closed),
		cmocka_unit_test(every_cut_of_every_sample_is_valid),
		cmocka_unit_test(a_number_at_the_cut_is_left_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
