/*
 * ioapic: IOAPIC redirection entries (see ioapic.h).
 */
#include <errno.h>
#include <stdio.h>
#include "ioapic.h"
#include "cpu.h"
#include "lapic.h"
#include "kernel/acpi.h"
#include "kernel/mptable.h"

#define IOREGSEL 0x00
#define IOWIN 0x10
#define REG_VER 0x01
#define REG_REDIR(n) (0x10 + 2 * (n))

struct ioapic {
	volatile uint32_t *mmio;
	uint32_t gsi_base, lines;
};
static struct ioapic ioapics[ACPI_MAX_IOAPICS];
static int n_ioapics;

static uint32_t io_read(struct ioapic *io, uint32_t reg)
{
	io->mmio[IOREGSEL / 4] = reg;
	return io->mmio[IOWIN / 4];
}

static void io_write(struct ioapic *io, uint32_t reg, uint32_t v)
{
	io->mmio[IOREGSEL / 4] = reg;
	io->mmio[IOWIN / 4] = v;
}

static struct ioapic *ioapic_for(uint32_t gsi, uint32_t *line)
{
	for (int i = 0; i < n_ioapics; i++)
		if (gsi >= ioapics[i].gsi_base && gsi < ioapics[i].gsi_base + ioapics[i].lines) {
			*line = gsi - ioapics[i].gsi_base;
			return &ioapics[i];
		}
	return NULL;
}

void pic_disable(void)
{
	/* Remap to 0x20-0x2f first, so a spurious PIC interrupt is not taken
	 * for a CPU exception, then mask every line. */
	outb(0x20, 0x11); outb(0xa0, 0x11);
	outb(0x21, 0x20); outb(0xa1, 0x28);
	outb(0x21, 0x04); outb(0xa1, 0x02);
	outb(0x21, 0x01); outb(0xa1, 0x01);
	outb(0x21, 0xff); outb(0xa1, 0xff);
}

static void add_ioapic(uint32_t address, uint32_t gsi_base)
{
	struct ioapic *io = &ioapics[n_ioapics++];
	io->mmio = (volatile uint32_t *)(uintptr_t)address;
	io->gsi_base = gsi_base;
	io->lines = ((io_read(io, REG_VER) >> 16) & 0xff) + 1;
	for (uint32_t l = 0; l < io->lines; l++) {
		io_write(io, REG_REDIR(l), 1u << 16); /* masked */
		io_write(io, REG_REDIR(l) + 1, 0);
	}
}

/* No MADT: the MP table, where the firmware wrote one (qboot on microvm
 * with acpi=off). Searched, like the spec says, in the last KiB of base
 * memory and the BIOS area (the EBDA pointer lives in page 0, which blimp
 * leaves unmapped). GSIs follow each other from 0. */
static void mptable_ioapics(void)
{
	static const struct { uint32_t start, len; } areas[] = { { 0x9fc00, 0x400 }, { 0xe0000, 0x20000 } };
	for (unsigned a = 0; a < sizeof(areas) / sizeof(areas[0]); a++) {
		const uint8_t *area = (const uint8_t *)(uintptr_t)areas[a].start;
		long off = mp_find_floating(area, areas[a].len);
		if (off < 0)
			continue;
		uint32_t cfg = mp_config_address(area + off);
		if (cfg < 0x1000 || cfg > 0xffff0000u) {
			printf("ioapic: MP table at %#x is outside usable low memory; ignored\n", cfg);
			return;
		}
		const uint8_t *t = (const uint8_t *)(uintptr_t)cfg;
		struct mp_ioapic found[ACPI_MAX_IOAPICS];
		const char *why;
		int n = mp_parse_config(t, (size_t)t[4] | (size_t)t[5] << 8, found, ACPI_MAX_IOAPICS, &why);
		if (n < 0) {
			printf("ioapic: MP table at %#x refused: %s\n", cfg, why);
			return;
		}
		uint32_t gsi = 0;
		for (int i = 0; i < n; i++) {
			add_ioapic(found[i].address, gsi);
			printf("ioapic: %#x from the MP table, GSIs %u-%u\n", found[i].address, gsi,
			       gsi + ioapics[n_ioapics - 1].lines - 1);
			gsi += ioapics[n_ioapics - 1].lines;
		}
		return;
	}
}

int ioapic_init(void)
{
	n_ioapics = 0;
	for (int i = 0; i < acpi.n_ioapics; i++)
		add_ioapic(acpi.ioapics[i].address, acpi.ioapics[i].gsi_base);
	if (n_ioapics == 0)
		mptable_ioapics();
	return n_ioapics ? 0 : -ENODEV;
}

bool ioapic_present(void)
{
	return n_ioapics > 0;
}

int ioapic_route_gsi(uint32_t gsi, int vector, bool level, bool active_low)
{
	uint32_t line;
	struct ioapic *io = ioapic_for(gsi, &line);
	if (!io)
		return -ENODEV;
	uint32_t lo = (uint32_t)vector | (active_low ? 1u << 13 : 0) | (level ? 1u << 15 : 0);
	bool was = irq_save();
	io_write(io, REG_REDIR(line) + 1, lapic_id() << 24);
	io_write(io, REG_REDIR(line), lo); /* unmasked: bit 16 clear */
	irq_restore(was);
	return 0;
}

int ioapic_route_isa_irq(uint8_t irq, int vector)
{
	for (int i = 0; i < acpi.n_overrides; i++) {
		const struct acpi_override *o = &acpi.overrides[i];
		if (o->isa_irq == irq)
			return ioapic_route_gsi(o->gsi, vector, o->level, o->active_low);
	}
	return ioapic_route_gsi(irq, vector, false, false); /* ISA default: edge, high */
}

void ioapic_mask_gsi(uint32_t gsi, bool masked)
{
	uint32_t line;
	struct ioapic *io = ioapic_for(gsi, &line);
	if (!io)
		return;
	bool was = irq_save();
	uint32_t lo = io_read(io, REG_REDIR(line));
	io_write(io, REG_REDIR(line), masked ? lo | (1u << 16) : lo & ~(1u << 16));
	irq_restore(was);
}
