/*
 * acpi: the few ACPI tables blimp reads — MADT (interrupt controllers),
 * MCFG (PCI Express ECAM), FADT (power management registers, PM timer),
 * HPET (a clock ruler, kernel/clock.c) and the DSDT's \_S5 sleep type and
 * virtio-mmio devices. Tables are firmware data: every length is checked
 * against the table that holds it before anything inside is read, and a
 * table that fails a check is reported and left out (boot goes on without
 * what it would have given).
 */
#ifndef BLIMP_ACPI_H
#define BLIMP_ACPI_H

#include <stdint.h>
#include <stdbool.h>
#include "acpi_devices.h"
#include "acpi_parse.h"

#define ACPI_MAX_IOAPICS 4
#define ACPI_MAX_OVERRIDES 16
#define ACPI_MAX_MMIO 8

struct acpi_ioapic {
	uint8_t id;
	uint32_t address;
	uint32_t gsi_base;
};

/* An ISA IRQ that is wired to another GSI, or with other polarity/trigger. */
struct acpi_override {
	uint8_t isa_irq;
	uint32_t gsi;
	bool active_low;
	bool level;
	uint16_t flags; /* MPS INTI flags as given: 0 in a field means "as the bus says" */
};

struct acpi_info {
	uint64_t rsdp;
	bool have_madt;
	uint32_t lapic_address;
	int n_ioapics;
	struct acpi_ioapic ioapics[ACPI_MAX_IOAPICS];
	int n_overrides;
	struct acpi_override overrides[ACPI_MAX_OVERRIDES];
	bool have_mcfg;
	uint64_t ecam_base;
	uint16_t ecam_segment;
	uint8_t ecam_bus_start, ecam_bus_end;
	bool have_fadt;         /* fadt holds checked values (acpi_fadt_parse) */
	struct acpi_fadt fadt;
	bool have_hpet;         /* hpet holds checked values (acpi_hpet_parse) */
	struct acpi_hpet hpet;
	bool have_s5;           /* the DSDT's \_S5_ gave these sleep types */
	uint8_t s5_slp_typa, s5_slp_typb;
	int n_mmio;             /* virtio-mmio transports the DSDT lists (LNRO0005) */
	struct acpi_mmio_dev mmio[ACPI_MAX_MMIO];
};

extern struct acpi_info acpi;

/* Parse the tables reachable from the RSDP at `rsdp` (0: search the BIOS
 * area). Returns 0, or a negative error with a message printed. */
int acpi_init(uint64_t rsdp);

#endif
