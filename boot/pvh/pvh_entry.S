/*
 * pvh_entry.S: the way in from `qemu -kernel blimp.elf`.
 *
 * QEMU finds the Xen PVH note below, loads the image at its physical
 * addresses and starts the CPU at pvh_start32 in 32-bit protected mode with
 * paging off and %ebx pointing at struct hvm_start_info. Long mode needs
 * paging, so this builds throw-away page tables identity-mapping the first
 * 4 GiB with 2 MiB pages (enough for the image, the start info, the memory
 * map and the local/IO APICs), switches to long mode, and joins the 64-bit
 * path shared with UEFI in arch/x86_64/start64.S.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.pvh, "a"
	.align 4
	.long 4                       /* name size: "Xen\0" */
	.long 4                       /* desc size */
	.long XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_start32

	.section .text.boot, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	mov %ebx, %edi                /* keep hvm_start_info; %edi survives to 64-bit */

	lgdt early_gdt_ptr

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD[0..3]; each PD maps 1 GiB in 2 MiB pages. */
	mov $early_pml4, %eax
	mov $early_pdpt, %ebx
	or $3, %ebx                   /* present | writable */
	mov %ebx, (%eax)

	mov $early_pdpt, %eax
	mov $early_pd, %ebx
	or $3, %ebx
	mov $4, %ecx
1:	mov %ebx, (%eax)
	add $8, %eax
	add $4096, %ebx
	loop 1b

	mov $early_pd, %eax
	mov $0x83, %ebx               /* present | writable | 2 MiB page */
	xor %edx, %edx                /* high half of each entry (0 below 4 GiB) */
	mov $2048, %ecx
2:	mov %ebx, (%eax)
	mov %edx, 4(%eax)
	add $8, %eax
	add $0x200000, %ebx
	loop 2b

	mov %cr4, %eax
	or $(1 << 5), %eax            /* PAE */
	mov %eax, %cr4
	mov $early_pml4, %eax
	mov %eax, %cr3
	mov $0xC0000080, %ecx         /* EFER */
	rdmsr
	or $(1 << 8), %eax            /* LME */
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax          /* PG | PE */
	mov %eax, %cr0
	ljmp $0x08, $pvh_start64

	.code64
pvh_start64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %eax, %eax
	mov %ax, %fs
	mov %ax, %gs
	mov %edi, %edi                /* zero-extend hvm_start_info */
	lea boot_pvh(%rip), %rsi      /* C function start64 calls with %rdi */
	jmp start64_common

	/* A minimal GDT for the switch; arch/x86_64/gdt.c installs the real one. */
	.section .rodata
	.align 16
early_gdt:
	.quad 0
	.quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff      /* 0x10: data */
early_gdt_end:
early_gdt_ptr:
	.word early_gdt_end - early_gdt - 1
	.long early_gdt

	.section .bss
	.align 4096
early_pml4: .skip 4096
early_pdpt: .skip 4096
early_pd:   .skip 4096 * 4
