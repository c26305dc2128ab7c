/*
 * rng: virtio-rng driver and the `rng` shell command (see rng.h).
 *
 * One buffer, one request at a time. Each request posts rng_buf with its own
 * token, a generation number, and the buffer stays the device's until the
 * device returns it (2.7.14: the driver may not reuse a posted buffer), even
 * when the request gave up waiting. A request that finds the buffer still
 * out fails with -EBUSY instead of posting another, so a late answer can
 * never complete a later request with its length, and dead buffers cannot
 * pile up in the queue until every request fails. The late answer, when it
 * comes, is dropped and counted (the `rng_late` event).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rng.h"
#include "virtio.h"
#include "arch/x86_64/cpu.h"
#include "kernel/clock.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/parse.h"
#include "kernel/shell.h"
#include "kernel/addr.h"

#define RNG_TIMEOUT_MS 5000
#define RNG_BUF_BYTES 4096

static struct virtio_dev *rng;
static uint8_t *rng_buf;      /* RNG_BUF_BYTES, one request at a time */
static uint64_t rng_gen;      /* the last request's generation, its buffer's token */
static bool rng_posted;       /* rng_buf is the device's: posted, not yet returned */
static bool rng_waiting;      /* the request of generation rng_gen still waits */
static bool rng_done;         /* ... and its buffer came back, rng_len bytes long */
static uint32_t rng_len;
static uint64_t rng_late;     /* answers that came after their request gave up */

/* Take every returned buffer off the used ring. The one the waiting request
 * posted completes it; any other belongs to a request that timed out and is
 * dropped. Runs from the queue's work and from inside a request's wait (the
 * wait runs no work, so it polls the ring itself); never both at once. */
static void rng_reap(void)
{
	void *token;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(rng->queues[0], &token, &len)) == 1) {
		uint64_t gen = (uint64_t)(uintptr_t)token;
		if (gen == rng_gen)
			rng_posted = false; /* the only buffer out: it is ours again */
		if (rng_waiting && gen == rng_gen) {
			rng_len = len;
			rng_done = true;
		} else {
			rng_late++;
			printf("rng: late answer to request %lu (%u bytes), discarded\n",
			       (unsigned long)gen, len);
			event_emit("rng_late", "\"request\":%lu,\"bytes\":%u,\"late\":%lu",
				   (unsigned long)gen, len, (unsigned long)rng_late);
		}
	}
	if (rc < 0 && rng->driver) {
		/* vq_get_used said why; the device is unusable from now on. */
		printf("rng: the device broke the queue's rules; rng is off\n");
		rng->driver = NULL;
	}
}

static void rng_queue(struct virtio_dev *vd)
{
	(void)vd;
	rng_reap();
}

void rng_init(void)
{
	rng = virtio_find(VIRTIO_ID_RNG);
	if (!rng)
		return;
	rng_buf = mm_alloc_dma(RNG_BUF_BYTES);
	if (!rng_buf || virtio_start(rng, 0) < 0 || virtio_setup_queue(rng, 0, 64) < 0) {
		printf("rng: device not usable\n");
		return;
	}
	rng->driver = rng;
	virtio_ready(rng, NULL, rng_queue);
}

/* work_wait's test, with interrupts off: polls the ring, since the queue's
 * work item does not run during the wait. */
static bool rng_is_done(void *ctx)
{
	(void)ctx;
	rng_reap();
	return rng_done;
}

/* `rng [bytes [ms]]`: ask the host for random bytes and wait
 * for them, at most `ms` milliseconds (default 5000). Returns 0, -EINVAL, -ENODEV, -EBUSY (the buffer of an
 * earlier request that timed out is still the device's), -ETIMEDOUT, or
 * vq_add's error. */
static int cmd_rng(int argc, char **argv)
{
	if (!rng || !rng->driver)
		return -ENODEV;
	/* atoi took "-1" and overflowed on long numbers: the parser checks. */
	uint64_t n = 16, timeout_ms = RNG_TIMEOUT_MS;
	if ((argc > 1 && (parse_u64_max(argv[1], RNG_BUF_BYTES, &n) < 0 || n == 0)) ||
	    (argc > 2 && (parse_u64_max(argv[2], 60000, &timeout_ms) < 0 || timeout_ms == 0))) {
		printf("usage: rng [bytes [ms]], 1 to %d bytes, a timeout of 1 to 60000 ms\n", RNG_BUF_BYTES);
		return -EINVAL;
	}
	rng_reap(); /* an answer whose work has not run yet frees the buffer */
	if (!rng->driver)
		return -ENODEV;
	if (rng_posted) {
		printf("rng: the device still holds the buffer of request %lu, which timed out; "
		       "busy until it answers\n", (unsigned long)rng_gen);
		return -EBUSY;
	}
	struct vq_seg in = { virt_to_phys(rng_buf), n };
	uint64_t irqs = rng->queue_irqs;
	rng_gen++;
	int rc = vq_add(rng->queues[0], NULL, 0, &in, 1, (void *)(uintptr_t)rng_gen);
	if (rc < 0)
		return rc;
	rng_posted = true;
	rng_waiting = true;
	rng_done = false;
	virtio_notify(rng, 0);
	rc = work_wait(rng_is_done, NULL, (uint64_t)timeout_ms);
	rng_waiting = false;
	if (rc < 0) {
		printf("rng: no answer from the device in %lu ms (request %lu; its buffer stays "
		       "with the device until it answers)\n", (unsigned long)timeout_ms, (unsigned long)rng_gen);
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
SHELL_COMMAND(rng, "[bytes [ms]]", "read random bytes from a virtio-rng device", cmd_rng);
