/*
 * cmdline: see cmdline.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cmdline.h"
#include "event.h"
#include "parse.h"
#include "boot/boot_info.h"

extern const struct cmdline_option __start_cmdline_opts[], __stop_cmdline_opts[];

#define MAX_WORDS 64
static char raw[BOOT_CMDLINE_MAX];
static char buf[BOOT_CMDLINE_MAX];
static const char *keys[MAX_WORDS], *values[MAX_WORDS];
static int n_words;

static const struct cmdline_option *find_option(const char *name)
{
	for (const struct cmdline_option *o = __start_cmdline_opts; o < __stop_cmdline_opts; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

int cmdline_parse(const char *line)
{
	int unknown = 0;
	strncpy(raw, line ? line : "", sizeof(raw) - 1);
	memcpy(buf, raw, sizeof(buf));
	n_words = 0;
	for (char *p = buf; *p;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			*p++ = 0;
		if (!*p)
			break;
		char *word = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		if (*p)
			*p++ = 0;
		char *eq = strchr(word, '=');
		if (eq)
			*eq = 0;
		if (!find_option(word)) {
			char esc[128];
			printf("cmdline: unknown option '%s' (ignored; 'help options' lists them)\n", word);
			event_emit("cmdline_error", "\"option\":\"%s\",\"error\":\"unknown option\"",
				   event_json_escape(esc, sizeof(esc), word));
			unknown++;
			continue;
		}
		if (n_words == MAX_WORDS) {
			printf("cmdline: more than %d options, the rest ignored\n", MAX_WORDS);
			break;
		}
		keys[n_words] = word;
		values[n_words] = eq ? eq + 1 : "";
		n_words++;
	}
	return unknown;
}

const char *cmdline_get(const char *name)
{
	const char *v = NULL;
	for (int i = 0; i < n_words; i++) /* the last one given wins */
		if (strcmp(keys[i], name) == 0)
			v = values[i];
	return v;
}

const char *cmdline_get_nth(const char *name, int n)
{
	for (int i = 0; i < n_words; i++)
		if (strcmp(keys[i], name) == 0 && n-- == 0)
			return values[i];
	return NULL;
}

bool cmdline_has(const char *name)
{
	return cmdline_get(name) != NULL;
}

static uint64_t get_number(const char *name, uint64_t def, int (*parse)(const char *, uint64_t *))
{
	const char *v = cmdline_get(name);
	uint64_t out;
	if (!v)
		return def;
	if (parse(v, &out) < 0) {
		char esc[128];
		printf("cmdline: %s=%s is not a valid value, using %lu\n", name, v, (unsigned long)def);
		event_emit("cmdline_error", "\"option\":\"%s\",\"error\":\"bad value\"",
			   event_json_escape(esc, sizeof(esc), name));
		return def;
	}
	return out;
}

uint64_t cmdline_get_size(const char *name, uint64_t def)
{
	return get_number(name, def, parse_size);
}

uint64_t cmdline_get_u64(const char *name, uint64_t def)
{
	return get_number(name, def, parse_u64);
}

const char *cmdline_raw(void)
{
	return raw;
}

void cmdline_print_options(void)
{
	for (const struct cmdline_option *o = __start_cmdline_opts; o < __stop_cmdline_opts; o++)
		printf("  %-22s %s\n", o->name, o->help);
}
