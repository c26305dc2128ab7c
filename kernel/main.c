/*
 * main: bring the machine up, in an order where each step only needs the
 * ones before it, then run what the command line asks for.
 *
 *   serial -> GDT/IDT -> clock (TSC at boot) -> command line -> bootmem
 *   -> page tables -> ACPI -> clock calibration -> interrupt controllers
 *   -> power button -> devices -> page cache (vm.cache=)
 *   -> shell -> "ready" -> kernel_loop
 */
#include <stdio.h>
#include <string.h>
#include "kernel.h"
#include "bootmem.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "heap.h"
#include "addr.h"
#include "memmap.h"
#include "fuzz/devfuzz.h"
#include "mm.h"
#include "pagecache.h"
#include "acpi.h"
#include "panic.h"
#include "power.h"
#include "shell.h"
#include "swap.h"
#include "work.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/interrupt.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "arch/x86_64/stack.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_mmio.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/balloon.h"
#include "drivers/virtio/blk.h"
#include "drivers/virtio/rng.h"

/* What the boot path handed over (boot/boot_info.h), for `mem` and the "ready" event. */
static const struct boot_info *boot;

CMDLINE_OPTION(fault, "fault",
	       "provoke a CPU exception at boot, to test the handler: pagefault|ud|gp|div|stack");

/* The machine-wide interrupt policy; main hands it to the console's owner
 * and to the virtio transport, which each also have their own reasons to
 * poll (no IOAPIC, virtio.irq=poll). */
CMDLINE_OPTION(irq, "irq", "poll devices and the console on a timer instead of using interrupts");

static bool irq_poll(void)
{
	const char *irq = cmdline_get("irq");
	return irq && strcmp(irq, "poll") == 0;
}

/* "pvh" or "uefi". */
static const char *boot_path_name(void)
{
	return boot->path == BOOT_PATH_UEFI ? "uefi" : "pvh";
}

/* Recurse until the stack runs into its guard page. The volatile bound
 * (never reached) keeps the compiler from proving the recursion infinite,
 * and the volatile frame keeps it from turning it into a loop. */
static volatile uint64_t recurse_limit = UINT64_MAX;
static uint64_t recurse(uint64_t depth)
{
	volatile uint8_t frame[256];
	frame[0] = (uint8_t)depth;
	if (depth == recurse_limit)
		return frame[0];
	return recurse(depth + 1) + frame[0];
}

/* Provoke the exception named by fault=..., to prove the handler works. */
static void provoke_fault(const char *kind)
{
	printf("provoking a CPU exception: %s\n", kind);
	if (strcmp(kind, "pagefault") == 0) {
		*(volatile int *)0 = 1; /* page 0 is never mapped */
	} else if (strcmp(kind, "ud") == 0) {
		__asm__ volatile("ud2");
	} else if (strcmp(kind, "gp") == 0) {
		/* A non-canonical address faults with #GP, not #PF. */
		(void)*(volatile uint64_t *)0x8000000000000000ULL;
	} else if (strcmp(kind, "div") == 0) {
		/* In assembly: the compiler turns 1/x into a compare, no divide. */
		__asm__ volatile("xor %%edx, %%edx; xor %%ecx, %%ecx; mov $1, %%eax; div %%ecx"
				 : : : "eax", "ecx", "edx");
	} else if (strcmp(kind, "stack") == 0) {
		printf("recursed %lu times\n", (unsigned long)recurse(0)); /* never printed */
	} else {
		printf("fault=%s: unknown kind (pagefault|ud|gp|div|stack)\n", kind);
	}
}

static void print_memmap(void)
{
	for (uint32_t i = 0; i < boot->memmap_count; i++) {
		const struct boot_mem_range *r = &boot->memmap[i];
		printf("  %016lx-%016lx %-12s %8lu KiB\n", (unsigned long)r->base,
		       (unsigned long)(r->base + r->size - 1), memmap_type_name(r->type),
		       (unsigned long)(r->size >> 10));
	}
}

static uint64_t usable_above_4g(void)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < boot->memmap_count; i++) {
		const struct boot_mem_range *r = &boot->memmap[i];
		if (r->type == BOOT_MEM_USABLE && r->base + r->size > (4ULL << 30))
			total += r->base + r->size - (r->base > (4ULL << 30) ? r->base : (4ULL << 30));
	}
	return total;
}

