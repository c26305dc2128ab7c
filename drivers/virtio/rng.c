/*
 * rng: virtio-rng driver and the `rng` shell command (see rng.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "virtio_pci.h"
#include "arch/x86_64/cpu.h"
#include "kernel/clock.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/parse.h"
#include "kernel/shell.h"
#include "kernel/addr.h"

#define RNG_BUF_BYTES 4096

static struct virtio_dev *rng;
static uint8_t *rng_buf; /* RNG_BUF_BYTES, one request at a time */
static volatile bool rng_done;
static uint32_t rng_len;

static void rng_queue(struct virtio_dev *vd)
{
	void *token;
	uint32_t len;
	while (vq_get_used(vd->queues[0], &token, &len) == 1) {
		rng_len = len;
		rng_done = true;
	}
}

void rng_init(void)
{
	rng = virtio_find(VIRTIO_ID_RNG);
	if (!rng)
		return;
	rng_buf = mm_alloc_dma(RNG_BUF_BYTES);
	if (!rng_buf || virtio_pci_start(rng, 0) < 0 || virtio_pci_setup_queue(rng, 0, 64) < 0) {
		printf("rng: device not usable\n");
		return;
	}
	rng->driver = rng;
	virtio_pci_ready(rng, NULL, rng_queue);
}

static bool rng_is_done(void *ctx)
{
	(void)ctx;
	return rng_done;
}

/* `rng [bytes]`: ask the host for random bytes and wait (bounded) for the
 * interrupt that says they arrived. */
static int cmd_rng(int argc, char **argv)
{
	if (!rng || !rng->driver)
		return -ENODEV;
	/* atoi took "-1" and overflowed on long numbers: the parser checks. */
	uint64_t n = 16;
	if (argc > 1 && (parse_u64_max(argv[1], RNG_BUF_BYTES, &n) < 0 || n == 0)) {
		printf("usage: rng [bytes], 1 to %d\n", RNG_BUF_BYTES);
		return -EINVAL;
	}
	struct vq_seg in = { virt_to_phys(rng_buf), n };
	rng_done = false;
	uint64_t irqs = rng->queue_irqs;
	int rc = vq_add(rng->queues[0], NULL, 0, &in, 1, rng_buf);
	if (rc < 0)
		return rc;
	virtio_pci_notify(rng, 0);
	rc = work_wait(rng_is_done, NULL, 5000);
	if (rc < 0) {
		printf("rng: no answer from the device in 5 s\n");
		return rc;
	}
	printf("rng: %u bytes:", rng_len);
	for (unsigned i = 0; i < rng_len && i < 32; i++)
		printf(" %02x", rng_buf[i]);
	printf("\n");
	event_emit("rng", "\"bytes\":%u,\"irq_count_delta\":%lu", rng_len,
		   (unsigned long)(rng->queue_irqs - irqs));
	return 0;
}
SHELL_COMMAND(rng, "[bytes]", "read random bytes from a virtio-rng device", cmd_rng);
