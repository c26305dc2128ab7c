/*
 * virtio_pci_cap: the parts of the virtio PCI transport that read what the
 * device says about itself — its vendor capabilities (which BAR, offset and
 * length hold the common, notify, ISR and device configuration, 4.1.4) and
 * the device configuration, read stably under config_generation (4.1.4.3.1,
 * 2.5.1). See virtio_pci.h.
 *
 * Configuration space goes through pci_read* (pci.h), BARs are mapped by
 * pci_map_bar, registers are read through mmio.h: the same file compiles
 * into the kernel and into the host fuzz harness (tests/fuzz/host/fuzz_pci.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "virtio_pci.h"
#include "virtio_pci_regs.h"
#include "arch/x86_64/mmio.h"

/* Map the region one virtio capability describes; NULL (and a message) if bad. */
static volatile uint8_t *map_cap(struct pci_dev *d, uint8_t cap, uint32_t *len)
{
	uint8_t bar = pci_read8(d, cap + VIRTIO_PCI_CAP_BAR);
	uint32_t off = pci_read32(d, cap + VIRTIO_PCI_CAP_OFFSET);
	uint32_t length = pci_read32(d, cap + VIRTIO_PCI_CAP_LENGTH);
	if (bar > 5 || d->bar[bar].io || d->bar[bar].size == 0 ||
	    (uint64_t)off + length > d->bar[bar].size) {
		printf("virtio %02x:%02x.%x: capability at %#x names BAR %u offset %#x length %#x, "
		       "outside the BAR; device refused\n", d->bus, d->dev, d->fn, cap, bar, off, length);
		return NULL;
	}
	volatile uint8_t *region = pci_map_bar(d, bar, off, length);
	*len = length;
	return region;
}

/* See virtio_pci.h. A capability is refused with a message naming it. */
int virtio_pci_parse_caps(struct virtio_dev *vd)
{
	struct pci_dev *d = vd->pci;
	bool bad = false;
	uint32_t len = 0;
	/* One walk, bounded: 48 capabilities fill the header, so a list that
	 * goes on is a loop (pci_find_cap's own bound is per search, and vendor
	 * capabilities pointing at each other would restart it for ever). */
	int seen = 0;
	for (uint8_t c = pci_next_cap(d, 0); c && !bad; c = pci_next_cap(d, c)) {
		if (++seen > 48) {
			printf("virtio %02x:%02x.%x: capability list loops; device refused\n", d->bus, d->dev, d->fn);
			bad = true;
			break;
		}
		if (pci_read8(d, c) != PCI_CAP_VENDOR)
			continue;
		uint8_t cap_len = pci_read8(d, c + VIRTIO_PCI_CAP_LEN);
		uint8_t type = pci_read8(d, c + VIRTIO_PCI_CAP_CFG_TYPE);
		/* A capability at 0xfc has its BAR byte past the header (0x100, which
		 * port I/O aliases to offset 0): no BAR, so it is ignored. */
		uint8_t bar = c + VIRTIO_PCI_CAP_BAR < 0x100 ? pci_read8(d, c + VIRTIO_PCI_CAP_BAR) : 0xff;
		volatile uint8_t **slot = type == VIRTIO_PCI_CAP_COMMON_CFG ? &vd->common :
					  type == VIRTIO_PCI_CAP_ISR_CFG ? &vd->isr :
					  type == VIRTIO_PCI_CAP_DEVICE_CFG ? &vd->device_cfg :
					  type == VIRTIO_PCI_CAP_NOTIFY_CFG ? &vd->notify : NULL;
		/* Other kinds, a reserved BAR number (to be ignored, 4.1.4), or a
		 * second one of a kind: the first usable one is used. */
		if (!slot || bar > 5 || *slot)
			continue;
		uint8_t need = type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16;
		uint32_t min_len = type == VIRTIO_PCI_CAP_COMMON_CFG ? VIRTIO_PCI_COMMON_LEN :
				   type == VIRTIO_PCI_CAP_NOTIFY_CFG ? 2 : type == VIRTIO_PCI_CAP_ISR_CFG ? 1 : 0;
		if (cap_len < need || c + cap_len > 0x100) {
			printf("virtio %02x:%02x.%x: capability at %#x (type %u) is %u bytes long, "
			       "needs %u within the header; device refused\n", d->bus, d->dev, d->fn, c, type,
			       cap_len, need);
			bad = true;
			break;
		}
		*slot = map_cap(d, c, &len);
		if (*slot && len < min_len) {
			printf("virtio %02x:%02x.%x: capability at %#x (type %u) covers %u bytes, "
			       "fewer than the %u its registers need; device refused\n", d->bus, d->dev, d->fn,
			       c, type, len, min_len);
			*slot = NULL;
		}
		bad = !*slot;
		if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
			vd->device_cfg_len = len;
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
			vd->notify_len = len;
			vd->notify_mult = pci_read32(d, c + VIRTIO_PCI_CAP_NOTIFY_MULT);
		}
	}
	if (bad || !vd->common || !vd->isr || !vd->notify) {
		printf("virtio %02x:%02x.%x: no usable modern interface; device skipped\n", d->bus, d->dev, d->fn);
		return -ENODEV;
	}
	return 0;
}

int virtio_pci_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len)
{
	if (!vd->device_cfg || off > vd->device_cfg_len || len > vd->device_cfg_len - off)
		return -EIO;
	for (int tries = 0; tries < 16; tries++) {
		uint8_t gen = mmio_read8(vd->common + VIRTIO_PCI_COMMON_CONFIG_GENERATION);
		for (uint32_t i = 0; i < len;) {
			if (!((off + i) & 3) && len - i >= 4) {
				uint32_t v = mmio_read32(vd->device_cfg + off + i);
				memcpy((uint8_t *)buf + i, &v, 4);
				i += 4;
			} else {
				((uint8_t *)buf)[i] = mmio_read8(vd->device_cfg + off + i);
				i++;
			}
		}
		if (mmio_read8(vd->common + VIRTIO_PCI_COMMON_CONFIG_GENERATION) == gen)
			return 0;
	}
	printf("virtio %s: configuration kept changing while read\n", virtio_dev_name(vd));
	return -EIO;
}
int virtio_pci_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v)
{
	if (!vd->device_cfg || off > vd->device_cfg_len || 4 > vd->device_cfg_len - off || (off & 3))
		return -EIO;
	mmio_write32(vd->device_cfg + off, v);
	return 0;
}
