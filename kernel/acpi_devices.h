/*
 * acpi_devices: devices the DSDT describes that blimp drives without a bus
 * to enumerate — virtio-mmio transports, `_HID "LNRO0005"` (the id Linux
 * matches), as QEMU's microvm lists them when ACPI is on:
 *
 *   Device (VR23) {
 *     Name (_HID, "LNRO0005")  Name (_UID, 23)  Name (_CCA, One)
 *     Name (_CRS, ResourceTemplate () {
 *       Memory32Fixed (ReadWrite, 0xFEB02E00, 0x200)
 *       Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { 47 }
 *     })
 *   }
 *
 * A bounded byte scan of the AML, not an interpreter (like the \_S5 scan in
 * acpi_parse.c): NameOp 0x08 "_HID" StringPrefix 0x0d "LNRO0005" NUL, then
 * the next NameOp "_CRS" BufferOp 0x11 before the next _HID; its PkgLength
 * and BufferSize bound the resource descriptors (ACPI 6.5, 6.4): a
 * Memory32Fixed (large item 0x86) and an Extended Interrupt (0x89) with
 * at least one interrupt. Pure: compiles into the kernel, the unit test and
 * the fuzzer.
 */
#ifndef BLIMP_ACPI_DEVICES_H
#define BLIMP_ACPI_DEVICES_H

#include <stddef.h>
#include <stdint.h>

struct acpi_mmio_dev {
	uint32_t base, size, gsi;
};

/*
 * Find the LNRO0005 devices in aml[0..len) (a DSDT without its header) and
 * put the first max in out. Returns how many were found (0 and more), or
 * -EINVAL with *why set for the first one whose _CRS is missing or
 * malformed (nothing read past aml[len-1], nothing past a buffer's own
 * length).
 */
int acpi_aml_find_mmio(const uint8_t *aml, size_t len, struct acpi_mmio_dev *out, int max, const char **why);

#endif
