/*
 * work: the run queue, timers and idle loop (see work.h).
 *
 * The queue is a singly linked FIFO protected by turning interrupts off, the
 * only concurrency a single-CPU kernel has. Timers are a list sorted by
 * deadline; the LAPIC one-shot timer is always armed for the earliest.
 */
#include <errno.h>
#include <stddef.h>
#include "work.h"
#include "clock.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/lapic.h"

static struct work *head, *tail;
static struct timer *timers;
static uint64_t halts;

void work_queue(struct work *w)
{
	bool was = irq_save();
	if (!w->queued) {
		w->queued = true;
		w->next = NULL;
		if (tail)
			tail->next = w;
		else
			head = w;
		tail = w;
	}
	irq_restore(was);
}

static void lapic_rearm(void)
{
	uint64_t now = clock_ns();
	if (!timers)
		lapic_timer_oneshot(0);
	else
		lapic_timer_oneshot(timers->deadline_ns > now ? timers->deadline_ns - now : 1);
}

void timer_cancel(struct timer *t)
{
	bool was = irq_save();
	for (struct timer **p = &timers; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	t->armed = false;
	lapic_rearm();
	irq_restore(was);
}

void timer_arm(struct timer *t, uint64_t delay_ns)
{
	timer_cancel(t);
	bool was = irq_save();
	t->deadline_ns = clock_ns() + delay_ns;
	t->armed = true;
	struct timer **p = &timers;
	while (*p && (*p)->deadline_ns <= t->deadline_ns)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	lapic_rearm();
	irq_restore(was);
}

/* Take the first due timer off the list, or NULL. */
static struct timer *timer_pop_due(void)
{
	bool was = irq_save();
	struct timer *t = timers;
	if (t && t->deadline_ns <= clock_ns()) {
		timers = t->next;
		t->armed = false;
	} else {
		t = NULL;
	}
	irq_restore(was);
	return t;
}

int work_run_pending(void)
{
	int ran = 0;
	for (;;) {
		struct timer *t = timer_pop_due();
		if (t) {
			t->fn(t);
			ran++;
			continue;
		}
		bool was = irq_save();
		struct work *w = head;
		if (w) {
			head = w->next;
			if (!head)
				tail = NULL;
			w->queued = false;
		}
		irq_restore(was);
		if (!w)
			break;
		w->fn(w);
		ran++;
	}
	bool was = irq_save();
	lapic_rearm();
	irq_restore(was);
	return ran;
}

static void timer_irq(void *ctx)
{
	(void)ctx; /* waking up is the point: the loop checks the timer list */
}

/* ---- polling mode ---- */
#define MAX_POLLS 8
static void (*polls[MAX_POLLS])(void);
static int n_polls;
static uint64_t poll_period;
static struct timer poll_timer;

static void poll_tick(struct timer *t)
{
	for (int i = 0; i < n_polls; i++)
		polls[i]();
	timer_arm(t, poll_period);
}

void work_add_poll(void (*fn)(void), uint64_t period_ns)
{
	if (n_polls == MAX_POLLS)
		return;
	polls[n_polls++] = fn;
	if (!poll_period || period_ns < poll_period)
		poll_period = period_ns;
	poll_timer.fn = poll_tick;
	if (!poll_timer.armed)
		timer_arm(&poll_timer, poll_period);
}

static void wake_only(struct timer *t)
{
	(void)t; /* firing is enough: it ends the halt */
}

int work_wait(bool (*done)(void *ctx), void *ctx, uint64_t timeout_ms)
{
	uint64_t deadline = clock_ns() + timeout_ms * 1000000;
	struct timer wake = { .fn = wake_only };
	timer_arm(&wake, timeout_ms * 1000000);
	int rc = 0;
	for (;;) {
		work_run_pending();
		irq_disable();
		if (done(ctx))
			break;
		if (clock_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		/* Work queued by an interrupt since work_run_pending: run it
		 * instead of sleeping through it (interrupts are off here, so
		 * nothing slips in between this check and the halt). */
		if (!head)
			cpu_idle();
		else
			irq_enable();
	}
	irq_enable();
	timer_cancel(&wake);
	return rc;
}

uint64_t work_idle_halts(void)
{
	return halts;
}

void kernel_loop(void)
{
	irq_set_handler(VECTOR_LAPIC_TIMER, timer_irq, NULL);
	for (;;) {
		irq_enable();
		work_run_pending();
		irq_disable();
		bool idle = !head && (!timers || timers->deadline_ns > clock_ns());
		if (idle) {
			halts++;
			cpu_idle(); /* sti; hlt: returns after the next interrupt */
		}
	}
}
