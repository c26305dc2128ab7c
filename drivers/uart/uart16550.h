/*
 * uart16550: COM1, blimp's console and its line to the host tools.
 *
 * Output is by polling (it works before interrupts exist and from a fault
 * handler). Input arrives by interrupt into a small ring once the IOAPIC
 * routes IRQ 4 (uart_enable_rx_irq), or by uart_poll() in polling mode.
 */
#ifndef BLIMP_UART16550_H
#define BLIMP_UART16550_H

#include <stddef.h>
#include <stdbool.h>

void uart_init(void);
void uart_putc(char c);                /* '\n' goes out as "\r\n" */
void uart_write(const char *s, size_t n);

/* Was the last character written a newline? (Event lines must start a line.) */
bool uart_at_line_start(void);

/* Route COM1's receive interrupt to `vector` and call `on_input` (from the
 * interrupt handler, so it must only queue work) when bytes arrive. */
int uart_enable_rx_irq(void (*on_input)(void));

/* Move any bytes waiting in the UART into the receive ring (polling mode). */
bool uart_poll(void);

/* Next received byte, or -1 if none. */
int uart_getc(void);

#endif
