/*
 * stack: the boot stack, the interrupt stacks and the guard pages of every
 * kernel stack (see stack.h). start64.S takes the boot stack before any C
 * runs; nothing here runs until paging is up.
 */
#include <stddef.h>
#include "stack.h"
#include "paging.h"
#include "kernel/addr.h"

#define IST_STACK_SIZE 16384

/* Page-aligned, so each guard is a whole page of its own. */
struct guarded_stack {
	uint8_t guard[PAGE_SIZE];
	uint8_t stack[IST_STACK_SIZE];
} __attribute__((aligned(4096)));

static struct guarded_stack ist_stacks[STACK_IST_COUNT];

/* The boot stack: start64.S sets %rsp to boot_stack + STACK_BOOT_TOP. */
struct boot_stack {
	uint8_t guard[PAGE_SIZE];
	uint8_t stack[STACK_BOOT_SIZE];
} __attribute__((aligned(4096)));
_Static_assert(sizeof(struct boot_stack) == STACK_BOOT_TOP, "STACK_BOOT_TOP is the end of boot_stack");
struct boot_stack boot_stack;

static const char *const ist_names[STACK_IST_COUNT] = {
	"double-fault stack (IST1)", "NMI/machine-check stack (IST2)", "page-fault stack (IST3)",
};

uint64_t stack_ist_top(unsigned ist)
{
	if (ist < 1 || ist > STACK_IST_COUNT)
		return 0;
	return (uint64_t)(uintptr_t)(ist_stacks[ist - 1].stack + IST_STACK_SIZE);
}

int stack_guards_init(void)
{
	int rc = paging_unmap_range(virt_to_phys(boot_stack.guard), PAGE_SIZE);
	for (unsigned i = 0; rc == 0 && i < STACK_IST_COUNT; i++)
		rc = paging_unmap_range(virt_to_phys(ist_stacks[i].guard), PAGE_SIZE);
	return rc;
}

const char *stack_guard_owner(uint64_t addr)
{
	uint64_t g = (uint64_t)(uintptr_t)boot_stack.guard;
	if (addr >= g && addr < g + PAGE_SIZE)
		return "boot stack";
	for (unsigned i = 0; i < STACK_IST_COUNT; i++) {
		g = (uint64_t)(uintptr_t)ist_stacks[i].guard;
		if (addr >= g && addr < g + PAGE_SIZE)
			return ist_names[i];
	}
	return NULL;
}
