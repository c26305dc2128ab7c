/*
 * uefi_entry: the kernel's side of the UEFI hand-off.
 *
 * The loader (boot/efi/loader.c, built separately with gnu-efi) fills a
 * struct boot_info in pages it allocated, leaves boot services and jumps to
 * kernel_entry64 (arch/x86_64/start64.S), which calls boot_uefi with it.
 * The counterpart of boot_pvh (boot/pvh/pvh.c).
 */
#include <string.h>
#include "boot/boot_info.h"
#include "kernel/kernel.h"
#include "kernel/memmap.h"
#include "kernel/panic.h"
#include "drivers/uart/uart16550.h"

/* Check and copy the loader's boot_info, normalize its memory map, and
 * start the kernel. Panics on a bad magic number. */
void boot_uefi(const struct boot_info *bi)
{
	uart_init();
	if (bi->magic != BOOT_INFO_MAGIC)
		panic("boot_uefi: boot_info magic %#lx, expected %#llx",
		      (unsigned long)bi->magic, BOOT_INFO_MAGIC);
	/* Copy before anything else: the loader's pages are usable RAM to us. */
	memcpy(&boot_info, bi, sizeof(boot_info));
	boot_info.cmdline[BOOT_CMDLINE_MAX - 1] = 0;
	if (boot_info.memmap_count > BOOT_MEMMAP_MAX)
		boot_info.memmap_count = BOOT_MEMMAP_MAX;
	memmap_normalize(boot_info.memmap, &boot_info.memmap_count, BOOT_MEMMAP_MAX);
	kernel_main(&boot_info);
}
