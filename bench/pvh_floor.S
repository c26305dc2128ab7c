/*
 * pvh_floor: the least a PVH kernel can be — QEMU's own floor for "boot to
 * ready". It writes one console line at once (COM1, which QEMU's serial
 * takes without set-up) and then exits through isa-debug-exit (status 33);
 * bench/bench.py times QEMU's start to that line, as it times blimp's start
 * to its `ready` line, on microvm: the same measure (a line read), not
 * QEMU's exit, which adds its teardown.
 *
 * Assembled with BLOCKS=N (as --defsym) it first runs N blocks of
 * straight-line code once each, every block different — load, add, store,
 * compare, branch, about the length of the average block blimp's boot
 * translates (bench/boot_blocks.py: 1846 blocks, 9857 instructions). Under
 * TCG a block costs its translation the first time it runs; this kernel does
 * no other work, so its time over the plain floor is what QEMU takes to
 * translate that much code and nothing else (pvh_blocks.elf).
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
	.ifdef BLOCKS
	.rept BLOCKS
	mov scratch, %eax
	add $1, %eax
	mov %eax, scratch
	cmp $0, %eax
	jne 1f                  /* always taken: each block ends here */
1:
	.endr
	.endif
	mov $line, %esi
	mov $0x3f8, %dx         /* COM1's transmit register */
1:	lodsb
	test %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:	movb $0x10, %al
	outb %al, $0xf4         /* isa-debug-exit: QEMU exits with (0x10 << 1) | 1 */
1:	hlt
	jmp 1b

	.section .rodata
line:	.asciz "floor\n"

	.data
scratch: .long 0
