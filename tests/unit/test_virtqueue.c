/*
 * Host tests for the split virtqueue (drivers/virtio/virtqueue.c) against a
 * simulated device (tests/unit/virtio_sim.c) that can also lie.
 * The random test prints its seed; VQ_SEED=<n> replays it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "drivers/virtio/virtqueue.h"
#include "kernel/addr.h"
#include "kernel/prng.h"
#include "tests/unit/virtio_sim.h"

static struct vq Q;
static struct vsim S;
static void *ring, *tables;
static uint8_t bufs[64][256];

static void make(uint16_t size, bool event_idx, bool indirect)
{
	free(ring);
	free(tables);
	ring = aligned_alloc(64, (vq_ring_bytes(size) + 63) & ~63UL);
	tables = indirect ? aligned_alloc(64, vq_indirect_bytes(size, 8)) : NULL;
	vq_destroy(&Q);
	assert_int_equal(vq_init(&Q, 0, size, ring, event_idx, tables, 8), 0);
	vsim_attach(&S, &Q);
}

static int teardown(void **state)
{
	(void)state;
	vq_destroy(&Q);
	free(ring);
	free(tables);
	ring = tables = NULL;
	return 0;
}

static struct vq_seg seg(int i, uint32_t len)
{
	return (struct vq_seg){ virt_to_phys(bufs[i]), len };
}

static void round_trip_and_full_queue(void **state)
{
	(void)state;
	make(4, false, false);
	assert_int_equal(vq_init(&Q, 0, 3, ring, false, NULL, 0), -EINVAL);
	assert_int_equal(vq_init(&Q, 0, 0, ring, false, NULL, 0), -EINVAL);
	make(4, false, false);
	struct vq_seg o = seg(0, 16), in = seg(1, 100);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vq_add(&Q, &o, 1, &in, 1, bufs[10 + i]), 0);
	assert_int_equal(vq_add(&Q, &o, 1, &in, 1, bufs[12]), -ENOSPC); /* 4 descriptors used */
	assert_int_equal(vq_add(&Q, NULL, 0, NULL, 0, bufs[12]), -EINVAL);
	struct vq_seg zero = seg(0, 0);
	assert_int_equal(vq_add(&Q, &zero, 1, NULL, 0, bufs[12]), -EINVAL);
	struct vsim_buf b;
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(b.n_out, 1);
	assert_int_equal(b.n_in, 1);
	assert_int_equal(b.in_len, 100);
	vsim_push(&S, b.head, 42);
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[10]);
	assert_int_equal(len, 42);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 0);
	assert_int_equal(Q.num_free, 2);
	assert_int_equal(vq_add(&Q, &o, 1, &in, 1, bufs[12]), 0);
}

static void wraps_16_bit_indices(void **state)
{
	(void)state;
	make(8, true, true);
	/* Start both sides just below the wrap, as after a long uptime. */
	Q.avail_idx = Q.kicked_idx = Q.last_used = 0xfff0;
	Q.avail->idx = 0xfff0;
	Q.used->idx = 0xfff0;
	vsim_attach(&S, &Q);
	for (long i = 0; i < 70000; i++) {
		struct vq_seg o = seg(i % 8, 8), in[2] = { seg(8, 4), seg(9, 4) };
		assert_int_equal(vq_add(&Q, &o, 1, in, 2, bufs[(i % 8) + 16]), 0);
		struct vsim_buf b;
		assert_int_equal(vsim_pop(&S, &b), 1);
		assert_int_equal(b.n_in, 2);
		vsim_push(&S, b.head, 8);
		void *tok;
		uint32_t len;
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
		assert_ptr_equal(tok, bufs[(i % 8) + 16]);
	}
	assert_int_equal(Q.num_free, 8);
	assert_int_equal(Q.in_flight, 0);
}

static void indirect_when_negotiated_chains_otherwise(void **state)
{
	(void)state;
	struct vq_seg s3[3] = { seg(0, 10), seg(1, 20), seg(2, 30) };
	struct vsim_buf b;
	make(4, false, true);
	assert_int_equal(vq_add(&Q, s3, 1, s3 + 1, 2, bufs[20]), 0);
	assert_int_equal(Q.num_free, 3); /* one descriptor, pointing at a table */
	assert_true(Q.desc[0].flags & VQ_DESC_F_INDIRECT);
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(b.n_out + b.n_in, 3);
	assert_int_equal(b.in_len, 50);
	make(4, false, false);
	assert_int_equal(vq_add(&Q, s3, 1, s3 + 1, 2, bufs[20]), 0);
	assert_int_equal(Q.num_free, 1); /* a chain of three */
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(b.n_out + b.n_in, 3);
	vsim_push(&S, b.head, 50);
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_int_equal(Q.num_free, 4);
}

