/*
 * boot_info: what a boot path hands the kernel.
 *
 * Both ways in (PVH from `qemu -kernel`, and the UEFI loader in boot/efi) fill
 * this one structure, so the kernel never needs to know which firmware ran.
 * It is plain data with fixed-size arrays: the UEFI loader builds it in pages
 * it allocated, the kernel copies it into its own storage before it reuses any
 * memory, and no pointer in it outlives the copy.
 *
 * Memory range types follow the E820 numbering that PVH already uses, so the
 * PVH path copies types through and the UEFI path translates its own.
 */
#ifndef BLIMP_BOOT_INFO_H
#define BLIMP_BOOT_INFO_H

#include <stdint.h>

#define BOOT_INFO_MAGIC 0x746f6f62706d696cULL /* "limpboot" little-endian */

enum boot_path {
	BOOT_PATH_PVH = 1,  /* qemu -kernel, hvm_start_info */
	BOOT_PATH_UEFI = 2, /* OVMF -> BOOTX64.EFI -> kernel */
};

enum boot_mem_type {
	BOOT_MEM_USABLE = 1,       /* RAM the kernel may use (its own image included) */
	BOOT_MEM_RESERVED = 2,     /* firmware, MMIO, anything not ours */
	BOOT_MEM_ACPI_RECLAIM = 3, /* ACPI tables; RAM once they are read */
	BOOT_MEM_ACPI_NVS = 4,     /* firmware's ACPI storage: never touch */
	BOOT_MEM_UNUSABLE = 5,     /* RAM with errors */
};

struct boot_mem_range {
	uint64_t base; /* physical address, bytes */
	uint64_t size; /* bytes */
	uint32_t type; /* enum boot_mem_type */
	uint32_t reserved;
};

#define BOOT_MEMMAP_MAX 256
#define BOOT_CMDLINE_MAX 1024

struct boot_info {
	uint64_t magic;        /* BOOT_INFO_MAGIC */
	uint32_t path;         /* enum boot_path */
	uint32_t memmap_count; /* entries used in memmap[] */
	uint64_t rsdp;         /* physical address of the ACPI RSDP, 0 if none */
	char cmdline[BOOT_CMDLINE_MAX]; /* NUL-terminated, possibly empty */
	struct boot_mem_range memmap[BOOT_MEMMAP_MAX];
};

#ifdef BLIMP_KERNEL
/*
 * The kernel's side of the hand-off (boot/boot_info.c, boot/pvh/pvh.c,
 * boot/uefi_entry.c). The entry code (arch/x86_64/start64.S) calls one of
 * the two entry points with the boot path's own data; it fills boot_info,
 * normalized, and calls kernel_main(&boot_info).
 */

/* The kernel's own copy of what the boot path handed over. Owned by boot/:
 * written once by an entry point, read-only afterwards. The kernel passes
 * it down (kernel_main, mm_init, paging_init, bootmem_init). */
extern struct boot_info boot_info;

__attribute__((noreturn)) void boot_pvh(const void *hvm_start_info);
__attribute__((noreturn)) void boot_uefi(const struct boot_info *bi);
#endif

#endif
