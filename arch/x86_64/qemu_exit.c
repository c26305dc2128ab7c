/*
 * qemu_exit: the end of every run (see qemu_exit.h for the table of codes).
 */
#include "qemu_exit.h"
#include "cpu.h"

void qemu_exit(enum qemu_exit_code code)
{
	outl(QEMU_EXIT_PORT, code);
	/* Still here: no isa-debug-exit device. Stop for good. */
	for (;;) {
		irq_disable();
		__asm__ volatile("hlt");
	}
}