static void notification_suppression(void **state)
{
	(void)state;
	struct vq_seg o = seg(0, 8);
	make(16, false, false);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[30]), 0);
	assert_true(vq_kick_prepare(&Q));
	vsim_set_no_notify(&S, true);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[31]), 0);
	assert_false(vq_kick_prepare(&Q));

	make(16, true, false);
	vsim_set_avail_event(&S, 0); /* the device wants to hear about index 0 */
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[30]), 0);
	assert_true(vq_kick_prepare(&Q));
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[31]), 0);
	assert_false(vq_kick_prepare(&Q)); /* index 1: not asked for */
	vsim_set_avail_event(&S, 3);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[32]), 0);
	assert_false(vq_kick_prepare(&Q)); /* index 2 */
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[33]), 0);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[34]), 0);
	assert_true(vq_kick_prepare(&Q)); /* 3 was among the two just added */
}

static void enable_cb_reports_the_race(void **state)
{
	(void)state;
	struct vq_seg in = seg(0, 8);
	struct vsim_buf b;
	make(8, true, false);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[40]), 0);
	vq_disable_cb(&Q);
	assert_int_equal(vsim_pop(&S, &b), 1);
	uint16_t before = S.used_idx;
	vsim_push(&S, b.head, 8); /* completes while interrupts are off */
	assert_false(vsim_wants_interrupt(&S, before, S.used_idx));
	assert_true(vq_enable_cb(&Q));
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_false(vq_enable_cb(&Q));
	/* used_event now asks for the next completion. */
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[41]), 0);
	assert_int_equal(vsim_pop(&S, &b), 1);
	uint16_t old = S.used_idx;
	vsim_push(&S, b.head, 8);
	assert_true(vsim_wants_interrupt(&S, old, S.used_idx));
}

/* Post two buffers, let the device do something wrong, expect broken. */
static void expect_broken(void (*misbehave)(void), const char *needle)
{
	struct vq_seg in = seg(0, 64);
	make(8, true, false);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[50]), 0);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[51]), 0);
	misbehave();
	void *tok;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(&Q, &tok, &len)) == 1)
		;
	assert_int_equal(rc, -EIO);
	if (!strstr(vq_broken_reason(&Q), needle))
		fail_msg("reason '%s' lacks '%s'", vq_broken_reason(&Q), needle);
	/* Everything after fails cleanly. */
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[52]), -EIO);
	assert_int_equal(vq_get_used(&Q, &tok, &len), -EIO);
	assert_false(vq_kick_prepare(&Q));
}

static void bad_id(void) { vsim_push(&S, 200, 0); }
static void duplicate_id(void) { vsim_push(&S, 0, 8); vsim_push(&S, 0, 8); }
static void non_head_id(void) { vsim_push(&S, 5, 8); }
static void index_jump(void) { vsim_push(&S, 0, 8); vsim_set_used_idx(&S, 40); }
static void length_lie(void) { vsim_push(&S, 0, 65); }
static void wrapped_jump(void) { vsim_set_used_idx(&S, 0xffff); }

static void hostile_device_is_detected(void **state)
{
	(void)state;
	expect_broken(bad_id, "beyond the queue size");
	expect_broken(duplicate_id, "not a buffer in flight");
	expect_broken(non_head_id, "not a buffer in flight");
	expect_broken(index_jump, "moved from 0 to 40 with only 2 buffers in flight");
	expect_broken(length_lie, "65 bytes written, but only 64");
	expect_broken(wrapped_jump, "moved from 0 to 65535");
}

static uint64_t rs;
static uint64_t rnd(void) { return prng_xorshift64(&rs); }

static void random_out_of_order_completion(void **state)
{
	(void)state;
	uint64_t seed = getenv("VQ_SEED") ? strtoull(getenv("VQ_SEED"), 0, 0) : 424242;
	printf("virtqueue random seed %llu (VQ_SEED to replay)\n", (unsigned long long)seed);
	rs = seed ? seed : 1;
	make(32, true, true);
	struct vsim_buf held[32];
	int n_held = 0, outstanding = 0;
	for (int op = 0; op < 200000; op++) {
		uint64_t r = rnd();
		if (r % 3 == 0) {
			unsigned n_out = r >> 8 & 3, n_in = (r >> 10 & 3) + (n_out == 0);
			struct vq_seg segs[8];
			for (unsigned i = 0; i < n_out + n_in; i++)
				segs[i] = seg(i, 1 + (uint32_t)(r >> (12 + i) & 63));
			int rc = vq_add(&Q, segs, n_out, segs + n_out, n_in, bufs[32 + (op % 32)]);
			assert_true(rc == 0 || rc == -ENOSPC);
			outstanding += rc == 0;
		} else if (r % 3 == 1 && n_held < 32) {
			if (vsim_pop(&S, &held[n_held]) == 1)
				n_held++;
		} else if (n_held > 0) {
			int i = (int)((r >> 20) % (uint64_t)n_held); /* out of order */
			vsim_push(&S, held[i].head, held[i].in_len ? (uint32_t)(r >> 30) % (held[i].in_len + 1) : 0);
			held[i] = held[--n_held];
			void *tok;
			uint32_t len;
			assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
			outstanding--;
		}
		assert_int_equal(Q.in_flight, outstanding);
	}
	assert_false(Q.broken);
}

