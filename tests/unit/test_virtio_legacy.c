/*
 * Host tests for the legacy virtio-pci transport
 * (drivers/virtio/virtio_pci_legacy.c) against a simulated device behind
 * I/O BAR 0: this file defines the port I/O (arch/x86_64/cpu.h declares it
 * for BLIMP_HOST) and the few PCI and interrupt calls the transport makes.
 * What QEMU's honest device cannot show is tested here: a BAR that is
 * missing, too small or outside the port space, a queue size that is not a
 * power of two, a page number already set or not taken, rings the device
 * would place elsewhere, configuration reads past the BAR or that never
 * settle, the configuration's move from 20 to 24 with MSI-X, and that no
 * access ever leaves the BAR.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "arch/x86_64/cpu.h"
#include "drivers/virtio/virtio_pci.h"

#define IO_BASE 0xc000

static struct {
	uint32_t bar_size;
	uint32_t features, driver_features;
	uint16_t qsize[8];
	uint32_t pfn[8];
	bool pfn_ignores_writes;   /* a device that does not take the page number */
	uint16_t sel, notified;
	uint8_t status, isr;
	bool msix_on, refuse_vectors;
	uint16_t cfg_vec, q_vec[8];
	uint8_t cfg[64];
	bool cfg_flaps;            /* every configuration read sees new bytes */
	int outside;               /* accesses outside the BAR */
	uint16_t command;
	char failed[160];
} dev;

static struct pci_dev pdev;
static struct virtio_dev vd;

/* ---------------------------------------------------------------- the device */

static uint32_t cfg_off(void) { return dev.msix_on ? 24 : 20; }

static bool inside(uint16_t port, unsigned width)
{
	if (port < IO_BASE || port + width > IO_BASE + dev.bar_size) {
		dev.outside++;
		return false;
	}
	return true;
}

static uint32_t dev_read(uint16_t port, unsigned width)
{
	if (!inside(port, width))
		return 0xffffffffu >> (32 - 8 * width);
	unsigned off = port - IO_BASE;
	if (off >= cfg_off()) {
		uint32_t v = 0;
		for (unsigned i = 0; i < width; i++)
			v |= (uint32_t)dev.cfg[off - cfg_off() + i] << (8 * i);
		if (dev.cfg_flaps)
			dev.cfg[0]++;
		return v;
	}
	uint16_t q = dev.sel < 8 ? dev.sel : 0;
	switch (off) {
	case 0: return dev.features;
	case 4: return dev.driver_features;
	case 8: return dev.sel < 8 ? dev.pfn[q] : 0;
	case 12: return dev.sel < 8 ? dev.qsize[q] : 0;
	case 14: return dev.sel;
	case 18: return dev.status;
	case 19: { uint8_t v = dev.isr; dev.isr = 0; return v; }
	case 20: return dev.cfg_vec;
	case 22: return dev.q_vec[q];
	}
	return 0;
}

static void dev_write(uint16_t port, unsigned width, uint32_t v)
{
	if (!inside(port, width))
		return;
	unsigned off = port - IO_BASE;
	if (off >= cfg_off()) {
		for (unsigned i = 0; i < width; i++)
			dev.cfg[off - cfg_off() + i] = (uint8_t)(v >> (8 * i));
		return;
	}
	uint16_t q = dev.sel < 8 ? dev.sel : 0;
	switch (off) {
	case 4: dev.driver_features = v; break;
	case 8: if (!dev.pfn_ignores_writes) dev.pfn[q] = v; break;
	case 14: dev.sel = (uint16_t)v; break;
	case 16: dev.notified = (uint16_t)v; break;
	case 18: dev.status = (uint8_t)v; break;
	case 20: dev.cfg_vec = dev.refuse_vectors ? 0xffff : (uint16_t)v; break;
	case 22: dev.q_vec[q] = dev.refuse_vectors ? 0xffff : (uint16_t)v; break;
	}
}

