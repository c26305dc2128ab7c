/*
 * stack: the kernel's stacks, each with an unmapped guard page below it.
 *
 *   boot stack   64 KiB   everything but exceptions: boot, the kernel loop,
 *                         work items, shell commands, device interrupts
 *   IST1         16 KiB   double fault
 *   IST2         16 KiB   NMI, machine check
 *   IST3         16 KiB   page fault
 *
 *        higher addresses
 *   +------------------+ <- top (RSP starts here)
 *   |      stack       |    grows down
 *   +------------------+ <- bottom
 *   |   guard, 4 KiB   |    unmapped: a push past the bottom faults (#PF)
 *   +------------------+
 *
 * All live in the kernel image's .bss, so the allocator never hands out a
 * guard page and the balloon never maps one back. The page fault that an
 * overflow causes runs on IST3, a stack of its own: on the overflowed stack
 * the CPU could not push the exception frame, and a double fault (or a
 * silent reset) would follow instead of a report. The report names the
 * stack (stack_guard_owner).
 *
 * The boot stack is defined here too (stack.c); start64.S only points %rsp
 * at its top, so the entry depends on this module and not the other way.
 * This header is also read by start64.S: C only under !__ASSEMBLER__.
 */
#ifndef BLIMP_STACK_H
#define BLIMP_STACK_H

#define STACK_BOOT_SIZE (64 * 1024)
/* Offset of the boot stack's top in `boot_stack` (its guard page first). */
#define STACK_BOOT_TOP (4096 + STACK_BOOT_SIZE)

#ifndef __ASSEMBLER__
#include <stdint.h>

#define STACK_IST_DOUBLE_FAULT 1
#define STACK_IST_NMI_MC 2
#define STACK_IST_PAGE_FAULT 3
#define STACK_IST_COUNT 3

/* The top (initial RSP) of interrupt stack `ist`, 1..STACK_IST_COUNT, for
 * the TSS. */
uint64_t stack_ist_top(unsigned ist);

/* Unmap every stack's guard page in the direct map. Call once paging is up.
 * Returns 0 or the first error of paging_unmap_range. */
int stack_guards_init(void);

/* The name of the stack whose guard page holds `addr` ("boot stack", ...),
 * or NULL when it is in none. */
const char *stack_guard_owner(uint64_t addr);

#endif /* !__ASSEMBLER__ */
#endif
