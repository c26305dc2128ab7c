/*
 * uart16550: COM1, blimp's console and its line to the host tools.
 *
 * Two ways out. uart_putc/uart_write wait for the transmitter (bounded):
 * for the fatal paths and for flushing, never for ordinary output. The
 * kernel's console (kernel/console.c) keeps its own transmit ring and feeds
 * the UART only as fast as it takes bytes, through uart_tx_ready/uart_tx_put,
 * woken by the transmit-empty interrupt (uart_tx_irq) or by polling.
 * Input arrives by interrupt into a small ring (uart_enable_irq), or by
 * uart_poll() in polling mode.
 *
 * A leaf: the driver does not wire its own interrupt. Whoever owns the
 * console (kernel/shell.c) allocates a vector, installs uart_irq_handler on
 * it, routes UART_COM1_ISA_IRQ there and then calls uart_enable_irq.
 */
#ifndef BLIMP_UART16550_H
#define BLIMP_UART16550_H

#include <stddef.h>
#include <stdbool.h>

void uart_init(void);

/* Synchronous output: waits (a bounded number of polls per byte, then
 * writes anyway) until the transmitter has room. '\n' goes out as "\r\n". */
void uart_putc(char c);
void uart_write(const char *s, size_t n);

/* Bytes the transmitter takes after it reports empty (its FIFO). */
#define UART_TX_FIFO 16

/* Does the transmitter have room for UART_TX_FIFO bytes now? */
bool uart_tx_ready(void);

/* Hand one byte to the transmitter, no waiting: only after uart_tx_ready,
 * at most UART_TX_FIFO bytes per time it said so. */
void uart_tx_put(char c);

/* Has the transmitter handed on every byte it was given? */
bool uart_tx_idle(void);

/* Ask for (on) or stop (off) the transmit-empty interrupt; it reaches the
 * `on_tx_room` of uart_enable_irq. Ignored until the interrupt is routed. */
void uart_tx_irq(bool on);

/* COM1's ISA interrupt line (edge-triggered), for the owner to route. */
#define UART_COM1_ISA_IRQ 4

/* The interrupt handler (an irq_handler_fn; ctx is unused), for the owner to
 * install on the vector it routes UART_COM1_ISA_IRQ to. */
void uart_irq_handler(void *ctx);

/* Turn the UART's interrupts on, once uart_irq_handler is installed and the
 * line routed. From the interrupt handler, so both must only move bytes or
 * queue work: `on_input` is called when bytes arrived, `on_tx_room` on every
 * interrupt (the transmitter may have room). Picks up bytes and output that
 * waited for the route. */
void uart_enable_irq(void (*on_input)(void), void (*on_tx_room)(void));

/* Move any bytes waiting in the UART into the receive ring (polling mode). */
bool uart_poll(void);

/* Next received byte, or -1 if none. */
int uart_getc(void);

#endif
