/*
 * fuzz_virtqueue: the used-ring consumer (drivers/virtio/virtqueue.c) against
 * a device whose every answer comes from the fuzzer.
 *
 * The input is a program, one byte of opcode and its arguments at a time:
 * the driver posts buffers (direct or indirect, 1-4 segments), and the
 * device pops them (tests/unit/virtio_sim.c) and writes used entries that
 * are right, or name any id with any length, or move used.idx anywhere.
 * The driver consumes with vq_get_used. After every step:
 *   - a token comes back only if it was posted and not yet returned;
 *   - free descriptors + descriptors of buffers in flight == queue size,
 *     unless the queue is broken, and a broken queue says why and stays
 *     broken (every later call refuses);
 *   - ASan/UBSan: no access outside the rings, tables and shadow arrays.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "drivers/virtio/virtqueue.h"
#include "tests/unit/virtio_sim.h"

#define SIZE 16
#define MAX_IND 4
#define TOKENS 64

static uint8_t data[TOKENS][64];

struct input {
	const uint8_t *p;
	size_t n;
};

static int next(struct input *in)
{
	if (in->n == 0)
		return -1;
	in->n--;
	return *in->p++;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
	struct input in = { buf, size };
	int flags = next(&in);
	if (flags < 0)
		return 0;
	bool event_idx = flags & 1, indirect = flags & 2;
	void *ring = aligned_alloc(4096, (vq_ring_bytes(SIZE) + 4095) & ~(size_t)4095);
	void *tables = indirect ? aligned_alloc(16, vq_indirect_bytes(SIZE, MAX_IND)) : NULL;
	struct vq q;
	struct vsim dev;
	int rc = vq_init(&q, 0, SIZE, ring, event_idx, tables, indirect ? MAX_IND : 0);
	assert(rc == 0);
	vsim_attach(&dev, &q);
	dev.event_idx = event_idx;

	bool posted[TOKENS] = { false };
	unsigned desc_in_flight[TOKENS] = { 0 };
	unsigned outstanding = 0, used_desc = 0;
	int op;
	while ((op = next(&in)) >= 0) {
		switch (op % 6) {
		case 0: { /* the driver posts a buffer */
			int t = next(&in), segs = next(&in);
			if (t < 0 || segs < 0)
				break;
			t %= TOKENS;
			if (posted[t])
				break;
			unsigned n = 1 + (unsigned)segs % 4, n_out = (unsigned)segs / 4 % (n + 1);
			struct vq_seg s[4];
			for (unsigned i = 0; i < n; i++)
				s[i] = (struct vq_seg){ (uint64_t)(uintptr_t)&data[t][i * 16], 16 };
			unsigned before = q.num_free;
			rc = vq_add(&q, s, n_out, s + n_out, n - n_out, &data[t]);
			if (rc == 0) {
				posted[t] = true;
				desc_in_flight[t] = before - q.num_free;
				used_desc += desc_in_flight[t];
				outstanding++;
			} else {
				assert(rc == -ENOSPC || rc == -EIO);
				assert(q.num_free == before);
			}
			vq_kick_prepare(&q);
			break;
		}
		case 1: { /* the device takes one and answers truthfully */
			struct vsim_buf b;
			if (vsim_pop(&dev, &b) == 1)
				vsim_push(&dev, b.head, b.in_len);
			break;
		}
		case 2: { /* the device writes a used entry of its choosing */
			int id = next(&in), len = next(&in);
			if (id < 0 || len < 0)
				break;
			vsim_push(&dev, (uint32_t)(id % (SIZE + 4)), (uint32_t)len * 97);
			break;
		}
		case 3: { /* used.idx moved anywhere */
			int lo = next(&in), hi = next(&in);
			if (lo < 0 || hi < 0)
				break;
			vsim_set_used_idx(&dev, (uint16_t)(lo | hi << 8));
			break;
		}
		case 4: { /* the driver consumes */
			void *tok;
			uint32_t len;
			rc = vq_get_used(&q, &tok, &len);
			if (rc == 1) {
				int t = (int)(((uint8_t(*)[64])tok) - data);
				assert(t >= 0 && t < TOKENS && posted[t]); /* posted, not returned yet */
				posted[t] = false;
				used_desc -= desc_in_flight[t];
				outstanding--;
			} else if (rc < 0) {
				assert(q.broken && vq_broken_reason(&q)[0] != 0);
			}
			break;
		}
		default: /* interrupts off and on */
			if (next(&in) & 1)
				vq_disable_cb(&q);
			else
				vq_enable_cb(&q);
		}
		if (q.broken) {
			void *tok;
			uint32_t len;
			struct vq_seg s = { (uint64_t)(uintptr_t)data[0], 16 };
			assert(vq_get_used(&q, &tok, &len) == -EIO);
			assert(vq_add(&q, &s, 1, NULL, 0, &data[0]) == -EIO);
			break; /* nothing more can happen to it */
		}
		assert(q.num_free + used_desc == SIZE);
		assert(q.in_flight == outstanding);
	}
	vq_destroy(&q);
	free(ring);
	free(tables);
	return 0;
}
