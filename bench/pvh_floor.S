/*
 * pvh_floor: the least a PVH kernel can be — QEMU's own floor for "boot to
 * ready". Its only instruction of note writes to isa-debug-exit, so QEMU
 * exits (status 33) the moment it enters the guest; bench/bench.py times
 * QEMU's start to that exit beside blimp's start to `ready` on microvm.
 *
 * The note is what QEMU's -kernel looks for (XEN_ELFNOTE_PHYS32_ENTRY, 18:
 * name "Xen", the 32-bit entry); QEMU enters in 32-bit protected mode.
 */
	.section .note.Xen, "a"
	.p2align 2
	.long 4, 4, 18          /* name size, descriptor size, type */
	.asciz "Xen"
	.long _start

	.text
	.code32
	.globl _start
_start:
	movb $0x10, %al
	outb %al, $0xf4         /* isa-debug-exit: QEMU exits with (0x10 << 1) | 1 */
1:	hlt
	jmp 1b
