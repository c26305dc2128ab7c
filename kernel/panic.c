/*
 * panic: the one way out when the kernel cannot go on (see panic.h).
 * The message goes straight to the UART: the console's ring and its
 * interrupt are not to be trusted any more.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "panic.h"
#include "console.h"
#include "event.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/qemu_exit.h"
#include "drivers/uart/uart16550.h"

void panic(const char *fmt, ...)
{
	static char msg[512], esc[600];
	irq_disable();
	console_sync(); /* what was queued first, then this, straight out */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uart_write("\n*** panic: ", 12);
	uart_write(msg, strlen(msg));
	uart_write("\n", 1);
	event_emit("panic", "\"msg\":\"%s\"", event_json_escape(esc, sizeof(esc), msg));
	qemu_exit(QEMU_EXIT_PANIC);
}
