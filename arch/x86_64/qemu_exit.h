/*
 * qemu_exit: leaving QEMU with a status that says how the run ended.
 *
 * QEMU's isa-debug-exit device (iobase 0xf4) turns a write of V into the
 * process exit status (V << 1) | 1. A status of 0 is impossible and 1 is what
 * QEMU itself returns on its own errors, so blimp's codes start at 0x10.
 *
 *   value  QEMU exit status  meaning
 *   0x10   33                success (poweroff, a self-test passed)
 *   0x11   35                a test or self-check failed
 *   0x12   37                kernel panic
 *   0x13   39                CPU exception
 *   0x14   41                the boot path failed (loader could not start the kernel,
 *                            or the command line is too long for boot_info)
 *
 * Without the device (-device isa-debug-exit absent, as under libvirt) the
 * write is ignored. The device ends QEMU inside the write itself, so a CPU
 * that reaches the next instruction has proved the device absent: that is
 * how blimp detects it (qemu_exit_try returns). qemu_exit then halts
 * forever; a clean shutdown (kernel/power.c) goes on to ACPI S5 instead.
 */
#ifndef BLIMP_QEMU_EXIT_H
#define BLIMP_QEMU_EXIT_H

#define QEMU_EXIT_PORT 0xf4

enum qemu_exit_code {
	QEMU_EXIT_SUCCESS = 0x10,
	QEMU_EXIT_FAILURE = 0x11,
	QEMU_EXIT_PANIC = 0x12,
	QEMU_EXIT_EXCEPTION = 0x13,
	QEMU_EXIT_BOOT_FAILED = 0x14,
};

/* Ask QEMU to exit with `code`; halts forever if the device is absent. */
__attribute__((noreturn)) void qemu_exit(enum qemu_exit_code code);

/* Flush the console and ask QEMU to exit with `code`; returns only if
 * there is no isa-debug-exit device. */
void qemu_exit_try(enum qemu_exit_code code);

#endif