void outb(uint16_t port, uint8_t v) { dev_write(port, 1, v); }
void outw(uint16_t port, uint16_t v) { dev_write(port, 2, v); }
void outl(uint16_t port, uint32_t v) { dev_write(port, 4, v); }
uint8_t inb(uint16_t port) { return (uint8_t)dev_read(port, 1); }
uint16_t inw(uint16_t port) { return (uint16_t)dev_read(port, 2); }
uint32_t inl(uint16_t port) { return dev_read(port, 4); }

/* ---------------------------------------------------------------- the rest of the kernel */

uint16_t pci_read16(const struct pci_dev *d, uint16_t off) { (void)d; return off == 4 ? dev.command : 0; }
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v) { (void)d; if (off == 4) dev.command = v; }
int pci_msix_enable(struct pci_dev *d) { if (!d->msix_cap) return -ENODEV; dev.msix_on = true; return 0; }
void pci_msix_disable(struct pci_dev *d) { (void)d; dev.msix_on = false; }
int pci_msix_set_vector(struct pci_dev *d, uint16_t entry, int vector) { (void)d; (void)entry; (void)vector; return 0; }
int pci_intx_gsi(const struct pci_dev *d) { (void)d; return 21; }
int pci_enable_intx(struct pci_dev *d, irq_handler_fn fn, void *ctx) { (void)d; (void)fn; (void)ctx; return 21; }
int irq_alloc_vector(void) { static int v = 0x40; return v++; }
int irq_set_handler(int vector, irq_handler_fn fn, void *ctx) { (void)vector; (void)fn; (void)ctx; return 0; }
void virtio_pci_intx_handler(void *ctx) { (void)ctx; }
void virtio_pci_msix_config_handler(void *ctx) { (void)ctx; }
void virtio_pci_msix_queue_handler(void *ctx) { (void)ctx; }

int virtio_fail(struct virtio_dev *d, const char *why)
{
	snprintf(dev.failed, sizeof(dev.failed), "%s", why);
	d->failed = true;
	return -EIO;
}

/* ---------------------------------------------------------------- tests */

/* A balloon-like device: 32-byte BAR, three queues of 128. */
static int setup(void **state)
{
	(void)state;
	memset(&dev, 0, sizeof(dev));
	memset(&vd, 0, sizeof(vd));
	memset(&pdev, 0, sizeof(pdev));
	dev.bar_size = 32;
	dev.features = 0x71000036;
	dev.qsize[0] = dev.qsize[1] = dev.qsize[2] = 128;
	pdev.vendor = 0x1af4;
	pdev.device = 0x1002;
	pdev.bar[0] = (struct pci_bar){ .base = IO_BASE, .size = 32, .io = true };
	vd.pci = &pdev;
	vd.type = VIRTIO_ID_BALLOON;
	return 0;
}

static int check_inside(void **state)
{
	(void)state;
	assert_int_equal(dev.outside, 0);
	return 0;
}

static void the_bar_is_checked(void **state)
{
	(void)state;
	struct pci_bar good = pdev.bar[0];
	pdev.bar[0].io = false;                       /* a memory BAR */
	assert_int_equal(virtio_pci_legacy_init(&vd), -ENODEV);
	pdev.bar[0] = good;
	pdev.bar[0].size = 16;                        /* shorter than the registers */
	assert_int_equal(virtio_pci_legacy_init(&vd), -ENODEV);
	pdev.bar[0] = good;
	pdev.bar[0].size = 20;
	pdev.msix_cap = 0x40;                         /* MSI-X needs the vectors at 20 and 22 */
	assert_int_equal(virtio_pci_legacy_init(&vd), -ENODEV);
	pdev.msix_cap = 0;
	pdev.bar[0] = (struct pci_bar){ .base = 0xfff0, .size = 32, .io = true }; /* past 0xffff */
	assert_int_equal(virtio_pci_legacy_init(&vd), -ENODEV);
	pdev.bar[0] = (struct pci_bar){ .base = 0, .size = 32, .io = true };      /* never assigned */
	assert_int_equal(virtio_pci_legacy_init(&vd), -ENODEV);
	assert_null(vd.ops);
	assert_false(vd.legacy);

	pdev.bar[0] = good;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	assert_true(vd.legacy);
	assert_string_equal(vd.ops->name, "pci-legacy");
	assert_int_equal(vd.ops->used_align, 4096);
	assert_true(vd.ops->fixed_queue_size);
	assert_int_equal(vd.device_cfg_len, 32 - 20);
	assert_int_equal(dev.command & 5, 5);         /* I/O decoding and bus mastering on */
}

