/*
 * clock: monotonic time since boot, from the TSC calibrated against the PIT.
 */
#ifndef BLIMP_CLOCK_H
#define BLIMP_CLOCK_H

#include <stdint.h>

/* Measure the TSC rate (about 20 ms of PIT channel 2). Call once, early. */
void clock_init(void);
uint64_t clock_ns(void);
uint64_t clock_ms(void);
uint64_t clock_tsc_hz(void);

#endif
