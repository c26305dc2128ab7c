/*
 * pvh: turn QEMU's hvm_start_info into the kernel's boot_info.
 *
 * The layout below is the PVH boot ABI (version 1 adds the memory map):
 * QEMU fills it and passes its address in %ebx. Everything in it sits below
 * 4 GiB, which the early page tables of pvh_entry.S map.
 */
#include <stdint.h>
#include <string.h>
#include "kernel/kernel.h"
#include "kernel/memmap.h"
#include "kernel/panic.h"
#include "kernel/addr.h"
#include "drivers/uart/uart16550.h"

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
	if (si->cmdline_paddr)
		strncpy(boot_info.cmdline, phys_to_virt(si->cmdline_paddr), BOOT_CMDLINE_MAX - 1);

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
	kernel_main();
}
