/*
 * console: the kernel's text output, which nothing in the kernel waits for.
 *
 * Everything the kernel prints (printf through write(), event lines, the
 * shell's echo) goes into a transmit ring, and the UART takes bytes out of it
 * only as fast as the host reads them: at once while it has room, then from
 * its transmit-empty interrupt, or from the poll timer in irq=poll mode. A
 * host that stops reading the serial port costs the kernel nothing (issue 12:
 * before, every byte waited for the UART, and a balloon deflate took seconds).
 *
 *   writers --> [ ring, CONSOLE_RING bytes ] --> UART (16 bytes per "empty")
 *                 | full: the line is dropped whole and counted
 *                 '--> later: @ev {"ev":"console_dropped","lines":N,"bytes":M}
 *
 * Lines are never cut in the middle: a new line goes in only if it fits with
 * room to spare, else it is dropped whole (and the rest of it as it comes);
 * an event line goes in whole or not at all. Only a human line longer than
 * the spare room, still being written when the ring fills, can end early; it
 * then ends with CONSOLE_CUT_MARK and a newline.
 *
 * The fatal paths (panic, CPU exception) call console_sync(): the ring goes
 * out first, then every later write goes straight to the UART. qemu_exit
 * flushes the ring, so a run's last lines reach the host before QEMU exits.
 *
 * Part of the kernel's base (console, event, work, panic, clock): the few
 * modules arch/ calls into. The cycles among them are on purpose: event
 * lines go out through the console and the console reports its drops as
 * events; the console queues work, work panics, and a panic flushes the
 * console and reports an event; the exception handler (arch/x86_64/idt.c)
 * and qemu_exit report through the console and events, while work installs
 * its timer vector through idt. Nothing in the base calls drivers or the
 * rest of the kernel. (The kernel's other cycles stay inside one subsystem's
 * files, as pci.c/pci_cap.c/pci_irq.c, or are the boot entry: stack.h.)
 */
#ifndef BLIMP_CONSOLE_H
#define BLIMP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_RING (32 * 1024)   /* bytes; a power of two */
#define CONSOLE_LINE_SPARE 512     /* room a new unfinished line must leave */
#define CONSOLE_CUT_MARK " [console full]"

/* Text: any bytes, lines ending in '\n' (sent as "\r\n"). */
void console_write(const char *s, size_t n);
void console_putc(char c);

/* One whole line (`s` ends with '\n'), for event lines: it starts on a line
 * of its own and goes in whole, or is dropped and counted. Returns whether
 * it went in. */
bool console_write_line(const char *s, size_t n);

/* Does the next byte start a line? (Event lines must start one.) */
bool console_at_line_start(void);

/* Give the UART what it takes now. From the UART's interrupt, the poll
 * timer, or any code; never waits. */
void console_drain(void);

/*
 * Wait until the ring is out, giving up when the UART takes nothing for
 * `stall_ms` (a host that never reads); what is left is dropped and counted.
 * For poweroff and the fatal paths only. Returns 0 or -ETIMEDOUT.
 */
int console_flush(uint64_t stall_ms);

/* The machine is stopping (panic, exception): flush, then write every
 * later byte straight to the UART. */
void console_sync(void);

struct console_stats {
	uint64_t bytes_out;     /* handed to the UART from the ring */
	uint64_t lines_dropped; /* since boot */
	uint64_t bytes_dropped;
	uint32_t used, peak;    /* bytes in the ring now, at most so far */
};
void console_get_stats(struct console_stats *st);

#endif
