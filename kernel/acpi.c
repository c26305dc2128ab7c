/*
 * acpi: find and parse MADT, MCFG, FADT and HPET, and the DSDT's \_S5 (see
 * acpi.h).
 *
 * RSDP -> RSDT (32-bit pointers) or XSDT (64-bit) -> tables by signature;
 * FADT -> DSDT. Each table's checksum is verified; a bad one is reported and
 * skipped. The FADT and AML are read by acpi_parse.c, which the host tests
 * share.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "acpi.h"
#include "addr.h"

struct acpi_info acpi;

struct sdt_header {
	char signature[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem_id[6], oem_table_id[8];
	uint32_t oem_revision, creator_id, creator_revision;
} __attribute__((packed));

/* Tables bigger than this are taken for garbage. */
#define TABLE_MAX_LEN (1u << 20)

static bool checksum_ok(const void *p, uint32_t len)
{
	return acpi_checksum_ok(p, len);
}

static uint64_t rsdp_search(void)
{
	/* The BIOS puts it on a 16-byte boundary in 0xe0000-0xfffff. */
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if (memcmp(phys_to_virt(a), "RSD PTR ", 8) == 0 && checksum_ok(phys_to_virt(a), 20))
			return a;
	return 0;
}

static void parse_madt(const struct sdt_header *h)
{
	const uint8_t *p = (const uint8_t *)h;
	uint32_t off = sizeof(*h) + 8; /* local APIC address, flags */

	if (h->length < off) {
		printf("acpi: MADT length %u too short\n", h->length);
		return;
	}
	memcpy(&acpi.lapic_address, p + sizeof(*h), 4);
	acpi.have_madt = true;
	while (off + 2 <= h->length) {
		uint8_t type = p[off], len = p[off + 1];
		if (len < 2 || off + len > h->length) {
			printf("acpi: MADT entry at offset %u has bad length %u\n", off, len);
			return;
		}
		if (type == 1 && len >= 12 && acpi.n_ioapics < ACPI_MAX_IOAPICS) {
			struct acpi_ioapic *io = &acpi.ioapics[acpi.n_ioapics++];
			io->id = p[off + 2];
			memcpy(&io->address, p + off + 4, 4);
			memcpy(&io->gsi_base, p + off + 8, 4);
		} else if (type == 2 && len >= 10 && acpi.n_overrides < ACPI_MAX_OVERRIDES) {
			struct acpi_override *o = &acpi.overrides[acpi.n_overrides++];
			uint16_t flags;
			o->isa_irq = p[off + 3];
			memcpy(&o->gsi, p + off + 4, 4);
			memcpy(&flags, p + off + 8, 2);
			o->flags = flags;
			o->active_low = (flags & 3) == 3;
			o->level = ((flags >> 2) & 3) == 3;
		}
		off += len;
	}
}

static void parse_mcfg(const struct sdt_header *h)
{
	const uint8_t *p = (const uint8_t *)h;
	/* header, 8 reserved bytes, then 16-byte allocation entries */
	if (h->length < sizeof(*h) + 8 + 16) {
		printf("acpi: MCFG has no allocation entry\n");
		return;
	}
	const uint8_t *e = p + sizeof(*h) + 8;
	memcpy(&acpi.ecam_base, e, 8);
	memcpy(&acpi.ecam_segment, e + 8, 2);
	acpi.ecam_bus_start = e[10];
	acpi.ecam_bus_end = e[11];
	acpi.have_mcfg = acpi.ecam_base != 0 && acpi.ecam_bus_end >= acpi.ecam_bus_start;
}

/*
 * The DSDT the FADT names: checked like any table (inside the low 4 GiB,
 * which is mapped whole, a sane length, its checksum), then its AML scanned
 * for \_S5_ (when the FADT was usable) and for virtio-mmio devices. Reports
 * what is wrong and leaves have_s5 false, n_mmio 0.
 */
