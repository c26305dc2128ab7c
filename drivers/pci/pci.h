/*
 * pci: configuration space, enumeration, BARs, capabilities, and device
 * interrupts (legacy INTx through the IOAPIC, or MSI-X).
 *
 * Configuration space is reached through ECAM when ACPI's MCFG describes
 * one (q35), else through ports 0xCF8/0xCFC (pc). A device is untrusted:
 * capability lists are walked with a bound and every pointer checked, BARs
 * are sized and mapped wherever the firmware put them.
 *
 * INTx routing is the chipset's, as QEMU wires it:
 *   q35 (ICH9):  slot S pin P on bus 0 -> PIRQ E..H = (S + P) % 4 + 4
 *                -> IOAPIC GSI 16 + PIRQ, level-triggered
 *   pc (PIIX3):  slot S pin P -> PIRQ A..D = (S - 1 + P) % 4 -> the ISA IRQ the
 *                firmware wrote in PIIX3 config 0x60 + PIRQ (= the GSI),
 *                level-triggered
 * (P counts from 0 for INTA.) A device behind a bridge takes its pin
 * through the bridge's swizzle, (S + P) % 4, until it reaches bus 0.
 */
#ifndef BLIMP_PCI_H
#define BLIMP_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVICES 64
#define PCI_CAP_MSIX 0x11
#define PCI_CAP_VENDOR 0x09

struct pci_bar {
	uint64_t base;  /* physical address (or I/O port) */
	uint64_t size;  /* 0: not implemented */
	bool io, is64, mapped;
};

struct pci_dev {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint32_t class_code; /* class << 16 | subclass << 8 | prog-if */
	uint8_t header_type;
	uint8_t irq_pin;     /* 1..4 = INTA..INTD, 0 = none */
	struct pci_dev *parent_bridge;
	struct pci_bar bar[6];
	/* MSI-X, when the device has it */
	uint8_t msix_cap;    /* config offset, 0 if none */
	uint16_t msix_size;
	volatile uint32_t *msix_table;
};

extern struct pci_dev pci_devs[PCI_MAX_DEVICES];
extern int pci_ndevs;

/* Find every device on every bus; map nothing yet. Returns the count. */
int pci_scan(void);

uint32_t pci_read32(const struct pci_dev *d, uint16_t off);
uint16_t pci_read16(const struct pci_dev *d, uint16_t off);
uint8_t pci_read8(const struct pci_dev *d, uint16_t off);
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v);

/* First capability of `id` after config offset `after` (0: from the start);
 * 0 if none. A list that loops or points outside the header is reported. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after);

/* Map memory BAR `i` (uncached) and turn on memory decoding and bus
 * mastering. Returns a pointer to it, or NULL (with a message). */
volatile void *pci_map_bar(struct pci_dev *d, int i);

/* The IOAPIC GSI the device's INTx pin reaches, or a negative error. */
int pci_intx_gsi(const struct pci_dev *d);

/* Route the device's INTx to `vector` (level-triggered) and enable it. */
int pci_enable_intx(struct pci_dev *d, int vector);

/* Enable MSI-X: entry `entry` delivers `vector` to this CPU. */
int pci_msix_enable(struct pci_dev *d);
int pci_msix_set_vector(struct pci_dev *d, uint16_t entry, int vector);

/* "q35" or "pc" (from the host bridge), "unknown" otherwise. */
const char *pci_chipset(void);

#endif
