/*
 * shell: a line-oriented command shell on the serial console.
 *
 * Commands are declared next to the code they drive with SHELL_COMMAND; the
 * shell finds them all through the linker section. After every command the
 * shell emits a "cmd" event with the command's name and return code, so a
 * host tool knows when the command is done without parsing human text.
 */
#ifndef BLIMP_SHELL_H
#define BLIMP_SHELL_H

#include <stdbool.h>

struct shell_command {
	const char *name;
	const char *args; /* usage, e.g. "<size>" */
	const char *help;
	int (*fn)(int argc, char **argv); /* 0, or a negative error code */
};

#define SHELL_COMMAND(name_, args_, help_, fn_)                                  \
	static const struct shell_command shell_command_##name_                  \
		__attribute__((used, section("shell_cmds"), aligned(8))) = { #name_, args_, help_, fn_ }

/* Start reading commands from the serial port: by interrupt where it can
 * be routed, by polling on a timer where not or when `poll` (irq=poll). */
void shell_start(bool poll);

/* Run one command line as if typed; returns its result. */
int shell_execute(char *line);

#endif
