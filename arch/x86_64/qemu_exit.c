/*
 * qemu_exit: the end of every run (see qemu_exit.h for the table of codes).
 */
#include "qemu_exit.h"
#include "cpu.h"
#include "kernel/console.h"

/* How long the last lines may wait for a host that does not read them. */
#define EXIT_FLUSH_STALL_MS 2000

void qemu_exit_try(enum qemu_exit_code code)
{
	/* QEMU exits at the write below: the console's ring would be lost
	 * (and the tests read a run's last lines). */
	console_flush(EXIT_FLUSH_STALL_MS);
	outl(QEMU_EXIT_PORT, code);
}

void qemu_exit(enum qemu_exit_code code)
{
	qemu_exit_try(code);
	/* Still here: no isa-debug-exit device. Stop for good. */
	for (;;) {
		irq_disable();
		__asm__ volatile("hlt");
	}
}
