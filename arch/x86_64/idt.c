/*
 * idt: the interrupt descriptor table, fatal CPU exceptions, device handlers.
 *
 * A CPU exception in blimp is a bug, with one exception: a page fault the
 * virtual-memory system claims (kernel/vm.c: a workload touching its own
 * region) goes to the handler it installed. Everything else is reported is as complete as we can make it — name,
 * vector, error code, RIP, CR2 and every register, plus an event line for
 * the host tools — and the machine stops with QEMU_EXIT_EXCEPTION.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "interrupt.h"
#include "cpu.h"
#include "lapic.h"
#include "qemu_exit.h"
#include "stack.h"
#include "drivers/uart/uart16550.h"
#include "kernel/console.h"
#include "kernel/event.h"

struct idt_entry {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t zero;
} __attribute__((packed));

extern const uint64_t isr_stub_table[256];
static struct idt_entry idt[256];

struct irq_slot {
	irq_handler_fn fn;
	void *ctx;
	uint64_t count;
};
static struct irq_slot irq_slots[256];
static page_fault_fn page_fault_handler;
static int next_vector = VECTOR_FIRST_DEVICE;

static const char *const exception_names[32] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 FPU error", "alignment check", "machine check",
	"SIMD floating point", "virtualization", "control protection", "reserved",
	"reserved", "reserved", "reserved", "reserved", "reserved", "hypervisor injection",
	"VMM communication", "security", "reserved",
};

static void idt_set(int vec, uint64_t handler, int ist)
{
	idt[vec].offset_low = handler & 0xffff;
	idt[vec].selector = 0x08;
	idt[vec].ist = ist;
	idt[vec].type_attr = 0x8e; /* present, ring 0, 64-bit interrupt gate */
	idt[vec].offset_mid = (handler >> 16) & 0xffff;
	idt[vec].offset_high = handler >> 32;
	idt[vec].zero = 0;
}

/* Not vectorized: GCC turns the loop into 290 SSE instructions, which TCG
 * translates once at every boot for 0.5 ms (microvm, 2026-12-02); the
 * plain loop is a few instructions. */
__attribute__((optimize("no-tree-vectorize"))) void idt_init(void)
{
	for (int v = 0; v < 256; v++)
		idt_set(v, isr_stub_table[v], 0);
	idt_set(2, isr_stub_table[2], STACK_IST_NMI_MC);
	idt_set(8, isr_stub_table[8], STACK_IST_DOUBLE_FAULT);
	/* A stack overflow is a page fault in a guard page: its handler needs
	 * a stack other than the one that overflowed. */
	idt_set(14, isr_stub_table[14], STACK_IST_PAGE_FAULT);
	idt_set(18, isr_stub_table[18], STACK_IST_NMI_MC);

	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) ptr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ volatile("lidt %0" : : "m"(ptr));
}

int irq_alloc_vector(void)
{
	if (next_vector > VECTOR_LAST_DEVICE)
		return -ENOSPC;
	return next_vector++;
}

int irq_set_handler(int vector, irq_handler_fn fn, void *ctx)
{
	if (vector < 32 || vector > 255)
		return -EINVAL;
	if (irq_slots[vector].fn && fn)
		return -EBUSY;
	bool was = irq_save();
	irq_slots[vector].fn = fn;
	irq_slots[vector].ctx = ctx;
	irq_restore(was);
	return 0;
}

uint64_t irq_count(int vector)
{
	return (vector >= 0 && vector < 256) ? irq_slots[vector].count : 0;
}

/* Print a line straight to the UART: the C library may be what faulted. */
static void fatal_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fatal_line(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	uart_write(buf, n);
}

static void exception_report(const struct interrupt_frame *f)
{
	/* An exception while reporting one (the report's own code faulted):
	 * the IST stack starts over at its top, so reporting again would loop
	 * for ever. Say so in as few instructions as possible and stop. */
	static bool reporting;
	if (reporting) {
		static const char msg[] = "\n*** CPU exception while reporting a CPU exception\n";
		uart_write(msg, sizeof(msg) - 1);
		qemu_exit(QEMU_EXIT_EXCEPTION);
	}
	reporting = true;

	uint64_t cr2 = read_cr2();
	const char *name = exception_names[f->vector];
	const char *overflowed = f->vector == 14 ? stack_guard_owner(cr2) : NULL;

	console_sync(); /* queued output first, then the report straight out */

	fatal_line("\n*** CPU exception %lu (%s), error code %#lx\n", f->vector, name, f->error_code);
	if (overflowed)
		fatal_line("*** stack overflow: the %s ran into its guard page (CR2 %#lx)\n",
			   overflowed, cr2);
	fatal_line("    RIP %016lx  CS %04lx  RFLAGS %016lx\n", f->rip, f->cs, f->rflags);
	fatal_line("    RSP %016lx  SS %04lx  CR2 %016lx  CR3 %016lx\n", f->rsp, f->ss, cr2, read_cr3());
	fatal_line("    RAX %016lx  RBX %016lx  RCX %016lx  RDX %016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
	fatal_line("    RSI %016lx  RDI %016lx  RBP %016lx  R8  %016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
	fatal_line("    R9  %016lx  R10 %016lx  R11 %016lx  R12 %016lx\n", f->r9, f->r10, f->r11, f->r12);
	fatal_line("    R13 %016lx  R14 %016lx  R15 %016lx\n", f->r13, f->r14, f->r15);
	if (f->vector == 14)
		fatal_line("    page fault: %s of %s address, %s mode%s\n",
			   (f->error_code & 2) ? "write" : "read",
			   (f->error_code & 1) ? "a protected" : "an unmapped",
			   (f->error_code & 4) ? "user" : "kernel",
			   (f->error_code & 16) ? ", instruction fetch" : "");
	char extra[64] = "";
	if (overflowed)
		snprintf(extra, sizeof(extra), ",\"stack_overflow\":\"%s\"", overflowed);
	event_emit("exception", "\"vector\":%lu,\"name\":\"%s\",\"error_code\":%lu,"
		   "\"rip\":\"%#lx\",\"cr2\":\"%#lx\"%s", f->vector, name, f->error_code, f->rip, cr2,
		   extra);
	qemu_exit(QEMU_EXIT_EXCEPTION);
}

void page_fault_set_handler(page_fault_fn fn)
{
	page_fault_handler = fn;
}

void interrupt_dispatch(struct interrupt_frame *f)
{
	int v = (int)f->vector;

	if (v == 14 && page_fault_handler && page_fault_handler(f, read_cr2()))
		return;
	if (v < 32)
		exception_report(f);
	irq_slots[v].count++;
	if (v == VECTOR_SPURIOUS || (v >= 0x20 && v < 0x30))
		return; /* spurious LAPIC or masked-PIC interrupt: no EOI */
	if (irq_slots[v].fn)
		irq_slots[v].fn(irq_slots[v].ctx);
	lapic_eoi();
}
