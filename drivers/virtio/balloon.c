/*
 * balloon: virtio-balloon driver (see balloon.h).
 *
 * Configuration layout (virtio 1.2, 5.5.4): num_pages (le32, what the host
 * wants the balloon to hold, in 4 KiB pages) at 0, actual (le32, what the
 * guest holds, written by the guest) at 4. The host changes num_pages and
 * raises a configuration-change interrupt.
 */
#include <stdio.h>
#include <string.h>
#include "balloon.h"
#include "virtio_pci.h"
#include "kernel/event.h"

#define BALLOON_CFG_NUM_PAGES 0
#define BALLOON_CFG_ACTUAL 4

static struct virtio_dev *bdev;

static void balloon_config_changed(struct virtio_dev *vd)
{
	uint32_t cfg[2];
	if (virtio_pci_config_read(vd, 0, cfg, sizeof(cfg)) < 0)
		return;
	static const char *const modes[] = { "none", "intx", "msix", "poll" };
	event_emit("virtio_config_change", "\"device\":\"balloon\",\"irq\":\"%s\",\"num_pages\":%u,"
		   "\"actual\":%u,\"config_irqs\":%lu", modes[vd->irq_mode], cfg[0], cfg[1],
		   (unsigned long)vd->config_irqs);
}

void balloon_init(void)
{
	bdev = virtio_find(VIRTIO_ID_BALLOON);
	if (!bdev)
		return;
	if (virtio_pci_start(bdev, 0) < 0)
		return;
	for (uint16_t q = 0; q < 2; q++)
		if (virtio_pci_setup_queue(bdev, q, 128) < 0) {
			printf("balloon: queue %u could not be set up\n", q);
			return;
		}
	bdev->driver = bdev;
	virtio_pci_ready(bdev, balloon_config_changed, NULL);
}