/* Found by fuzz_virtqueue: two writable segments of 2 GiB + 50 wrapped the
 * 32-bit writable total to 100, so an honest device reporting 101 bytes broke
 * the queue. A chain over 4 GiB - 1 is refused (virtio 1.2, 2.7.13.1). */
static void chain_longer_than_4gib_is_refused(void **state)
{
	(void)state;
	make(4, false, false);
	struct vq_seg in[2] = { seg(0, 0x80000032u), seg(1, 0x80000032u) };
	assert_int_equal(vq_add(&Q, NULL, 0, in, 2, bufs[10]), -EINVAL);
	assert_int_equal(Q.num_free, 4);
	in[1].len = 0x7fffffcdu; /* 4 GiB - 1 in all: accepted */
	assert_int_equal(vq_add(&Q, NULL, 0, in, 2, bufs[10]), 0);
	assert_int_equal(Q.shadow[0].in_len, 0xffffffffu);
}

/* Legacy PCI fixes the used ring at the next 4096 boundary (virtio 1.2,
 * 2.7.2 legacy) and a legacy device finds both rings from the descriptor
 * table's address alone. Check vq_init_aligned puts them where such a device
 * computes them (QEMU's sum leaves out used_event: the same place for every
 * power-of-two size), and that a buffer makes the round trip through the
 * device's view of the ring. */
static void used_ring_at_the_legacy_alignment(void **state)
{
	(void)state;
	for (uint32_t size = 1; size <= 1024; size *= 2) {
		size_t bytes = vq_ring_bytes_aligned((uint16_t)size, 4096);
		free(ring);
		ring = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
		vq_destroy(&Q);
		assert_int_equal(vq_init_aligned(&Q, 0, (uint16_t)size, ring, true, NULL, 0, 4096), 0);
		uint8_t *base = ring;
		uint8_t *dev_avail = base + 16 * size;
		uint8_t *dev_used = base + ((16 * size + 4 + 2 * size + 4095) & ~(size_t)4095);
		assert_ptr_equal(Q.avail, dev_avail);
		assert_ptr_equal(Q.used, dev_used);
		assert_int_equal(((uintptr_t)Q.used - (uintptr_t)base) % 4096, 0);
		assert_true(bytes >= (size_t)(dev_used - base) + 6 + 8 * size); /* room for avail_event */
		assert_true(vq_ring_bytes_aligned((uint16_t)size, 64) == vq_ring_bytes((uint16_t)size));

		struct vq dev = Q; /* the device's view: its own arithmetic, not vq's pointers */
		dev.avail = (struct vq_avail *)dev_avail;
		dev.used = (struct vq_used *)dev_used;
		vsim_attach(&S, &dev);
		struct vq_seg in = seg(1, 64);
		assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[20]), 0);
		struct vsim_buf b;
		assert_int_equal(vsim_pop(&S, &b), 1);
		assert_int_equal(b.in_len, 64);
		vsim_push(&S, b.head, 64);
		void *tok;
		uint32_t len;
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
		assert_ptr_equal(tok, bufs[20]);
		assert_int_equal(len, 64);
	}
	for (size_t bad = 0; bad <= 8192; bad = bad ? bad * 2 : 1)
		if (bad < 4 || bad > 4096)
			assert_int_equal(vq_init_aligned(&Q, 0, 4, ring, false, NULL, 0, bad), -EINVAL);
	assert_int_equal(vq_init_aligned(&Q, 0, 4, ring, false, NULL, 0, 48), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(round_trip_and_full_queue, teardown),
		cmocka_unit_test_teardown(used_ring_at_the_legacy_alignment, teardown),
		cmocka_unit_test_teardown(wraps_16_bit_indices, teardown),
		cmocka_unit_test_teardown(indirect_when_negotiated_chains_otherwise, teardown),
		cmocka_unit_test_teardown(notification_suppression, teardown),
		cmocka_unit_test_teardown(enable_cb_reports_the_race, teardown),
		cmocka_unit_test_teardown(hostile_device_is_detected, teardown),
		cmocka_unit_test_teardown(random_out_of_order_completion, teardown),
		cmocka_unit_test_teardown(chain_longer_than_4gib_is_refused, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
