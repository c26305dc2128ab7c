/*
 * isr.S: one entry stub per interrupt vector, and the common path.
 *
 * Every stub leaves the stack looking the same (an error code, real or a 0
 * the stub pushed, then the vector number) so one C function,
 * interrupt_dispatch(), sees a struct interrupt_frame for all 256 vectors.
 * The common path also saves the FPU/SSE state with fxsave: newlib and the
 * compiler use SSE registers freely, and an interrupt handler must not
 * scribble over the state of the code it interrupted.
 */
	.text
	.code64

/* Vectors for which the CPU pushes an error code itself. */
.macro isr_stub vec
	.align 16
isr_stub_\vec:
	.if (\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	.else
	pushq $0
	.endif
	pushq $\vec
	jmp isr_common
.endm

.altmacro
.set vec, 0
.rept 256
	isr_stub %vec
	.set vec, vec + 1
.endr

isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	mov %rsp, %rdi                /* struct interrupt_frame * */
	mov %rsp, %rbx                /* callee-saved: the frame survives the call */
	sub $512, %rsp
	and $~15, %rsp                /* fxsave needs 16-byte alignment, so does the ABI */
	fxsave (%rsp)
	call interrupt_dispatch
	fxrstor (%rsp)
	mov %rbx, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	add $16, %rsp                 /* vector and error code */
	iretq

/* The stubs' addresses, for idt.c. */
.macro stub_addr vec
	.quad isr_stub_\vec
.endm
	.section .rodata
	.align 8
	.globl isr_stub_table
isr_stub_table:
.set vec, 0
.rept 256
	stub_addr %vec
	.set vec, vec + 1
.endr
