/*
 * cmdline: the kernel command line, parsed in one place.
 *
 * The line is `key[=value]` words separated by spaces. Every key a module
 * understands is declared next to the code that uses it with CMDLINE_OPTION;
 * cmdline_parse checks each word against those declarations, so an unknown
 * or misspelt option is reported at boot instead of being silently ignored.
 * `help options` in the shell lists them all.
 */
#ifndef BLIMP_CMDLINE_H
#define BLIMP_CMDLINE_H

#include <stdint.h>
#include <stdbool.h>

struct cmdline_option {
	const char *name;
	const char *help;
};

#define CMDLINE_OPTION(id, name_, help_)                                         \
	static const struct cmdline_option cmdline_option_##id                   \
		__attribute__((used, section("cmdline_opts"), aligned(8))) = { name_, help_ }

/* Split and check the line. Unknown options are reported on the console and
 * as "cmdline_error" events; returns the number of them (0 when all known). */
int cmdline_parse(const char *line);

/* The value of `name`: NULL if absent, "" if given without '='. */
const char *cmdline_get(const char *name);
bool cmdline_has(const char *name);

/* The value of the n-th (from 0) occurrence of `name`, for options given
 * once per thing (virtio_mmio.device=); NULL past the last. */
const char *cmdline_get_nth(const char *name, int n);

/* `name` as a size (512M) or number; *out untouched and `def` used when the
 * option is absent. A malformed value is reported and `def` is used. */
uint64_t cmdline_get_size(const char *name, uint64_t def);
uint64_t cmdline_get_u64(const char *name, uint64_t def);

/* The whole line as given (for the ready event). */
const char *cmdline_raw(void);

/* Print every declared option with its help. */
void cmdline_print_options(void);

#endif
