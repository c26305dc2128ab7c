/*
 * mmio: loads and stores to device registers (memory-mapped I/O).
 *
 * In the kernel each is one volatile access of its width, inlined: the
 * same instruction a plain `*(volatile uint32_t *)p` compiles to. Code
 * that also runs on the host (drivers/virtio/virtio_pci_cap.c) goes through
 * these, and a host build (BLIMP_HOST) gets declarations only: the fuzz
 * harness defines them and plays the device, checking that every access
 * lands inside a register block the driver accepted. The 64-bit pair is
 * for the device fuzzer (fuzz/fz_exec.c), which tries every width the
 * transport allows and some it does not; drivers split 64-bit registers.
 */
#ifndef BLIMP_MMIO_H
#define BLIMP_MMIO_H

#include <stdint.h>

#ifdef BLIMP_HOST
uint8_t mmio_read8(const volatile void *p);
uint16_t mmio_read16(const volatile void *p);
uint32_t mmio_read32(const volatile void *p);
uint64_t mmio_read64(const volatile void *p);
void mmio_write8(volatile void *p, uint8_t v);
void mmio_write16(volatile void *p, uint16_t v);
void mmio_write32(volatile void *p, uint32_t v);
void mmio_write64(volatile void *p, uint64_t v);
#else
static inline uint8_t mmio_read8(const volatile void *p) { return *(const volatile uint8_t *)p; }
static inline uint16_t mmio_read16(const volatile void *p) { return *(const volatile uint16_t *)p; }
static inline uint32_t mmio_read32(const volatile void *p) { return *(const volatile uint32_t *)p; }
static inline uint64_t mmio_read64(const volatile void *p) { return *(const volatile uint64_t *)p; }
static inline void mmio_write8(volatile void *p, uint8_t v) { *(volatile uint8_t *)p = v; }
static inline void mmio_write16(volatile void *p, uint16_t v) { *(volatile uint16_t *)p = v; }
static inline void mmio_write32(volatile void *p, uint32_t v) { *(volatile uint32_t *)p = v; }
static inline void mmio_write64(volatile void *p, uint64_t v) { *(volatile uint64_t *)p = v; }
#endif

#endif
