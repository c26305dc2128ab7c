/*
 * work: the run queue, timers and idle loop (see work.h).
 *
 * The queue is a singly linked FIFO protected by turning interrupts off, the
 * only concurrency a single-CPU kernel has. Timers are a list sorted by
 * deadline; the LAPIC one-shot timer is armed for the earliest, except while
 * work_wait borrows it for its own deadline.
 *
 * Work items never nest: one runs to its end before the next starts, and a
 * wait inside one (work_wait) only halts and polls. Nesting let a command's
 * wait run the shell's own work item, which took half-typed lines into the
 * line being executed and ran commands inside commands, each a frame deeper
 * on the one boot stack (issue 12).
 */
#include <errno.h>
#include <stddef.h>
#include "work.h"
#include "clock.h"
#include "panic.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/lapic.h"

static struct work *head, *tail;
static struct timer *timers;
static uint64_t halts;
/* A work item or timer is running: running another now would nest. */
static bool in_work;

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
	if (in_work)
		panic("work_run_pending: called from inside a work item (nesting)");
	int ran = 0;
	for (;;) {
		struct timer *t = timer_pop_due();
		if (t) {
			in_work = true;
			t->fn(t);
			in_work = false;
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
		in_work = true;
		w->fn(w);
		in_work = false;
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

int work_wait(bool (*done)(void *ctx), void *ctx, uint64_t timeout_ms)
{
	uint64_t deadline = clock_ns() + timeout_ms * 1000000;
	bool was = irq_save();
	int rc = 0;
	for (;;) {
		/* Interrupts are off from here to the halt, so a completion
		 * cannot slip in between the check and the sleep. */
		if (done(ctx))
			break;
		uint64_t now = clock_ns();
		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		/* The LAPIC timer is ours until the end: other timers wait, as
		 * queued work does. With polled devices, wake at their period and
		 * poll them here, which only moves bytes and queues work, the same
		 * as their interrupt handlers would. */
		uint64_t slice = deadline - now;
		if (n_polls && poll_period < slice)
			slice = poll_period;
		lapic_timer_oneshot(slice);
		cpu_idle(); /* sti; hlt: returns after the next interrupt */
		irq_disable();
		for (int i = 0; i < n_polls; i++)
			polls[i]();
	}
	lapic_rearm(); /* give the timer back to the timer list */
	irq_restore(was);
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
