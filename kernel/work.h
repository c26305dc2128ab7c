/*
 * work: deferred work and timers, run by the kernel's one loop.
 *
 * Interrupt handlers do the minimum and queue a struct work; kernel_loop()
 * runs queued work with interrupts on, fires due timers, and halts the CPU
 * when there is nothing to do. There are no threads: a work function runs to
 * completion, so it should do a bounded amount and re-queue itself for more
 * (that keeps the shell and other work responsive). Work never nests: no
 * work item or timer runs while another one is running, waits included.
 *
 * Part of the kernel's base (console, event, work, panic, clock); the
 * cycles among them are on purpose, listed in kernel/console.h.
 */
#ifndef BLIMP_WORK_H
#define BLIMP_WORK_H

#include <stdint.h>
#include <stdbool.h>

struct work {
	void (*fn)(struct work *w);
	struct work *next;
	bool queued;
};

struct timer {
	void (*fn)(struct timer *t);
	uint64_t deadline_ns;
	struct timer *next;
	bool armed;
};

/* Queue w to run once (again) from the loop. Safe from interrupt handlers;
 * queueing an already queued item does nothing. */
void work_queue(struct work *w);

/* Run fn once, `delay_ns` from now, from the loop (re-arming moves it). */
void timer_arm(struct timer *t, uint64_t delay_ns);
void timer_cancel(struct timer *t);

/* Run queued work and due timers until none is left; returns how many ran.
 * Only the kernel loop calls it: from inside a work item it panics. */
int work_run_pending(void);

/*
 * Halt until done(ctx) is true or `timeout_ms` passes. Returns 0 or
 * -ETIMEDOUT. done() is called with interrupts off, after each interrupt,
 * so it should look at (poll) the device itself: no other work item or timer
 * runs during the wait — interrupts only queue work for later — and the
 * caller's own completion work may not have run either. Polled devices and
 * the console are polled (their bytes kept, their work queued). The LAPIC
 * timer bounds the halt, so a device that never answers cannot hang the
 * caller; other work waits up to `timeout_ms`, so keep it short.
 */
int work_wait(bool (*done)(void *ctx), void *ctx, uint64_t timeout_ms);

/* Polling mode: call fn every `period_ns` from a timer (for devices whose
 * interrupts cannot be routed, or when irq=poll forces it). */
void work_add_poll(void (*fn)(void), uint64_t period_ns);

/* The kernel's main loop: never returns. */
__attribute__((noreturn)) void kernel_loop(void);

/* Counters for the shell and tests. */
uint64_t work_idle_halts(void);

#endif
