/*
 * pvh: turn QEMU's hvm_start_info into the kernel's boot_info.
 *
 * The layout below is the PVH boot ABI (version 1 adds the memory map):
 * QEMU fills it and passes its address in %ebx. Everything in it sits below
 * 4 GiB, which the early page tables of pvh_entry.S map.
 *
 * A command line longer than boot_info holds is refused, not truncated (a
 * cut `reserve=1024M` would be `reserve=10`), as the UEFI loader refuses it:
 * a message, a boot_failed event, and QEMU exits with QEMU_EXIT_BOOT_FAILED.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "boot/boot_info.h"
#include "kernel/kernel.h"
#include "kernel/event.h"
#include "kernel/memmap.h"
#include "kernel/panic.h"
#include "kernel/addr.h"
#include "drivers/uart/uart16550.h"
#include "arch/x86_64/qemu_exit.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;   /* version >= 1 */
	uint32_t memmap_entries; /* version >= 1 */
	uint32_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* E820 numbering, as boot_mem_type */
	uint32_t reserved;
};

/* Stop the boot: a command line of `len` characters does not fit boot_info. */
__attribute__((noreturn)) static void refuse_cmdline(size_t len)
{
	printf("\nblimp: error: the command line is %lu characters; boot_info holds at most %d\n",
	       (unsigned long)len, BOOT_CMDLINE_MAX - 1);
	event_emit("boot_failed", "\"boot\":\"pvh\",\"why\":\"command line too long\","
		   "\"cmdline_len\":%lu,\"cmdline_max\":%d", (unsigned long)len, BOOT_CMDLINE_MAX - 1);
	qemu_exit(QEMU_EXIT_BOOT_FAILED);
}

void boot_pvh(const void *start_info)
{
	const struct hvm_start_info *si = start_info;

	uart_init();
	if (si->magic != HVM_START_MAGIC)
		panic("boot_pvh: start info magic %#x, expected %#x", si->magic, HVM_START_MAGIC);
	if (si->version < 1 || si->memmap_paddr == 0)
		panic("boot_pvh: start info version %u has no memory map", si->version);

	memset(&boot_info, 0, sizeof(boot_info));
	boot_info.magic = BOOT_INFO_MAGIC;
	boot_info.path = BOOT_PATH_PVH;
	boot_info.rsdp = si->rsdp_paddr;
	if (si->cmdline_paddr) {
		const char *cmdline = phys_to_virt(si->cmdline_paddr);
		size_t len = strnlen(cmdline, 1 << 20); /* QEMU's -append, NUL-terminated */
		while (len > 0 && cmdline[len - 1] == ' ')
			len--; /* as the UEFI loader: trailing blanks do not count */
		if (len > BOOT_CMDLINE_MAX - 1)
			refuse_cmdline(len);
		memcpy(boot_info.cmdline, cmdline, len);
		boot_info.cmdline[len] = 0;
	}

	const struct hvm_memmap_entry *e = phys_to_virt(si->memmap_paddr);
	uint32_t n = si->memmap_entries;
	if (n > BOOT_MEMMAP_MAX)
		n = BOOT_MEMMAP_MAX; /* QEMU gives about ten */
	for (uint32_t i = 0; i < n; i++) {
		boot_info.memmap[i].base = e[i].addr;
		boot_info.memmap[i].size = e[i].size;
		boot_info.memmap[i].type = e[i].type;
	}
	boot_info.memmap_count = n;
	memmap_normalize(boot_info.memmap, &boot_info.memmap_count, BOOT_MEMMAP_MAX);
	kernel_main(&boot_info);
}
