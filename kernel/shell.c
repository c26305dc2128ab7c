/*
 * shell: read lines from COM1, run commands (see shell.h).
 *
 * Bytes arrive in the UART's receive ring from its interrupt handler, which
 * queues shell_work; the work item drains the ring, edits the line (echo,
 * backspace) and runs a command when a line ends. A command runs in the main
 * loop with interrupts on. Work never nests (work.h), so bytes typed while a
 * command runs, or waits for a device, stay in the receive ring and are
 * edited and echoed once it has returned: the line being executed is never
 * touched under it, and no command runs inside another.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "shell.h"
#include "cmdline.h"
#include "console.h"
#include "event.h"
#include "work.h"
#include "drivers/uart/uart16550.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/ioapic.h"

extern const struct shell_command __start_shell_cmds[], __stop_shell_cmds[];

#define LINE_MAX_LEN 256
#define MAX_ARGS 24
static char line[LINE_MAX_LEN];
static unsigned line_len;
static bool line_overflow;
/* Terminal escape sequences (arrow keys send ESC [ A) are skipped whole. */
static enum { ESC_NONE, ESC_START, ESC_CSI } esc_state;
static struct work shell_work;

static const struct shell_command *find_command(const char *name)
{
	for (const struct shell_command *c = __start_shell_cmds; c < __stop_shell_cmds; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* Kernel wording for error codes: strerror's speaks of files and devices. */
static const char *shell_error_text(int rc)
{
	switch (rc) {
	case -EINVAL: return "invalid argument";
	case -ENOENT: return "not found";
	case -ENOMEM: return "not enough memory";
	case -ENOSPC: return "no room left";
	case -EIO: return "check failed";
	case -EFAULT: return "bad address or state";
	case -EBUSY: return "busy";
	case -ENODEV: return "no such device";
	case -ETIMEDOUT: return "timed out";
	case -E2BIG: return "too many words";
	default: return "error";
	}
}

int shell_execute(char *text)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	char esc[LINE_MAX_LEN * 2];

	for (char *p = strtok(text, " \t"); p; p = strtok(NULL, " \t")) {
		if (argc == MAX_ARGS) {
			printf("error: more than %d words\n", MAX_ARGS);
			event_emit("cmd", "\"name\":\"%s\",\"rc\":%d",
				   event_json_escape(esc, sizeof(esc), argv[0]), -E2BIG);
			return -E2BIG;
		}
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	if (argc == 0)
		return 0;

	const struct shell_command *c = find_command(argv[0]);
	if (!c) {
		printf("error: unknown command '%s' (type 'help')\n", argv[0]);
		event_emit("cmd_error", "\"name\":\"%s\",\"error\":\"unknown command\"",
			   event_json_escape(esc, sizeof(esc), argv[0]));
		return -ENOENT;
	}
	int rc = c->fn(argc, argv);
	if (rc < 0)
		printf("error: %s: %s (%d)\n", c->name, shell_error_text(rc), rc);
	event_emit("cmd", "\"name\":\"%s\",\"rc\":%d", c->name, rc);
	return rc;
}

static void prompt(void)
{
	printf("blimp> ");
	fflush(stdout);
}

static void shell_input(struct work *w)
{
	(void)w;
	int ch;
	while ((ch = uart_getc()) >= 0) {
		if (esc_state == ESC_START) {
			esc_state = ch == '[' ? ESC_CSI : ESC_NONE;
			continue;
		}
		if (esc_state == ESC_CSI) {
			if (ch >= 0x40 && ch <= 0x7e)
				esc_state = ESC_NONE; /* the final byte */
			continue;
		}
		if (ch == 0x1b) {
			esc_state = ESC_START;
		} else if (ch == '\r' || ch == '\n') {
			if (ch == '\n' && line_len == 0 && !line_overflow)
				continue; /* the \n of a \r\n pair */
			console_putc('\n');
			line[line_len] = 0;
			if (line_overflow)
				printf("error: line longer than %d characters, ignored\n", LINE_MAX_LEN - 1);
			else
				shell_execute(line);
			line_len = 0;
			line_overflow = false;
			prompt();
		} else if (ch == 0x7f || ch == 0x08) {
			if (line_len > 0) {
				line_len--;
				console_write("\b \b", 3);
			}
		} else if (ch >= 0x20 && ch < 0x7f) {
			if (line_len < LINE_MAX_LEN - 1) {
				line[line_len++] = (char)ch;
				console_putc((char)ch);
			} else {
				line_overflow = true;
			}
		}
	}
}

static void shell_rx(void)
{
	work_queue(&shell_work);
}

/* Polling mode: input, and the console's output the UART can take now. */
static void shell_poll(void)
{
	if (uart_poll())
		shell_rx();
	console_drain();
}

/*
 * The console's interrupt is wired here, by the console's owner, not by the
 * UART driver: a vector, the driver's handler on it, COM1's line routed to
 * it, then the UART's interrupts on, input to the shell and transmit room to
 * the console's ring. Returns 0 or a negative errno value.
 */
static int shell_wire_uart_irq(void)
{
	int vec = irq_alloc_vector();
	if (vec < 0)
		return vec;
	int rc = irq_set_handler(vec, uart_irq_handler, NULL);
	if (rc < 0)
		return rc;
	rc = ioapic_route_isa_irq(UART_COM1_ISA_IRQ, vec);
	if (rc < 0)
		return rc;
	uart_enable_irq(shell_rx, console_drain);
	return 0;
}

void shell_start(bool poll)
{
	shell_work.fn = shell_input;
	int rc = -ENODEV;
	if (!poll && ioapic_present())
		rc = shell_wire_uart_irq();
	if (rc < 0) {
		if (!poll)
			printf("shell: no serial interrupt (%d), polling the console\n", rc);
		work_add_poll(shell_poll, 10 * 1000 * 1000);
	}
	prompt();
	/* Bytes typed before this point sit in the receive ring with no
	 * interrupt still to come for them: look once now. */
	work_queue(&shell_work);
}

static int cmd_help(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "options") == 0) {
		printf("kernel command-line options:\n");
		cmdline_print_options();
		return 0;
	}
	printf("commands:\n");
	for (const struct shell_command *c = __start_shell_cmds; c < __stop_shell_cmds; c++) {
		char usage[64];
		snprintf(usage, sizeof(usage), "%s %s", c->name, c->args);
		printf("  %-22s %s\n", usage, c->help);
	}
	printf("'help options' lists the kernel command-line options.\n");
	return 0;
}
SHELL_COMMAND(help, "[options]", "list commands, or kernel command-line options", cmd_help);
