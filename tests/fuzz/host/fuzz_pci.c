/*
 * fuzz_pci: BAR sizing, the capability walker (drivers/pci/pci_cap.c) and
 * virtio's capability parsing and configuration reads
 * (drivers/virtio/virtio_pci_cap.c) against a device the fuzzer writes.
 *
 * Input:
 *   24 bytes   what each BAR register reads back after all-ones is written
 *    1 byte    flags: bit 0 makes paging_map_mmio fail
 *    1 byte    n, then n bytes: what config_generation reads, in turn
 *              (then the last value for ever)
 *    1 byte    m, then m bytes: configuration reads and writes to try
 *              (3 bytes each: offset, length, kind)
 *   the rest   configuration space, up to 4 KiB (zeros after)
 * The harness is the device: pci_read32/pci_write32 answer from that
 * configuration space, paging_map_mmio records what is mapped, and the
 * mmio_* accessors (arch/x86_64/mmio.h) serve the common and device
 * configuration, whose bytes change with every generation read.
 *
 * Invariants: configuration reads stay in the 256-byte header (all of this
 * is standard capabilities) and are bounded (a looping list ends);
 * writes go only to the command register and BARs, and sizing leaves both
 * as they were; sized BARs are powers of two; a mapped range neither wraps
 * nor passes 2^52, the architectural physical-address limit; capabilities
 * found are in 0x40..0xfc and aligned; an accepted virtio device has
 * common, ISR and notify regions (and device configuration if any) of
 * their minimum sizes inside a mapped memory BAR; a refusal prints what is
 * wrong; every MMIO access lands inside an accepted region; a
 * configuration read succeeds only inside device configuration, only when
 * config_generation read the same before and after, and returns the bytes
 * the device had then.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/mmio.h"
#include "arch/x86_64/paging.h"
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio_pci.h"
#include "drivers/virtio/virtio_pci_regs.h"
#include "tests/fuzz/host/fuzz_util.h"

#define CFG_SIZE 4096
#define MAX_READS 100000

static uint8_t cfg[CFG_SIZE];
static uint32_t sizing_answer[6];
static bool sizing[6];
static bool map_fails;
static unsigned cfg_reads, max_read;
static struct { uint64_t base, size; } maps[16];
static unsigned nmaps;
static const uint8_t *gens;
static unsigned ngens, gen_reads;
static uint8_t last_gen[2];
static struct virtio_dev VD;
static char msg[16384];
static FILE *msgs;

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
/* Status bits a write of 1 clears: parity, signaled/received aborts, SERR, parity error. */
#define STATUS_W1C 0xf900u

static int nbars(void)
{
	unsigned t = cfg[0x0e] & 0x7f;
	return t == 0 ? 6 : t == 1 ? 2 : 0;
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off)
{
	(void)d;
	if (++cfg_reads > MAX_READS)
		fh_fail("configuration space read %u times: a walk that does not end", cfg_reads);
	if (off >= CFG_SIZE)
		fh_fail("configuration read at %#x, outside the 4 KiB space", off);
	if (off > max_read)
		max_read = off;
	unsigned r = off & ~3u, bar = (r - 0x10) / 4;
	if (r >= 0x10 && bar < (unsigned)nbars() && sizing[bar])
		return sizing_answer[bar];
	return le32(cfg + r);
}

void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v)
{
	(void)d;
	unsigned r = off & ~3u, bar = (r - 0x10) / 4;
	if (r >= 0x10 && bar < (unsigned)nbars()) {
		sizing[bar] = v == 0xffffffff;
		if (sizing[bar])
			return;
	} else if (r != 0x04) {
		fh_fail("configuration write of %#x at %#x: only command and BARs are written", v, off);
	} else {
		/* Status (0x06): error bits are write-1-to-clear, the rest read-only. */
		uint16_t status = le16(cfg + 0x06);
		if ((v >> 16) & status & STATUS_W1C)
			fh_fail("command write %#x clears status bits %#x the device set", v,
				(v >> 16) & status & STATUS_W1C);
		v = (v & 0xffff) | ((uint32_t)status << 16);
	}
	memcpy(cfg + r, (uint8_t[]){ (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) }, 4);
}

int paging_map_mmio(uint64_t pa, uint64_t size)
{
	if (size == 0 || pa + size < pa || pa + size > (1ULL << 52))
		fh_fail("paging_map_mmio(%#llx, %#llx): wraps or passes the 2^52 physical limit",
			(unsigned long long)pa, (unsigned long long)size);
	if (map_fails)
		return -ENOMEM;
	/* Only what a capability names is mapped: its length is 32 bits. */
	if (size > (1ULL << 32))
		fh_fail("paging_map_mmio(%#llx, %#llx): more than a capability can name "
			"(a huge BAR mapped whole)", (unsigned long long)pa, (unsigned long long)size);
	if (nmaps == 16)
		fh_fail("more than 16 regions mapped");
	maps[nmaps].base = pa;
	maps[nmaps++].size = size;
	return 0;
}

