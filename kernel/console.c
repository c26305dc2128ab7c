/*
 * console: the transmit ring between the kernel's writers and COM1 (see
 * console.h for the rules on lines).
 *
 * One CPU, so the ring is guarded by turning interrupts off: writers append
 * at `head`, console_drain takes from `tail` (from the UART's interrupt or
 * from ordinary code). Both count up forever; head - tail is the bytes held.
 * The ring holds bytes as they go on the wire ('\n' already "\r\n"), so the
 * room a line needs is known before it goes in.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "console.h"
#include "clock.h"
#include "event.h"
#include "work.h"
#include "arch/x86_64/cpu.h"
#include "drivers/uart/uart16550.h"

_Static_assert((CONSOLE_RING & (CONSOLE_RING - 1)) == 0, "CONSOLE_RING must be a power of two");

/* Room always kept for ending a cut line with the mark and "\r\n". */
#define CUT_RESERVE (sizeof(CONSOLE_CUT_MARK) - 1 + 2)
/* How long the fatal paths wait for a UART that takes nothing. */
#define SYNC_STALL_MS 1000

static char ring[CONSOLE_RING];
static uint32_t head, tail;
static bool line_start = true; /* the last byte in (or sent) was '\n' */
static bool dropping;          /* the rest of the current text line goes */
static bool sync_mode;         /* console_sync: no ring any more */
static uint64_t unreported_lines, unreported_bytes;
static struct console_stats stats;
static struct work report_work;

static uint32_t room(void)
{
	return CONSOLE_RING - (head - tail);
}

/* Bytes `s` takes on the wire: each '\n' goes as "\r\n". */
static uint32_t wire_len(const char *s, size_t n)
{
	uint32_t len = n;
	for (size_t i = 0; i < n; i++)
		len += s[i] == '\n';
	return len;
}

/* The first '\n' in s[0..n), or NULL: newlib's memchr, word at a time, is
 * 14 blocks for TCG to translate at boot; lines are short. */
static const char *find_newline(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\n')
			return s + i;
	return NULL;
}

/* Append (the caller checked the room), interrupts off. */
static void ring_put(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			ring[head++ % CONSOLE_RING] = '\r';
		ring[head++ % CONSOLE_RING] = s[i];
	}
	if (n)
		line_start = s[n - 1] == '\n';
	if (head - tail > stats.peak)
		stats.peak = head - tail;
}

static void count_drop(uint32_t lines, uint32_t bytes)
{
	stats.lines_dropped += lines;
	stats.bytes_dropped += bytes;
	unreported_lines += lines;
	unreported_bytes += bytes;
}

/* Work item: say what was dropped, once the ring has room to say it. */
static void report_drops(struct work *w)
{
	(void)w;
	bool was = irq_save();
	uint64_t lines = unreported_lines, bytes = unreported_bytes;
	unreported_lines = unreported_bytes = 0;
	irq_restore(was);
	if (lines || bytes)
		event_emit("console_dropped", "\"lines\":%lu,\"bytes\":%lu,\"lines_total\":%lu,"
			   "\"bytes_total\":%lu", (unsigned long)lines, (unsigned long)bytes,
			   (unsigned long)stats.lines_dropped, (unsigned long)stats.bytes_dropped);
}

/* Feed the UART while it has room, interrupts off. Asks for the transmit
 * interrupt while bytes remain, so the rest goes when the host reads. */
static void drain_locked(void)
{
	while (head != tail && uart_tx_ready()) {
		for (int i = 0; i < UART_TX_FIFO && head != tail; i++) {
			uart_tx_put(ring[tail++ % CONSOLE_RING]);
			stats.bytes_out++;
		}
	}
	uart_tx_irq(head != tail);
	if ((unreported_lines || unreported_bytes) && room() >= CONSOLE_RING / 2) {
		report_work.fn = report_drops;
		work_queue(&report_work); /* not from here: we may be in the interrupt */
	}
}

