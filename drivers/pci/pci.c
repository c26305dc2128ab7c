/*
 * pci: configuration access and enumeration (see pci.h; BARs and
 * capabilities are in pci_cap.c, interrupts in pci_irq.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "pci.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/ioapic.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/paging.h"
#include "kernel/acpi.h"
#include "kernel/addr.h"
#include "kernel/event.h"
#include "kernel/shell.h"

struct pci_dev pci_devs[PCI_MAX_DEVICES];
int pci_ndevs;
static bool use_ecam;
static enum pci_chipset chipset;

/* ---------------------------------------------------------------- config */

static volatile void *ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return phys_to_virt(acpi.ecam_base + ((uint64_t)(bus - acpi.ecam_bus_start) << 20) +
			    ((uint64_t)dev << 15) + ((uint64_t)fn << 12) + off);
}

static uint32_t cfg_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (use_ecam)
		return *(volatile uint32_t *)ecam_addr(bus, dev, fn, off & ~3);
	outl(0xcf8, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc));
	return inl(0xcfc);
}

static void cfg_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
	if (use_ecam) {
		*(volatile uint32_t *)ecam_addr(bus, dev, fn, off & ~3) = v;
		return;
	}
	outl(0xcf8, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 | (uint32_t)fn << 8 | (off & 0xfc));
	outl(0xcfc, v);
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off) { return cfg_read32(d->bus, d->dev, d->fn, off); }
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v) { cfg_write32(d->bus, d->dev, d->fn, off, v); }

/* ---------------------------------------------------------------- scan */

static void scan_bus(uint8_t bus, struct pci_dev *bridge, int depth);

static void add_function(uint8_t bus, uint8_t dev, uint8_t fn, struct pci_dev *bridge, int depth)
{
	uint32_t id = cfg_read32(bus, dev, fn, 0);
	if ((id & 0xffff) == 0xffff || pci_ndevs == PCI_MAX_DEVICES)
		return;
	struct pci_dev *d = &pci_devs[pci_ndevs++];
	memset(d, 0, sizeof(*d));
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->vendor = id & 0xffff;
	d->device = id >> 16;
	d->class_code = pci_read32(d, 0x08) >> 8;
	d->header_type = pci_read8(d, 0x0e);
	d->irq_pin = pci_read8(d, 0x3d);
	if (d->irq_pin > 4)
		d->irq_pin = 0; /* nonsense from the device: treat as none */
	d->parent_bridge = bridge;
	pci_size_bars(d);
	if (bus == 0 && dev == 0 && fn == 0 && d->vendor == 0x8086)
		chipset = d->device == 0x29c0 ? PCI_CHIPSET_Q35 : d->device == 0x1237 ? PCI_CHIPSET_PC
								   : PCI_CHIPSET_UNKNOWN;
	if ((d->header_type & 0x7f) == 1 && depth < 8) {
		uint8_t secondary = pci_read8(d, 0x19);
		if (secondary > bus)
			scan_bus(secondary, d, depth + 1);
	}
}

static void scan_bus(uint8_t bus, struct pci_dev *bridge, int depth)
{
	for (uint8_t dev = 0; dev < 32; dev++) {
		if ((cfg_read32(bus, dev, 0, 0) & 0xffff) == 0xffff)
			continue;
		bool multi = cfg_read32(bus, dev, 0, 0x0c) & (0x80 << 16);
		for (uint8_t fn = 0; fn < (multi ? 8 : 1); fn++)
			add_function(bus, dev, fn, bridge, depth);
	}
}

int pci_scan(void)
{
	use_ecam = acpi.have_mcfg && acpi.ecam_segment == 0 && acpi.ecam_bus_start == 0;
	if (use_ecam)
		paging_map_mmio(acpi.ecam_base, (uint64_t)(acpi.ecam_bus_end + 1) << 20);
	pci_ndevs = 0;
	scan_bus(0, NULL, 0);
	for (int i = 0; i < pci_ndevs; i++) {
		uint8_t c = pci_find_cap(&pci_devs[i], PCI_CAP_MSIX, 0);
		if (c) {
			pci_devs[i].msix_cap = c;
			pci_devs[i].msix_size = (pci_read16(&pci_devs[i], c + 2) & 0x7ff) + 1;
		}
	}
	return pci_ndevs;
}

enum pci_chipset pci_chipset_id(void)
{
	return chipset;
}

const char *pci_chipset(void)
{
	return chipset == PCI_CHIPSET_Q35 ? "q35" : chipset == PCI_CHIPSET_PC ? "pc" : "unknown";
}

/* ---------------------------------------------------------------- shell */

static const char *cap_name(uint8_t id)
{
	switch (id) {
	case 0x01: return "PM";
	case 0x05: return "MSI";
	case 0x09: return "vendor";
	case 0x10: return "PCIe";
	case 0x11: return "MSI-X";
	case 0x0d: return "bridge-subsys";
	default: return NULL;
	}
}

/* One device: ids and class, interrupt pin and where it goes, capabilities,
 * BARs; and a "pci_device" event with the same facts. */
static void print_device(const struct pci_dev *d)
{
	printf("%02x:%02x.%x %04x:%04x class %06x", d->bus, d->dev, d->fn, d->vendor, d->device,
	       d->class_code);
	struct pci_intx_route r = { .gsi = -1 };
	if (d->irq_pin) {
		printf(" INT%c", 'A' + d->irq_pin - 1);
		if (pci_intx_route(d, &r) == 0)
			printf(" -> PIRQ %c -> GSI %d (%s, active-%s)", 'A' + r.pirq, r.gsi,
			       r.level ? "level" : "edge", r.active_low ? "low" : "high");
	}
	printf("\n    capabilities:");
	char caps[160];
	int len = 0, n = 0;
	caps[0] = 0;
	for (uint8_t c = pci_next_cap(d, 0); c && n < 48; c = pci_next_cap(d, c), n++) {
		uint8_t id = pci_read8(d, c);
		const char *name = cap_name(id);
		if (name)
			printf(" %s@%#x", name, c);
		else
			printf(" %#x@%#x", id, c);
		if (id == PCI_CAP_MSIX)
			printf("(%u entries)", d->msix_size);
		if (len < (int)sizeof(caps) - 8)
			len += snprintf(caps + len, sizeof(caps) - len, "%s%u", n ? "," : "", id);
	}
	printf(n ? "\n" : " none\n");
	for (int b = 0; b < 6; b++)
		if (d->bar[b].size)
			printf("    BAR%d %s %#lx size %#lx%s\n", b, d->bar[b].io ? "io " : "mem",
			       (unsigned long)d->bar[b].base, (unsigned long)d->bar[b].size,
			       d->bar[b].is64 ? " 64-bit" : "");
	event_emit("pci_device", "\"bus\":%u,\"slot\":%u,\"function\":%u,\"vendor\":%u,\"device\":%u,"
		   "\"class\":%u,\"pin\":%u,\"gsi\":%d,\"caps\":[%s],\"msix\":%u", d->bus, d->dev, d->fn,
		   d->vendor, d->device, d->class_code, d->irq_pin, r.gsi, caps,
		   d->msix_cap ? d->msix_size : 0);
}

static int cmd_pci(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("chipset %s, configuration through %s\n", pci_chipset(), use_ecam ? "ECAM" : "ports 0xcf8/0xcfc");
	for (int i = 0; i < pci_ndevs; i++)
		print_device(&pci_devs[i]);
	return 0;
}
SHELL_COMMAND(pci, "", "list PCI devices: ids, class, INTx route, capabilities, BARs", cmd_pci);