static void parse_dsdt(uint64_t addr, bool want_s5)
{
	if (addr == 0 || addr >= (4ULL << 30) - sizeof(struct sdt_header)) {
		printf("acpi: DSDT address %#lx is outside the low 4 GiB; no ACPI S5\n",
		       (unsigned long)addr);
		return;
	}
	const struct sdt_header *h = phys_to_virt(addr);
	if (memcmp(h->signature, "DSDT", 4) != 0 || h->length < sizeof(*h) ||
	    h->length > TABLE_MAX_LEN || addr + h->length > (4ULL << 30) ||
	    !checksum_ok(h, h->length)) {
		printf("acpi: DSDT at %#lx is invalid (signature, length %u or checksum); no ACPI S5\n",
		       (unsigned long)addr, h->length);
		return;
	}
	const uint8_t *aml = (const uint8_t *)h + sizeof(*h);
	size_t aml_len = h->length - sizeof(*h);
	const char *why;
	int n = acpi_aml_find_mmio(aml, aml_len, acpi.mmio, ACPI_MAX_MMIO, &why);
	if (n < 0)
		printf("acpi: DSDT at %#lx: %s; its virtio-mmio devices ignored\n", (unsigned long)addr, why);
	else
		acpi.n_mmio = n;
	if (!want_s5)
		return;
	int rc = acpi_aml_find_s5(aml, aml_len, &acpi.s5_slp_typa, &acpi.s5_slp_typb, &why);
	if (rc < 0) {
		printf("acpi: DSDT at %#lx: %s; no ACPI S5\n", (unsigned long)addr, why);
		return;
	}
	acpi.have_s5 = true;
}

static void parse_fadt(const struct sdt_header *h)
{
	const char *why;
	if (acpi_fadt_parse((const uint8_t *)h, h->length, &acpi.fadt, &why) < 0) {
		printf("acpi: FADT refused: %s; no power button, no ACPI S5\n", why);
		if (acpi.fadt.dsdt) /* its devices are still described */
			parse_dsdt(acpi.fadt.dsdt, false);
		return;
	}
	acpi.have_fadt = true;
	parse_dsdt(acpi.fadt.dsdt, true);
}

static void parse_hpet(const struct sdt_header *h)
{
	const char *why;
	if (acpi_hpet_parse((const uint8_t *)h, h->length, &acpi.hpet, &why) < 0) {
		printf("acpi: HPET table refused: %s; no HPET clock\n", why);
		return;
	}
	acpi.have_hpet = true;
}

static void parse_table(uint64_t addr)
{
	const struct sdt_header *h = phys_to_virt(addr);
	if (addr == 0 || h->length < sizeof(*h) || h->length > TABLE_MAX_LEN)
		return;
	if (!checksum_ok(h, h->length)) {
		printf("acpi: table %.4s at %#lx has a bad checksum, skipped\n", h->signature, addr);
		return;
	}
	if (memcmp(h->signature, "APIC", 4) == 0)
		parse_madt(h);
	else if (memcmp(h->signature, "MCFG", 4) == 0)
		parse_mcfg(h);
	else if (memcmp(h->signature, "FACP", 4) == 0 && !acpi.have_fadt)
		parse_fadt(h);
	else if (memcmp(h->signature, "HPET", 4) == 0 && !acpi.have_hpet)
		parse_hpet(h);
}

int acpi_init(uint64_t rsdp)
{
	memset(&acpi, 0, sizeof(acpi));
	if (rsdp == 0)
		rsdp = rsdp_search();
	if (rsdp == 0) {
		printf("acpi: no RSDP found\n");
		return -ENOENT;
	}
	const uint8_t *r = phys_to_virt(rsdp);
	if (memcmp(r, "RSD PTR ", 8) != 0 || !checksum_ok(r, 20)) {
		printf("acpi: RSDP at %#lx is invalid\n", rsdp);
		return -EINVAL;
	}
	acpi.rsdp = rsdp;
	uint8_t revision = r[15];
	uint32_t rsdt;
	uint64_t xsdt = 0;
	memcpy(&rsdt, r + 16, 4);
	if (revision >= 2)
		memcpy(&xsdt, r + 24, 8);

	uint64_t root = xsdt ? xsdt : rsdt;
	unsigned entry = xsdt ? 8 : 4;
	const struct sdt_header *h = phys_to_virt(root);
	if (root == 0 || h->length < sizeof(*h) || !checksum_ok(h, h->length)) {
		printf("acpi: root table at %#lx is invalid\n", root);
		return -EINVAL;
	}
	for (uint32_t off = sizeof(*h); off + entry <= h->length; off += entry) {
		uint64_t t = 0;
		memcpy(&t, (const uint8_t *)h + off, entry);
		parse_table(t);
	}
	return 0;
}