static void registers_features_status_and_isr(void **state)
{
	(void)state;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	dev.features = 0xffffffff;
	assert_int_equal(vd.ops->get_features(&vd), 0xffffffffULL); /* 32 bits, nothing above */
	vd.ops->set_features(&vd, 0x1234567830000006ULL);
	assert_int_equal(dev.driver_features, 0x30000006);
	vd.ops->set_status(&vd, 7);
	assert_int_equal(vd.ops->get_status(&vd), 7);
	dev.isr = 0xff; /* bits the transport does not know are dropped; the read acknowledged */
	assert_int_equal(vd.ops->interrupt_status(&vd), VIRTIO_INT_QUEUE | VIRTIO_INT_CONFIG);
	assert_int_equal(dev.isr, 0);
	vd.ops->notify(&vd, 2);
	assert_int_equal(dev.notified, 2);
	dev.qsize[4] = 8; /* queues counted up to the last with a size */
	assert_int_equal(vd.ops->num_queues(&vd), 5);
}

static void queue_sizes_and_page_numbers_from_the_device_are_checked(void **state)
{
	(void)state;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	assert_int_equal(vd.ops->queue_max(&vd, 0), 128);
	assert_int_equal(vd.ops->queue_max(&vd, 5), 0);  /* no such queue */
	assert_false(vd.failed);
	dev.qsize[1] = 100;
	assert_int_equal(vd.ops->queue_max(&vd, 1), -EIO);
	assert_non_null(strstr(dev.failed, "not a power of two"));
	vd.failed = false;
	dev.pfn[2] = 0x777;                                /* in use before set-up */
	assert_int_equal(vd.ops->queue_max(&vd, 2), -EIO);
	assert_non_null(strstr(dev.failed, "before it was set up"));
}

static void rings_must_sit_where_the_device_computes_them(void **state)
{
	(void)state;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	const uint64_t desc = 0x100000;
	/* size 128: available ring after 2048 bytes of descriptors, used ring at 4096 */
	assert_int_equal(vd.ops->queue_enable(&vd, 0, 128, desc, desc + 2048, desc + 2368), -EINVAL); /* 64-aligned */
	assert_int_equal(vd.ops->queue_enable(&vd, 0, 128, desc + 64, desc + 64 + 2048, desc + 4096), -EINVAL);
	assert_int_equal(vd.ops->queue_enable(&vd, 0, 128, 1ULL << 44, (1ULL << 44) + 2048,
					      (1ULL << 44) + 4096), -EINVAL); /* page number above 32 bits */
	assert_int_equal(dev.pfn[0], 0);                   /* nothing reached the device */
	assert_int_equal(vd.ops->queue_enable(&vd, 0, 128, desc, desc + 2048, desc + 4096), 0);
	assert_int_equal(dev.pfn[0], desc >> 12);
	/* 256 entries: 4096 + 518 bytes before the used ring, which goes to 8192 */
	assert_int_equal(vd.ops->queue_enable(&vd, 1, 256, desc, desc + 4096, desc + 8192), 0);
	dev.pfn_ignores_writes = true;
	assert_int_equal(vd.ops->queue_enable(&vd, 2, 128, desc, desc + 2048, desc + 4096), -EIO);
	assert_non_null(strstr(dev.failed, "page number reads 0"));
}