/* Which accepted region holds [p, p + n)? Fails if none does. The
 * generation register first, then device configuration (a device may make
 * them overlap), then the rest of the common configuration. */
static uint64_t region_offset(const volatile void *p, unsigned n, bool *is_common)
{
	uintptr_t a = (uintptr_t)p, c = (uintptr_t)VD.common, dc = (uintptr_t)VD.device_cfg;
	*is_common = true;
	if (VD.common && a == c + VIRTIO_PCI_COMMON_CONFIG_GENERATION && n == 1)
		return VIRTIO_PCI_COMMON_CONFIG_GENERATION;
	*is_common = false;
	if (VD.device_cfg && a >= dc && a - dc + n <= VD.device_cfg_len)
		return a - dc;
	*is_common = true;
	if (VD.common && a >= c && a - c + n <= VIRTIO_PCI_COMMON_LEN)
		return a - c;
	fh_fail("MMIO access of %u bytes at %#lx outside every accepted region", n, (unsigned long)a);
}

/* The device's configuration byte at `off`: it changes with each generation read. */
static uint8_t dev_byte(uint64_t off) { return (uint8_t)(off * 7 + gen_reads * 13); }

static uint32_t mmio_read(const volatile void *p, unsigned n)
{
	bool common;
	uint64_t off = region_offset(p, n, &common);
	if (common) {
		if (off != VIRTIO_PCI_COMMON_CONFIG_GENERATION || n != 1)
			fh_fail("read of common configuration register %#llx: not expected here",
				(unsigned long long)off);
		uint8_t g = ngens ? gens[gen_reads < ngens ? gen_reads : ngens - 1] : 0;
		gen_reads++;
		last_gen[0] = last_gen[1];
		last_gen[1] = g;
		return g;
	}
	uint32_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint32_t)dev_byte(off + i) << (8 * i);
	return v;
}

uint8_t mmio_read8(const volatile void *p) { return (uint8_t)mmio_read(p, 1); }
uint16_t mmio_read16(const volatile void *p) { return (uint16_t)mmio_read(p, 2); }
uint32_t mmio_read32(const volatile void *p) { return mmio_read(p, 4); }

static void mmio_write(volatile void *p, unsigned n)
{
	bool common;
	region_offset(p, n, &common);
	if (common)
		fh_fail("write to common configuration: not expected here");
}

void mmio_write8(volatile void *p, uint8_t v) { (void)v; mmio_write(p, 1); }
void mmio_write16(volatile void *p, uint16_t v) { (void)v; mmio_write(p, 2); }
void mmio_write32(volatile void *p, uint32_t v) { (void)v; mmio_write(p, 4); }

/* [p, p + len) lies inside a mapped memory BAR. */
static void check_region(const char *what, const volatile uint8_t *p, uint64_t len, uint64_t min)
{
	if (!p)
		fh_fail("accepted without %s", what);
	if (len < min)
		fh_fail("%s region of %llu bytes, its registers need %llu", what, (unsigned long long)len,
			(unsigned long long)min);
	if (len == 0)
		return; /* nothing in it is ever read, so nothing need be mapped */
	uint64_t a = (uintptr_t)p;
	for (unsigned i = 0; i < nmaps; i++)
		if (a >= maps[i].base && a - maps[i].base <= maps[i].size &&
		    len <= maps[i].size - (a - maps[i].base))
			return;
	fh_fail("%s region %#llx+%#llx is not inside a mapped BAR", what, (unsigned long long)a,
		(unsigned long long)len);
}

static void try_config(uint8_t off, uint8_t len, uint8_t kind)
{
	if (kind & 1) {
		int rc = virtio_pci_config_write32(&VD, off, 0x12345678);
		bool ok = VD.device_cfg && off <= VD.device_cfg_len && 4 <= VD.device_cfg_len - off && !(off & 3);
		if ((rc == 0) != ok)
			fh_fail("config_write32(%u) = %d with %u bytes of device configuration", off, rc,
				VD.device_cfg_len);
		return;
	}
	uint8_t *buf = malloc(len ? len : 1);
	unsigned before = gen_reads;
	int rc = virtio_pci_config_read(&VD, off, buf, len);
	bool inside = VD.device_cfg && off <= VD.device_cfg_len && len <= VD.device_cfg_len - off;
	/* A device whose device configuration covers the generation register:
	 * reading one reads the other, and the model below cannot tell them apart. */
	uintptr_t g = (uintptr_t)VD.common + VIRTIO_PCI_COMMON_CONFIG_GENERATION, dc = (uintptr_t)VD.device_cfg;
	bool overlap = VD.device_cfg && g >= dc && g - dc < VD.device_cfg_len;
	if (rc == 0 && !inside)
		fh_fail("config_read(%u, %u) succeeded outside %u bytes", off, len, VD.device_cfg_len);
	if (overlap) {
		free(buf);
		return;
	}
	if (rc == 0) {
		if (gen_reads - before < 2 || last_gen[0] != last_gen[1])
			fh_fail("config_read succeeded without two equal generation reads");
		gen_reads--; /* the bytes were read before the last generation read */
		for (unsigned i = 0; i < len; i++)
			if (buf[i] != dev_byte(off + i))
				fh_fail("config_read byte %u is %#x, the device had %#x", i, buf[i],
					dev_byte(off + i));
		gen_reads++;
	} else if (rc != -EIO) {
		fh_fail("config_read = %d", rc);
	} else if (inside && gen_reads - before != 32) {
		fh_fail("config_read gave up after %u generation reads", gen_reads - before);
	}
	free(buf);
}

