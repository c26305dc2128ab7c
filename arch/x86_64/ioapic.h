/*
 * ioapic: routing device interrupt lines (GSIs) to CPU vectors.
 *
 * ISA lines (the serial port's IRQ 4) may be rewired by ACPI interrupt source
 * overrides; PCI INTx lines are level-triggered (QEMU's ACPI describes them
 * active-high, and its IOAPIC ignores polarity).
 */
#ifndef BLIMP_IOAPIC_H
#define BLIMP_IOAPIC_H

#include <stdint.h>
#include <stdbool.h>

/* Find the IOAPICs from ACPI and mask every line. Returns 0 or -ENODEV. */
int ioapic_init(void);
bool ioapic_present(void);

/* Route `gsi` to `vector` on this CPU and unmask it. */
int ioapic_route_gsi(uint32_t gsi, int vector, bool level, bool active_low);
int ioapic_route_isa_irq(uint8_t irq, int vector);
void ioapic_mask_gsi(uint32_t gsi, bool masked);

/* Mask the legacy 8259 PICs (after moving them off the exception vectors). */
void pic_disable(void);

#endif
