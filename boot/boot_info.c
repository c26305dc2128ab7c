/*
 * boot_info: the storage of the kernel's copy of the hand-off. Both entry
 * points (boot/pvh/pvh.c, boot/uefi_entry.c) fill it before kernel_main.
 */
#include "boot_info.h"

struct boot_info boot_info;