/* The kernel's messages go to msg[], where a check can read them. */
void fh_setup(void)
{
	if (!fh_verbose && !(stdout = msgs = fmemopen(msg, sizeof(msg), "w")))
		fh_fail("fmemopen");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	for (int i = 0; i < 6; i++)
		sizing_answer[i] = fh_u32(&f);
	map_fails = fh_u8(&f) & 1;
	ngens = fh_u8(&f);
	ngens = ngens < f.n ? ngens : (unsigned)f.n;
	gens = f.p;
	f.p += ngens;
	f.n -= ngens;
	unsigned nops = fh_u8(&f);
	nops = nops * 3 < f.n ? nops : (unsigned)(f.n / 3);
	const uint8_t *ops = f.p;
	f.p += nops * 3;
	f.n -= nops * 3;
	memset(cfg, 0, sizeof(cfg));
	memcpy(cfg, f.p, f.n < CFG_SIZE ? f.n : CFG_SIZE);
	memset(sizing, 0, sizeof(sizing));
	cfg_reads = max_read = nmaps = gen_reads = 0;
	last_gen[0] = last_gen[1] = 0;
	if (msgs) {
		rewind(msgs);
		memset(msg, 0, sizeof(msg));
	}

	struct pci_dev d;
	memset(&d, 0, sizeof(d));
	d.vendor = (uint16_t)le32(cfg);
	d.device = (uint16_t)(le32(cfg) >> 16);
	d.header_type = cfg[0x0e];
	uint8_t before[0x28];
	memcpy(before, cfg, sizeof(before));
	pci_size_bars(&d);
	if (memcmp(before + 4, cfg + 4, 2) || memcmp(before + 0x10, cfg + 0x10, 0x18))
		fh_fail("BAR sizing did not restore the command register and BARs");
	for (int i = 0; i < 6; i++) {
		const struct pci_bar *b = &d.bar[i];
		if (b->size & (b->size - 1))
			fh_fail("BAR %d: size %#llx is not a power of two", i, (unsigned long long)b->size);
		if (i >= nbars() && b->size)
			fh_fail("BAR %d sized in a header with %d BARs", i, nbars());
		bool hi = b->is64 && i + 1 < nbars();
		if (b->size && !(sizing_answer[i] & (b->io ? ~3u : ~15u)) && !(hi && sizing_answer[i + 1]))
			fh_fail("BAR %d: no bit writable, yet size %#llx", i, (unsigned long long)b->size);
	}

	/* As pci_scan does: the MSI-X capability; then every capability. */
	uint8_t msix = pci_find_cap(&d, PCI_CAP_MSIX, 0);
	if (msix && (msix < 0x40 || msix > 0xfc || (msix & 3) || cfg[msix] != PCI_CAP_MSIX))
		fh_fail("pci_find_cap(MSI-X) = %#x", msix);
	int n = 0;
	for (uint8_t c = pci_next_cap(&d, 0); c; c = pci_next_cap(&d, c))
		if (c < 0x40 || c > 0xfc || (c & 3) || ++n > 48)
			break; /* pci_next_cap alone does not bound the walk: its callers do */

	memset(&VD, 0, sizeof(VD));
	VD.pci = &d;
	VD.type = VIRTIO_ID_BALLOON;
	int rc = virtio_pci_parse_caps(&VD);
	if (max_read >= 0x100)
		fh_fail("configuration read at %#x, beyond the 256-byte header the capabilities live in",
			max_read);
	if (msgs)
		fflush(msgs);
	if (rc < 0) {
		if (rc != -ENODEV)
			fh_fail("virtio_pci_parse_caps = %d", rc);
		if (msgs && !strstr(msg, "virtio 00:00.0: "))
			fh_fail("device refused without a message");
		return 0;
	}
	if (rc != 0)
		fh_fail("virtio_pci_parse_caps = %d", rc);
	check_region("common", VD.common, VIRTIO_PCI_COMMON_LEN, VIRTIO_PCI_COMMON_LEN);
	check_region("ISR", VD.isr, 1, 1);
	check_region("notify", VD.notify, VD.notify_len, 2);
	if (VD.device_cfg)
		check_region("device configuration", VD.device_cfg, VD.device_cfg_len, 0);
	for (unsigned i = 0; i < nops; i++)
		try_config(ops[3 * i], ops[3 * i + 1], ops[3 * i + 2]);
	return 0;
}
