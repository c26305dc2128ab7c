/*
 * cpu: the handful of x86-64 instructions C cannot express.
 * Port I/O, control registers, MSRs, CPUID, interrupt flag, halting.
 */
#ifndef BLIMP_CPU_H
#define BLIMP_CPU_H

#include <stdint.h>
#include <stdbool.h>

/* A host build (BLIMP_HOST) gets port I/O as declarations only: a test
 * defines them and plays the device (tests/unit/test_virtio_legacy.c for
 * drivers/virtio/virtio_pci_legacy.c), as mmio.h does for registers. */
#ifdef BLIMP_HOST
void outb(uint16_t port, uint8_t v);
void outw(uint16_t port, uint16_t v);
void outl(uint16_t port, uint32_t v);
uint8_t inb(uint16_t port);
uint16_t inw(uint16_t port);
uint32_t inl(uint16_t port);
#else
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
#endif

static inline uint64_t read_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t read_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void write_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }
/* Zero a 4 KiB page with 16-byte SSE stores. memset's `rep stos` is one
 * instruction to the CPU but, under QEMU's TCG, 512 trips through the
 * translator's loop: zeroing a page that way cost most of a minor fault. */
static inline void page_zero(void *page)
{
	__asm__ volatile("pxor %%xmm0, %%xmm0\n"
			 "1: movdqa %%xmm0, (%0)\n"
			 "movdqa %%xmm0, 16(%0)\n"
			 "movdqa %%xmm0, 32(%0)\n"
			 "movdqa %%xmm0, 48(%0)\n"
			 "add $64, %0\n"
			 "dec %1\n"
			 "jnz 1b"
			 : "+r"(page), "+r"((uint64_t){ 64 })
			 :
			 : "xmm0", "memory", "cc");
}

static inline void invlpg(uint64_t va) { __asm__ volatile("invlpg (%0)" : : "r"(va) : "memory"); }

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void irq_enable(void) { __asm__ volatile("sti" : : : "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" : : : "memory"); }

static inline bool irq_enabled(void)
{
	uint64_t flags;
	__asm__ volatile("pushfq; popq %0" : "=r"(flags));
	return flags & (1 << 9);
}

/* Disable interrupts and return whether they were on, for irq_restore. */
static inline bool irq_save(void)
{
	bool was = irq_enabled();
	irq_disable();
	return was;
}

static inline void irq_restore(bool was)
{
	if (was)
		irq_enable();
}

/*
 * Enable interrupts and halt in one step: `sti` takes effect after the next
 * instruction, so an interrupt that arrives between the caller's last check
 * and the halt still wakes us instead of being slept through.
 */
static inline void cpu_idle(void) { __asm__ volatile("sti; hlt" : : : "memory"); }

static inline void cpu_relax(void) { __asm__ volatile("pause"); }

#define MSR_EFER 0xC0000080
#define MSR_APIC_BASE 0x1B

#endif
