/*
 * clock: monotonic time since boot, from the TSC, its rate measured
 * against a ruler the machine really has (clock.c says which, in order).
 *
 * clock_init() only notes the TSC at boot; until clock_calibrate() runs
 * (after ACPI, which says where the HPET and the PM timer are) times are
 * scaled by a guess of 1 GHz. Every time is counted from the same TSC
 * value, so once calibrated all of them are right, since boot.
 */
#ifndef BLIMP_CLOCK_H
#define BLIMP_CLOCK_H

#include <stdint.h>

/* Note the TSC at boot. Call first thing. */
void clock_init(void);
/* Open the calibration window: find the rulers and read them. Needs
 * acpi_init() done and paging up (the HPET is mapped). Work that uses no
 * time (clock_ns is still the 1 GHz guess) may run before... */
void clock_calibrate_start(void);
/* ...this closes the window once it is at least 2 ms long (another only
 * when a ruler fails; opens one first if clock_calibrate_start was not
 * called), measures the TSC's rate, prints what each ruler said and
 * emits the `clock` event. */
void clock_calibrate(void);
uint64_t clock_ns(void);
uint64_t clock_ms(void);
/* `cycles` of the TSC in nanoseconds, at the measured rate. */
uint64_t clock_tsc_to_ns(uint64_t cycles);
uint64_t clock_tsc_hz(void);
/* The ruler the rate came from ("hpet", "pm_timer", "pit", "rtc",
 * "cpuid"), or "none" (the 1 GHz guess: nothing could be measured). */
const char *clock_ruler(void);

#endif
