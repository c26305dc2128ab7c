/*
 * kernel: the entry into C shared by both boot paths, and the boot facts
 * every subsystem may read.
 */
#ifndef BLIMP_KERNEL_H
#define BLIMP_KERNEL_H

#include "boot/boot_info.h"

/* The kernel's own copy of what the boot path handed over (normalized). */
extern struct boot_info boot_info;

/* Linker-script symbols: the image occupies [_kernel_start, _kernel_end). */
extern char _kernel_start[], _kernel_end[];

/* Bring the machine up and run the mode the command line asks for. */
__attribute__((noreturn)) void kernel_main(void);

/* Called by the entry code with the boot path's own data. */
__attribute__((noreturn)) void boot_pvh(const void *hvm_start_info);
__attribute__((noreturn)) void boot_uefi(const struct boot_info *bi);

/* "pvh" or "uefi". */
const char *boot_path_name(void);

#endif
