/*
 * uart16550: COM1 at I/O port 0x3f8 (see uart16550.h).
 */
#include <stdint.h>
#include "uart16550.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"

#define COM1 0x3f8
#define REG_DATA 0
#define REG_IER 1
#define REG_IIR 2 /* read */
#define REG_FCR 2 /* write */
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define LSR_DATA_READY 0x01
#define LSR_TX_EMPTY 0x20 /* holding register (FIFO) empty */
#define LSR_TX_IDLE 0x40  /* and the shift register too: all bytes gone */
#define IER_RX 0x01
#define IER_TX 0x02
#define IIR_NONE 0x01 /* no interrupt pending */

/*
 * Receive ring. When it is full, bytes stay in the UART and its receive
 * interrupt is paused; QEMU then stops sending (its chardev waits until the
 * UART can take more), so a long paste is delayed, never truncated.
 */
#define RX_RING 256
static volatile char rx_ring[RX_RING];
static volatile unsigned rx_head, rx_tail;
static void (*rx_callback)(void);
static void (*tx_callback)(void);
static volatile bool rx_paused;
/* What IER should hold: the receive interrupt unless paused, the transmit
 * one while the console has bytes waiting. Written with interrupts off. */
static bool irq_routed, want_rx, want_tx;

static void ier_update(void)
{
	if (irq_routed)
		outb(COM1 + REG_IER, (want_rx && !rx_paused ? IER_RX : 0) | (want_tx ? IER_TX : 0));
}

static unsigned rx_count(void)
{
	return (rx_head + RX_RING - rx_tail) % RX_RING;
}

void uart_init(void)
{
	/* Typed-ahead bytes may already wait in the receiver; turning the FIFO
	 * on flushes it, so keep them first. */
	uart_poll();
	outb(COM1 + REG_IER, 0x00);
	outb(COM1 + REG_LCR, 0x80); /* divisor latch */
	outb(COM1 + 0, 0x01);       /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + REG_LCR, 0x03); /* 8N1 */
	outb(COM1 + REG_FCR, 0xc7); /* FIFO on, cleared, 14-byte threshold */
	outb(COM1 + REG_MCR, 0x0b); /* DTR, RTS, OUT2 (gates the IRQ line) */
}

void uart_putc(char c)
{
	if (c == '\n')
		uart_putc('\r');
	/* Bounded: a stuck transmitter must not hang the kernel forever. */
	for (int spins = 0; spins < 1000000 && !(inb(COM1 + REG_LSR) & LSR_TX_EMPTY); spins++)
		cpu_relax();
	outb(COM1 + REG_DATA, (uint8_t)c);
}

void uart_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		uart_putc(s[i]);
}

bool uart_tx_ready(void)
{
	return inb(COM1 + REG_LSR) & LSR_TX_EMPTY;
}

bool uart_tx_idle(void)
{
	return inb(COM1 + REG_LSR) & LSR_TX_IDLE;
}

void uart_tx_put(char c)
{
	outb(COM1 + REG_DATA, (uint8_t)c);
}

/*
 * Turning the transmit interrupt on while the transmitter is already empty
 * raises it at once (as on the real part, and in QEMU), so a caller that saw
 * it busy and then asks loses no wakeup if it emptied in between.
 */
void uart_tx_irq(bool on)
{
	bool was = irq_save();
	if (want_tx != on) {
		want_tx = on;
		ier_update();
	}
	irq_restore(was);
}

/*
 * Called from the interrupt handler and from ordinary code (polling mode,
 * and uart_enable_irq draining what came before the route). Interrupts
 * stay off while the ring moves: an interrupt between storing a byte and
 * advancing rx_head would drain the UART into the same slots, and the
 * interrupted store would then put rx_head back, losing what it took.
 */
bool uart_poll(void)
{
	bool was = irq_save();
	bool got = false;
	while (inb(COM1 + REG_LSR) & LSR_DATA_READY) {
		unsigned next = (rx_head + 1) % RX_RING;
		if (next == rx_tail) {
			/* Full: leave the rest in the UART until uart_getc makes room. */
			rx_paused = true;
			ier_update();
			break;
		}
		rx_ring[rx_head] = (char)inb(COM1 + REG_DATA);
		rx_head = next;
		got = true;
	}
	irq_restore(was);
	return got;
}

/*
 * IRQ 4 is edge-triggered: while any cause stays pending the line stays
 * high and no new edge comes, so handle causes until the UART reports none
 * (bounded, in case it never does).
 */
void uart_irq_handler(void *ctx)
{
	(void)ctx;
	for (int round = 0; round < 8; round++) {
		if (uart_poll() && rx_callback)
			rx_callback();
		if (tx_callback)
			tx_callback();
		if (inb(COM1 + REG_IIR) & IIR_NONE)
			break;
	}
}

void uart_enable_irq(void (*on_input)(void), void (*on_tx_room)(void))
{
	bool was = irq_save();
	rx_callback = on_input;
	tx_callback = on_tx_room;
	irq_routed = true;
	want_rx = true;
	ier_update();
	irq_restore(was);
	uart_poll(); /* bytes that came before the route existed */
	if (on_tx_room)
		on_tx_room(); /* and output that waited for it */
}

int uart_getc(void)
{
	if (rx_tail == rx_head)
		return -1;
	char c = rx_ring[rx_tail];
	rx_tail = (rx_tail + 1) % RX_RING;
	if (rx_paused && rx_count() < RX_RING / 2) {
		/* Room again: take what waited in the UART, and resume interrupts
		 * (in polling mode the poll timer picks it up instead). */
		bool was = irq_save();
		rx_paused = false;
		ier_update();
		irq_restore(was);
	}
	return (unsigned char)c;
}
