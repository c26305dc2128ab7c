/*
 * power: the ACPI power button, and the machine's one way to switch off.
 *
 *   FADT (acpi.c) -> ACPI mode (SCI_EN, via SMI_CMD) -> SCI routed through
 *   the IOAPIC -> PWRBTN_EN -> a press: SCI, PWRBTN_STS read and cleared,
 *   `power_button` event -> power_off: `poweroff` event, isa-debug-exit,
 *   else ACPI S5 (SLP_TYP from the DSDT's \_S5, SLP_EN in PM1_CNT).
 *
 * docs/power.md follows this path with the registers QEMU has on q35
 * (ICH9 LPC) and pc (PIIX4 PM). This module owns the PM1 and GPE registers
 * and the SCI: it wires the SCI's interrupt itself, being the only user.
 */
#ifndef BLIMP_POWER_H
#define BLIMP_POWER_H

#include <stdbool.h>

/*
 * Arm the power button: switch the chipset to ACPI mode if it is not, route
 * the SCI (or poll PM1 status every 100 ms when `poll`, irq=poll, or when
 * the SCI cannot be routed), switch every other PM1 and GPE event source off
 * so the SCI has no cause blimp does not handle. Call after ioapic_init.
 * Returns 0, or a negative errno value with the reason printed (boot goes
 * on without a power button; power_off still works).
 */
int power_init(bool poll);

/*
 * The clean shutdown, for `poweroff` and the power button alike: says so
 * (`poweroff` event with `why`), flushes the console, leaves QEMU through
 * isa-debug-exit (status 33) if present, else enters ACPI S5. Halts if
 * neither switches the machine off.
 */
__attribute__((noreturn)) void power_off(const char *why);

#endif