void kernel_main(const struct boot_info *bi)
{
	boot = bi;
	setvbuf(stdout, NULL, _IONBF, 0); /* console text and events stay in order */
	gdt_init();
	idt_init();
	clock_init();
	printf("\nblimp: booted by %s, command line \"%s\"\n", boot_path_name(), boot->cmdline);
	cmdline_parse(boot->cmdline);

	if (bootmem_init(boot, (uint64_t)(uintptr_t)_kernel_end) < 0)
		panic("kernel_main: no usable RAM above the kernel image (ends at %p)", _kernel_end);
	paging_set_frame_provider(bootmem_alloc_frame, NULL);
	int rc = paging_init(boot);
	if (rc < 0)
		panic("kernel_main: paging_init failed (%d)", rc);
	rc = stack_guards_init();
	if (rc < 0)
		panic("kernel_main: stack_guards_init failed (%d)", rc);
	mm_init(boot);

	if (acpi_init(boot->rsdp) < 0)
		printf("acpi: no tables; IOAPICs only from an MP table, if the firmware wrote one\n");
	/* The clock's window opens (after ACPI: it says where the HPET and
	 * the PM timer are) and the LAPIC timer counts through it; the work
	 * until it closes finds hardware and uses no time, so the window
	 * costs the boot nothing of its own when that work takes 2 ms. */
	lapic_init();
	clock_calibrate_start();
	pic_disable();
	if (ioapic_init() < 0)
		printf("ioapic: none found; devices will be polled\n");
	if (pci_scan() == 0)
		printf("pci: nothing answers at 0xcf8/0xcfc, not even a host bridge: a machine "
		       "without PCI (microvm); no PCI devices\n");
	virtio_pci_probe(irq_poll());
	virtio_mmio_probe(irq_poll());
	clock_calibrate();
	lapic_timer_calibrate();
	irq_enable();
	power_init(irq_poll()); /* its waits are timed: after the clock */
	if (!devfuzz_start())
		balloon_init();
	rng_init();
	blk_init();
	swap_boot();
	pagecache_init();

	const char *fault = cmdline_get("fault");
	if (fault)
		provoke_fault(fault);

	uint64_t usable = memmap_total(boot->memmap, boot->memmap_count, BOOT_MEM_USABLE);
	char esc[BOOT_CMDLINE_MAX * 2];
	printf("blimp: %lu MiB usable RAM (%lu MiB above 4 GiB), TSC %lu MHz (by %s)\n",
	       (unsigned long)(usable >> 20), (unsigned long)(usable_above_4g() >> 20),
	       (unsigned long)(clock_tsc_hz() / 1000000), clock_ruler());
	event_emit("ready", "\"boot\":\"%s\",\"clock\":\"%s\",\"mem_usable\":%lu,\"mem_above_4g\":%lu,"
		   "\"memmap_entries\":%u,\"cmdline\":\"%s\"",
		   boot_path_name(), clock_ruler(), (unsigned long)usable, (unsigned long)usable_above_4g(),
		   boot->memmap_count, event_json_escape(esc, sizeof(esc), boot->cmdline));
	shell_start(irq_poll());
	kernel_loop();
}

static int cmd_mem(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	uint64_t usable = memmap_total(boot->memmap, boot->memmap_count, BOOT_MEM_USABLE);
	uint64_t bm_start, bm_end;
	bootmem_used(&bm_start, &bm_end);
	printf("memory map (%s):\n", boot_path_name());
	print_memmap();
	printf("usable RAM   %lu KiB (%lu MiB), %lu MiB above 4 GiB\n", (unsigned long)(usable >> 10),
	       (unsigned long)(usable >> 20), (unsigned long)(usable_above_4g() >> 20));
	printf("kernel image %p-%p (%lu KiB)\n", _kernel_start, _kernel_end,
	       (unsigned long)((_kernel_end - _kernel_start) >> 10));
	printf("boot memory  %#lx-%#lx (%lu KiB, page tables: %lu frames)\n", (unsigned long)bm_start,
	       (unsigned long)bm_end, (unsigned long)((bm_end - bm_start) >> 10),
	       (unsigned long)paging_table_frames());
	printf("heap         %lu KiB in use (frames from the allocator, mapped at %#llx)\n",
	       (unsigned long)(heap_used() >> 10), HEAP_VIRT_BASE);
	event_emit("mem", "\"mem_usable\":%lu,\"mem_above_4g\":%lu,\"kernel_bytes\":%lu",
		   (unsigned long)usable, (unsigned long)usable_above_4g(),
		   (unsigned long)(_kernel_end - _kernel_start));
	return 0;
}
SHELL_COMMAND(mem, "", "memory map and totals", cmd_mem);
