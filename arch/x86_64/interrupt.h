/*
 * interrupt: the IDT, CPU exceptions, and handlers for device interrupts.
 *
 * Vector plan:
 *   0x00-0x1f  CPU exceptions: fatal, reported in full (exception_report),
 *              but for page faults the virtual-memory system claims
 *   0x20-0x2f  the 8259 PICs' range; they are masked, so only spurious ones land
 *   0x30-0xef  device interrupts (IOAPIC lines, MSI-X), handed out by irq_alloc_vector
 *   0xf0       LAPIC timer
 *   0xff       LAPIC spurious
 *
 * A device handler runs with interrupts off and must do the minimum (read and
 * acknowledge the device, queue work); the end-of-interrupt to the LAPIC is
 * sent by the dispatcher after the handler returns.
 *
 * arch/ calls into kernel/ only through the base: console, event, work,
 * panic and clock (kernel/console.h has the cycles this makes, on purpose),
 * plus kernel/addr.h's address rule and kernel/acpi.h's tables for the
 * IOAPIC. Drivers and the shell allocate vectors here; nothing here calls
 * them back except through the handlers they install.
 */
#ifndef BLIMP_INTERRUPT_H
#define BLIMP_INTERRUPT_H

#include <stdbool.h>
#include <stdint.h>

struct interrupt_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

#define VECTOR_FIRST_DEVICE 0x30
#define VECTOR_LAST_DEVICE 0xef
#define VECTOR_LAPIC_TIMER 0xf0
#define VECTOR_SPURIOUS 0xff

typedef void (*irq_handler_fn)(void *ctx);

/* Install the GDT (with a TSS naming the interrupt stacks of stack.h) and
 * the IDT. */
void gdt_init(void);
void idt_init(void);

/* Hand out a free device vector; returns it, or -ENOSPC when none is left. */
int irq_alloc_vector(void);

/* Run fn(ctx) when `vector` fires. Returns 0, -EINVAL or -EBUSY. */
int irq_set_handler(int vector, irq_handler_fn fn, void *ctx);

/* How many times each vector has fired (for the shell and tests). */
uint64_t irq_count(int vector);

/*
 * A page fault goes to `fn` first (kernel/vm.c). It runs on the page-fault
 * stack with interrupts off; it returns true if it dealt with the fault
 * (mapped the page, or changed f->rip to carry on elsewhere), false to have
 * it reported as the bug it then is. One handler; NULL removes it.
 */
typedef bool (*page_fault_fn)(struct interrupt_frame *f, uint64_t cr2);
void page_fault_set_handler(page_fault_fn fn);

/* Called from isr.S for every vector. */
void interrupt_dispatch(struct interrupt_frame *f);

#endif