static void configuration_reads_stay_in_the_bar_and_must_settle(void **state)
{
	(void)state;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	for (int i = 0; i < 12; i++)
		dev.cfg[i] = (uint8_t)(0x10 + i);
	uint8_t buf[16];
	assert_int_equal(vd.ops->config_read(&vd, 0, buf, 8), 0);
	assert_int_equal(buf[0], 0x10);
	assert_int_equal(buf[7], 0x17);
	assert_int_equal(vd.ops->config_read(&vd, 3, buf, 9), 0); /* unaligned: bytes, then words */
	assert_int_equal(buf[0], 0x13);
	assert_int_equal(buf[8], 0x1b);
	assert_int_equal(vd.ops->config_read(&vd, 4, buf, 9), -EIO);  /* past the BAR's 12 bytes */
	assert_int_equal(vd.ops->config_read(&vd, 13, buf, 0), -EIO);
	assert_int_equal(vd.ops->config_write32(&vd, 4, 0xaabbccdd), 0);
	assert_int_equal(dev.cfg[4], 0xdd);
	assert_int_equal(vd.ops->config_write32(&vd, 10, 1), -EIO);   /* misaligned, and past the end */
	assert_int_equal(vd.ops->config_write32(&vd, 12, 1), -EIO);
	dev.cfg_flaps = true;
	assert_int_equal(vd.ops->config_read(&vd, 0, buf, 4), -EIO);  /* never two equal reads */
}

static void msix_moves_the_configuration_to_24(void **state)
{
	(void)state;
	pdev.msix_cap = 0x40;
	pdev.msix_size = 3;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	vd.ops->irq_choose(&vd, false, NULL);
	assert_int_equal(vd.irq_mode, VIRTIO_IRQ_MSIX);
	assert_true(vd.io_msix);
	assert_int_equal(dev.cfg_vec, 0);
	assert_int_equal(vd.device_cfg_len, 32 - 24);
	dev.cfg[0] = 0x5a; /* at port 24 now */
	uint8_t b;
	assert_int_equal(vd.ops->config_read(&vd, 0, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	assert_int_equal(vd.ops->config_read(&vd, 8, &b, 1), -EIO);
	const uint64_t desc = 0x200000;
	assert_int_equal(vd.ops->queue_enable(&vd, 1, 128, desc, desc + 2048, desc + 4096), 0);
	assert_int_equal(dev.q_vec[1], 2); /* entry 0 is configuration's */

	/* A device that refuses the configuration vector: INTx, configuration back at 20. */
	setup(NULL);
	pdev.msix_cap = 0x40;
	pdev.msix_size = 3;
	dev.refuse_vectors = true;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	vd.ops->irq_choose(&vd, false, NULL);
	assert_int_equal(vd.irq_mode, VIRTIO_IRQ_INTX);
	assert_false(vd.io_msix);
	assert_false(dev.msix_on);
	assert_int_equal(vd.device_cfg_len, 32 - 20);
	/* Forced INTx never turns MSI-X on. */
	setup(NULL);
	pdev.msix_cap = 0x40;
	pdev.msix_size = 3;
	assert_int_equal(virtio_pci_legacy_init(&vd), 0);
	vd.ops->irq_choose(&vd, false, "intx");
	assert_int_equal(vd.irq_mode, VIRTIO_IRQ_INTX);
	assert_false(dev.msix_on);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(the_bar_is_checked, setup, check_inside),
		cmocka_unit_test_setup_teardown(registers_features_status_and_isr, setup, check_inside),
		cmocka_unit_test_setup_teardown(queue_sizes_and_page_numbers_from_the_device_are_checked, setup, check_inside),
		cmocka_unit_test_setup_teardown(rings_must_sit_where_the_device_computes_them, setup, check_inside),
		cmocka_unit_test_setup_teardown(configuration_reads_stay_in_the_bar_and_must_settle, setup, check_inside),
		cmocka_unit_test_setup_teardown(msix_moves_the_configuration_to_24, setup, check_inside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
