/*
 * start64.S: the 64-bit start shared by both boot paths.
 *
 * kernel_entry64 is the ELF entry point, where the UEFI loader jumps with
 * %rdi = struct boot_info * (UEFI's identity page tables still live, interrupts
 * off). The PVH path arrives at start64_common from boot/pvh/pvh_entry.S with
 * %rdi = hvm_start_info and %rsi = its C handler. Either way: take our own
 * stack, turn on SSE (newlib is compiled with it, so no C may run before),
 * and call the C handler, which never returns.
 */
#include "stack.h"

	.text
	.code64
	.globl kernel_entry64
kernel_entry64:
	cli
	cld
	lea boot_uefi(%rip), %rsi

	.globl start64_common
start64_common:
	lea boot_stack + STACK_BOOT_TOP(%rip), %rsp   /* arch/x86_64/stack.c */
	xor %ebp, %ebp

	mov %cr0, %rax
	and $~(1 << 2), %rax          /* clear EM: FPU/SSE instructions are real */
	or $(1 << 1), %rax            /* MP */
	mov %rax, %cr0
	mov %cr4, %rax
	or $(3 << 9), %rax            /* OSFXSR | OSXMMEXCPT */
	mov %rax, %cr4
	fninit

	call *%rsi
1:	cli
	hlt
	jmp 1b