void console_drain(void)
{
	bool was = irq_save();
	drain_locked();
	irq_restore(was);
}

void console_write(const char *s, size_t n)
{
	if (sync_mode) {
		uart_write(s, n);
		if (n)
			line_start = s[n - 1] == '\n';
		return;
	}
	bool was = irq_save();
	while (n) {
		const char *nl = find_newline(s, n);
		size_t seg = nl ? (size_t)(nl - s) + 1 : n;
		uint32_t need = wire_len(s, seg);
		if (dropping) {
			count_drop(0, need);
			dropping = !nl;
		} else if (line_start) {
			/* A new line: in only with room to spare for its end. */
			uint32_t want = need + (nl ? 0 : CONSOLE_LINE_SPARE) + CUT_RESERVE;
			if (room() >= want) {
				ring_put(s, seg);
			} else {
				count_drop(1, need);
				dropping = !nl;
			}
		} else if (room() >= need + CUT_RESERVE) {
			ring_put(s, seg); /* the rest of a line already going out */
		} else {
			/* A long line outgrew the spare room: end it visibly. */
			ring_put(CONSOLE_CUT_MARK "\n", sizeof(CONSOLE_CUT_MARK));
			count_drop(1, need);
			dropping = !nl;
		}
		s += seg;
		n -= seg;
	}
	drain_locked();
	irq_restore(was);
}

void console_putc(char c)
{
	console_write(&c, 1);
}

bool console_write_line(const char *s, size_t n)
{
	if (sync_mode) {
		if (!line_start)
			uart_putc('\n');
		uart_write(s, n);
		line_start = true;
		return true;
	}
	bool was = irq_save();
	uint32_t need = wire_len(s, n) + (line_start ? 0 : 2);
	bool in = room() >= need + CUT_RESERVE;
	if (in) {
		if (!line_start)
			ring_put("\n", 1); /* after a prompt or a half-written line */
		ring_put(s, n);
	} else {
		count_drop(1, need);
	}
	drain_locked();
	irq_restore(was);
	return in;
}

bool console_at_line_start(void)
{
	return line_start;
}

int console_flush(uint64_t stall_ms)
{
	bool was = irq_save();
	int rc = 0;
	uint64_t last_move = clock_ns();
	uint32_t last_tail = tail;
	/* Until the ring is empty and the UART has handed its last byte on. */
	while (head != tail || !uart_tx_idle()) {
		drain_locked();
		if (tail != last_tail) {
			last_tail = tail;
			last_move = clock_ns();
		} else if (clock_ns() - last_move > stall_ms * 1000000) {
			count_drop(0, head - tail);
			tail = head;
			rc = -ETIMEDOUT;
			break;
		}
		cpu_relax();
	}
	uart_tx_irq(false);
	irq_restore(was);
	return rc;
}

void console_sync(void)
{
	console_flush(SYNC_STALL_MS);
	sync_mode = true;
}

void console_get_stats(struct console_stats *st)
{
	bool was = irq_save();
	*st = stats;
	st->used = head - tail;
	irq_restore(was);
}

/*
 * The kernel's printf: formatted by vsnprintf, the formatter snprintf and
 * the event lines use, and written in one piece as newlib's unbuffered
 * stdout would have written it. newlib's own printf runs a second copy of
 * the formatter (_vfprintf_r beside snprintf's _svfprintf_r) and its stdio
 * path; under TCG every piece of code costs its translation the first time
 * it runs, about 1.5 ms of a microvm boot for that copy alone. Longer text
 * than the buffer (a shell listing) takes newlib's path, as before.
 */
#define PRINTF_BUF 512
int printf(const char *fmt, ...)
{
	char buf[PRINTF_BUF];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n >= 0 && n < (int)sizeof(buf)) {
		console_write(buf, (size_t)n);
		return n;
	}
	va_start(ap, fmt);
	n = vfprintf(stdout, fmt, ap);
	va_end(ap);
	return n;
}
