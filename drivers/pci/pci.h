/*
 * pci: configuration space, enumeration, BARs, capabilities (pci.c), and
 * device interrupts: legacy INTx through the IOAPIC, or MSI-X (pci_irq.c).
 *
 * Configuration space is reached through ECAM when ACPI's MCFG describes
 * one (q35), else through ports 0xCF8/0xCFC (pc). A device is untrusted:
 * capability lists are walked with a bound and every pointer checked, BARs
 * are sized and mapped wherever the firmware put them.
 *
 * INTx routing is the chipset's, as QEMU 7.2 wires it (hw/isa/lpc_ich9.c,
 * hw/i386/pc_piix.c, and the _PRT QEMU's ACPI tables describe). P counts
 * from 0 for INTA; S is the slot on bus 0.
 *   q35 (ICH9):  S < 25         -> PIRQ (S + P) % 4 + 4   (E..H)
 *                S = 30         -> PIRQ P + 4             (D30IR is fixed)
 *                S = 25..29, 31 -> the chipset's D<S>IR register, reset to
 *                                  0x3210: PIRQ P          (A..D)
 *                PIRQ n -> IOAPIC GSI 16 + n, in APIC mode whatever the
 *                firmware wrote in the PIRQ route registers.
 *   pc (PIIX3):  PIRQ (S - 1 + P) % 4 (A..D) -> the ISA IRQ the firmware
 *                wrote in PIIX3 config 0x60 + PIRQ (SeaBIOS and OVMF: 10,
 *                10, 11, 11) -> that IRQ's GSI (MADT override, else the same
 *                number).
 * Both level-triggered; QEMU's ACPI calls them active-high (and its IOAPIC
 * ignores polarity). A device behind a bridge reaches the bridge's pin
 * (S + P) % 4, bridge by bridge, until bus 0. Lines are shared: one vector
 * per GSI, every handler on it asked in turn.
 *
 * pci.c, pci_cap.c and pci_irq.c call one another on purpose: one driver in
 * three files, all behind this header.
 */
#ifndef BLIMP_PCI_H
#define BLIMP_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "arch/x86_64/interrupt.h"

#define PCI_MAX_DEVICES 64
#define PCI_CAP_MSIX 0x11
#define PCI_CAP_VENDOR 0x09

struct pci_bar {
	uint64_t base;  /* physical address (or I/O port) */
	uint64_t size;  /* 0: not implemented */
	bool io, is64, mapped; /* mapped: part of it is, and decoding is on */
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

enum pci_chipset { PCI_CHIPSET_UNKNOWN, PCI_CHIPSET_Q35, PCI_CHIPSET_PC };

/* Where a device's INTx pin ends up. */
struct pci_intx_route {
	int pirq;        /* 0..7 = PIRQ A..H */
	int gsi;         /* IOAPIC input */
	bool level, active_low;
};

extern struct pci_dev pci_devs[PCI_MAX_DEVICES];
extern int pci_ndevs;

/* Find every device on every bus; map nothing yet. Returns the count. */
int pci_scan(void);

/* ---- pci_cap.c: what configuration space says (host-compilable) ---- */

/* Size and read the BARs (header type 0: six, type 1: two), decoding off
 * meanwhile; a BAR the device describes impossibly is reported and left
 * with size 0. Command register and BARs are restored afterwards. */
void pci_size_bars(struct pci_dev *d);

/* Configuration space: pci_read32/pci_write32 are pci.c's (ports or ECAM,
 * or the fuzz harness's simulated device); the narrower ones are pci_cap.c's. */
uint32_t pci_read32(const struct pci_dev *d, uint16_t off);
uint16_t pci_read16(const struct pci_dev *d, uint16_t off);
uint8_t pci_read8(const struct pci_dev *d, uint16_t off);
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v);

/* First capability of `id` after config offset `after` (0: from the start);
 * 0 if none. A list that loops or points outside the header is reported. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t after);

/* Map bytes [off, off + len) of memory BAR `i` (uncached) and turn on
 * memory decoding and bus mastering. Only that range is mapped: a device
 * may claim a BAR of terabytes, and page tables for all of it would eat
 * the guest's memory. Returns a pointer to byte `off`, or NULL (with a
 * message) if the BAR is not memory or the range is not inside it. */
volatile void *pci_map_bar(struct pci_dev *d, int i, uint64_t off, uint64_t len);

/* Next capability after config offset `at` (0: the first), whatever its
 * id; 0 at the end. A pointer outside 0x40..0xfc, misaligned, or a list
 * longer than fits (a loop) is reported and ends the walk. */
uint8_t pci_next_cap(const struct pci_dev *d, uint8_t at);

/* ---- pci_irq.c ---- */

/* How the device's INTx pin reaches the IOAPIC: 0, or -ENODEV when it has
 * no pin or the firmware left its PIRQ unrouted (message printed). */
int pci_intx_route(const struct pci_dev *d, struct pci_intx_route *r);

/* The GSI of pci_intx_route, or a negative error. */
int pci_intx_gsi(const struct pci_dev *d);

/*
 * Route the device's INTx to a vector shared by every device on its GSI,
 * add fn(ctx) to the handlers called for it (each must check whether its
 * device interrupted, and quiet it), and enable the pin. Returns the GSI,
 * or a negative error (no route, no vector, too many sharers).
 */
int pci_enable_intx(struct pci_dev *d, irq_handler_fn fn, void *ctx);

/* How many times the INTx line `gsi` fired (0 if blimp never routed it). */
uint64_t pci_intx_count(int gsi);

/* Map the MSI-X table (checked against its BAR), mask every entry, enable
 * MSI-X and turn INTx off. 0, -ENODEV (no MSI-X) or -EINVAL (bad table). */
int pci_msix_enable(struct pci_dev *d);

/* Undo pci_msix_enable: MSI-X off, INTx back on. */
void pci_msix_disable(struct pci_dev *d);

/* Entry `entry` delivers `vector` to this CPU, unmasked. 0 or -EINVAL. */
int pci_msix_set_vector(struct pci_dev *d, uint16_t entry, int vector);

/* The chipset, from the host bridge at 00:00.0 (i440FX: pc, Q35 MCH: q35). */
enum pci_chipset pci_chipset_id(void);
/* "q35", "pc" or "unknown". */
const char *pci_chipset(void);

#endif
