/*
 * kernel: the entry into C shared by both boot paths, and the extent of the
 * kernel image.
 */
#ifndef BLIMP_KERNEL_H
#define BLIMP_KERNEL_H

#include "boot/boot_info.h"

/* Linker-script symbols: the image occupies [_kernel_start, _kernel_end). */
extern char _kernel_start[], _kernel_end[];

/* Bring the machine up from the boot path's (normalized) boot_info and run
 * the mode the command line asks for. Called by boot_pvh and boot_uefi. */
__attribute__((noreturn)) void kernel_main(const struct boot_info *bi);

#endif
