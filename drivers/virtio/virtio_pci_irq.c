/*
 * virtio_pci_irq: how both PCI interfaces of a virtio device (modern,
 * virtio_pci.c, and legacy, virtio_pci_legacy.c) choose and wire their
 * interrupt: MSI-X where the function has it, else INTx through the
 * IOAPIC, else polling. Only programming the MSI-X vectors differs between
 * the two (capability fields against I/O registers), so that is passed in.
 */
#include <string.h>
#include "virtio_pci.h"

void virtio_pci_irq_choose(struct virtio_dev *vd, bool poll, const char *force,
			   int (*setup_msix)(struct virtio_dev *vd))
{
	if (!poll && !(force && strcmp(force, "intx") == 0) && setup_msix(vd) == 0)
		vd->irq_mode = VIRTIO_IRQ_MSIX;
	else if (!poll && (vd->gsi = pci_intx_gsi(vd->pci)) >= 0)
		vd->irq_mode = VIRTIO_IRQ_INTX;
	else
		vd->irq_mode = VIRTIO_IRQ_POLL;
}

int virtio_pci_irq_wire(struct virtio_dev *vd)
{
	int rc = pci_enable_intx(vd->pci, virtio_pci_intx_handler, vd);
	return rc < 0 ? rc : 0;
}
