/*
 * panic: stop the machine when an invariant is broken.
 * Prints the message (name the function and the values that broke the rule),
 * emits a "panic" event, and exits QEMU with QEMU_EXIT_PANIC.
 *
 * Part of the kernel's base (console, event, work, panic, clock); the
 * cycles among them are on purpose, listed in kernel/console.h.
 */
#ifndef BLIMP_PANIC_H
#define BLIMP_PANIC_H

__attribute__((noreturn, format(printf, 1, 2))) void panic(const char *fmt, ...);

#endif
