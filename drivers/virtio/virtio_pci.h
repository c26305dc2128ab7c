/*
 * virtio_pci: the virtio 1.x modern PCI transport (virtio 1.2, section 4.1).
 *
 * A virtio PCI function describes its register blocks with vendor-specific
 * capabilities (4.1.4): common configuration (features, status, queue
 * setup), notification (where to write to kick a queue), ISR status (which
 * interrupt it was, for INTx) and device-specific configuration (for the
 * balloon: num_pages, actual, ...). The bring-up order (3.1.1) and
 * everything a driver calls are virtio.h's; this transport supplies the
 * registers behind struct virtio_ops.
 *
 * Both the transitional balloon (1af4:1002) and the modern-only one
 * (1af4:1045) are driven through the modern interface, unless a
 * transitional device has none (`disable-modern=on`) or `virtio.legacy`
 * asks for it: then its legacy I/O interface (virtio_pci_legacy.c). Interrupts are
 * MSI-X when the function has it (one vector for configuration changes, one
 * per queue), else INTx through the IOAPIC; `irq=poll` forces polling.
 */
#ifndef BLIMP_VIRTIO_PCI_H
#define BLIMP_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "drivers/pci/pci.h"
#include "drivers/virtio/virtio.h"

/* Find virtio functions among the PCI devices, map their capabilities and
 * add them to virtio_devs. A device whose capabilities are malformed is
 * reported and skipped. With `poll` (irq=poll) every device is polled
 * instead of interrupting. Returns the number of devices added. */
int virtio_pci_probe(bool poll);

/*
 * virtio_pci_cap.c: find vd->pci's common, notify, ISR and device
 * configuration in its vendor capabilities and map them (the first usable
 * capability of each kind; reserved kinds and BAR numbers ignored, 4.1.4).
 * Each region must lie within its BAR and be long enough for its registers.
 * Returns 0, or -ENODEV with a message saying what is wrong.
 */
int virtio_pci_parse_caps(struct virtio_dev *vd);

/* The modern PCI transport's configuration access (virtio_pci_cap.c), the
 * config_read/config_write32 of its virtio_ops: read guarded by
 * config_generation (4.1.4.3.1, 2.5.1); 0 or -EIO. */
int virtio_pci_config_read(struct virtio_dev *vd, uint32_t off, void *buf, uint32_t len);
int virtio_pci_config_write32(struct virtio_dev *vd, uint32_t off, uint32_t v);

/* virtio_pci_legacy.c: take vd->pci's legacy interface (I/O BAR 0, checked
 * to hold the registers and to lie in the port space), set vd->ops and
 * vd->legacy. 0, or -ENODEV with a message saying what is wrong. */
int virtio_pci_legacy_init(struct virtio_dev *vd);

/* Interrupt handlers both PCI transports use (ctx: the virtio_dev): INTx
 * asks the device (the line is shared), MSI-X messages say what they are. */
void virtio_pci_intx_handler(void *ctx);
void virtio_pci_msix_config_handler(void *ctx);
void virtio_pci_msix_queue_handler(void *ctx);

/* virtio_pci_irq.c: the interrupt kind both PCI interfaces take (MSI-X by
 * the interface's own setup_msix unless forced to INTx or polling, then
 * INTx if the pin routes, else polling), and INTx's wiring. */
void virtio_pci_irq_choose(struct virtio_dev *vd, bool poll, const char *force,
			   int (*setup_msix)(struct virtio_dev *vd));
int virtio_pci_irq_wire(struct virtio_dev *vd);

#endif
