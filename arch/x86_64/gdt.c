/*
 * gdt: segments for long mode, and a TSS so a double fault gets a fresh stack.
 *
 * Long mode ignores segment bases and limits, but still needs a code segment
 * with the L bit, a data segment, and a TSS for the interrupt stack table:
 * without IST, a stack overflow that faults would fault again pushing the
 * exception frame, and the machine would reset with no message. The stacks
 * themselves, each with a guard page, are in stack.c.
 */
#include <stdint.h>
#include <string.h>
#include "interrupt.h"
#include "stack.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

static struct tss tss;
static uint64_t gdt[5];

#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_TSS 0x18

void gdt_init(void)
{
	uint64_t base = (uint64_t)(uintptr_t)&tss, limit = sizeof(tss) - 1;

	memset(&tss, 0, sizeof(tss));
	for (unsigned i = 1; i <= STACK_IST_COUNT; i++)
		tss.ist[i - 1] = stack_ist_top(i); /* IST1 #DF, IST2 NMI and #MC, IST3 #PF */
	tss.iomap_base = sizeof(tss);

	gdt[0] = 0;
	gdt[1] = 0x00af9a000000ffffULL; /* code: present, ring 0, long mode */
	gdt[2] = 0x00cf92000000ffffULL; /* data: present, writable */
	/* A 64-bit TSS descriptor takes two slots. */
	gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[4] = base >> 32;

	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) ptr = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };

	__asm__ volatile(
		"lgdt %0\n\t"
		"pushq %1\n\t"
		"leaq 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"lretq\n"
		"1:\n\t"
		"mov %2, %%ax\n\t"
		"mov %%ax, %%ds\n\t"
		"mov %%ax, %%es\n\t"
		"mov %%ax, %%ss\n\t"
		"xor %%eax, %%eax\n\t"
		"mov %%ax, %%fs\n\t"
		"mov %%ax, %%gs\n\t"
		"mov %3, %%ax\n\t"
		"ltr %%ax\n\t"
		:
		: "m"(ptr), "i"(GDT_KERNEL_CODE), "i"(GDT_KERNEL_DATA), "i"(GDT_TSS)
		: "rax", "memory");
}
