/*
 * lapic: the local APIC — end of interrupt, and a one-shot timer.
 *
 * The timer wakes the idle loop when the earliest kernel timer is due
 * (kernel/work.c); nothing ticks periodically, so an idle guest sleeps in
 * `hlt` and costs the host nothing.
 */
#ifndef BLIMP_LAPIC_H
#define BLIMP_LAPIC_H

#include <stdint.h>

/* Enable the LAPIC and start its timer counting, masked; call just
 * before clock_calibrate(), and lapic_timer_calibrate() just after: the
 * timer's rate is measured over the clock's own window. */
void lapic_init(void);
void lapic_timer_calibrate(void);
void lapic_eoi(void);
uint32_t lapic_id(void);
uint64_t lapic_base(void);

/* Fire VECTOR_LAPIC_TIMER once, `ns` nanoseconds from now (0 cancels). */
void lapic_timer_oneshot(uint64_t ns);

#endif
