/*
 * Host tests for the split and packed virtqueues (drivers/virtio/virtqueue.c,
 * vq_packed.c) against a simulated device (tests/unit/virtio_sim.c) that can
 * also lie.
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

/* A packed queue set up as a transport does it: features -> config -> memory. */
static void make_packed(uint16_t size, bool event_idx, bool indirect)
{
	free(ring);
	free(tables);
	tables = NULL;
	uint64_t f = vq_driver_features(true);
	if (!event_idx)
		f &= ~(1ULL << VQ_F_EVENT_IDX);
	if (!indirect)
		f &= ~(1ULL << VQ_F_INDIRECT_DESC);
	struct vq_config c = vq_config_for(f, 8);
	assert_int_equal(c.layout, VQ_PACKED);
	ring = aligned_alloc(64, (vq_mem_bytes(&c, size) + 63) & ~63UL);
	vq_destroy(&Q);
	assert_int_equal(vq_setup(&Q, &c, 0, size, ring), 0);
	assert_string_equal(vq_layout_name(&Q), "packed");
	assert_int_equal(Q.indirect, indirect);
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

static void random_run(bool packed, uint16_t size)
{
	uint64_t seed = getenv("VQ_SEED") ? strtoull(getenv("VQ_SEED"), 0, 0) : 424242;
	printf("virtqueue random seed %llu (VQ_SEED to replay), %s, size %u\n", (unsigned long long)seed,
	       packed ? "packed" : "split", size);
	rs = seed ? seed : 1;
	if (packed)
		make_packed(size, true, true);
	else
		make(size, true, true);
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

static void random_out_of_order_completion(void **state)
{
	(void)state;
	random_run(false, 32);
}

static void packed_random_out_of_order_completion(void **state)
{
	(void)state;
	random_run(true, 32);
	random_run(true, 7); /* not a power of two */
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


/* ---------------------------------------------------------------- packed */

static void packed_layout_is_chosen_by_the_feature(void **state)
{
	(void)state;
	assert_false(vq_driver_features(false) & (1ULL << VQ_F_RING_PACKED));
	assert_true(vq_driver_features(true) & (1ULL << VQ_F_RING_PACKED));
	struct vq_config split = vq_config_for(1ULL << VQ_F_EVENT_IDX, 8);
	assert_int_equal(split.layout, VQ_SPLIT);
	assert_int_equal(split.max_indirect, 0);
	struct vq_config packed = vq_config_for(1ULL << VQ_F_RING_PACKED | 1ULL << VQ_F_INDIRECT_DESC, 8);
	assert_int_equal(packed.layout, VQ_PACKED);
	assert_int_equal(packed.max_indirect, 8);
	assert_false(packed.event_idx);
	/* Ring (16 B a descriptor, two 4-byte event structures) rounded to 64,
	 * then the tables. */
	assert_int_equal(vq_mem_bytes(&packed, 8), 192 + 8 * 8 * 16);
	make_packed(8, true, false);
	assert_int_equal(vq_desc_addr(&Q), virt_to_phys(ring));
	assert_int_equal(vq_avail_addr(&Q), virt_to_phys(ring) + 128);
	assert_int_equal(vq_used_addr(&Q), virt_to_phys(ring) + 132);
	/* No power of two needed for packed rings (2.8), as for split ones. */
	make_packed(5, false, false);
	assert_int_equal(vq_init(&Q, 0, 5, ring, false, NULL, 0), -EINVAL);
}

static void packed_round_trip_chains_and_wrap(void **state)
{
	(void)state;
	make_packed(5, false, false);
	struct vq_seg o = seg(0, 16), in[2] = { seg(1, 100), seg(2, 28) };
	assert_int_equal(vq_add(&Q, &o, 1, in, 2, bufs[10]), 0); /* slots 0-2 */
	assert_int_equal(vq_add(&Q, &o, 1, in, 1, bufs[11]), 0); /* slots 3-4 */
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[12]), -ENOSPC);
	/* The chain is consecutive, NEXT on all but the last, the id in each. */
	assert_int_equal(Q.pdesc[0].flags, VQ_DESC_F_NEXT | VQ_PDESC_F_AVAIL);
	assert_int_equal(Q.pdesc[1].flags, VQ_DESC_F_NEXT | VQ_DESC_F_WRITE | VQ_PDESC_F_AVAIL);
	assert_int_equal(Q.pdesc[2].flags, VQ_DESC_F_WRITE | VQ_PDESC_F_AVAIL);
	assert_int_equal(Q.pdesc[2].id, Q.pdesc[0].id);
	assert_true(Q.avail_wrap == false && Q.next_avail == 0); /* wrapped exactly */
	struct vsim_buf a, b;
	assert_int_equal(vsim_pop(&S, &a), 1);
	assert_int_equal(vsim_pop(&S, &b), 1);
	struct vsim_buf none;
	assert_int_equal(vsim_pop(&S, &none), 0); /* nothing more */
	assert_int_equal(a.ndesc, 3);
	assert_int_equal(a.in_len, 128);
	assert_int_equal(b.ndesc, 2);
	/* Out of order: the second buffer first, written at slot 0. */
	vsim_push(&S, b.head, 7);
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[11]);
	assert_int_equal(len, 7);
	assert_int_equal(Q.num_free, 2);
	/* Its two slots are reused at once, in the second pass (wrap 0). */
	assert_int_equal(vq_add(&Q, &o, 1, &in[0], 1, bufs[12]), 0);
	assert_int_equal(Q.pdesc[0].flags, VQ_DESC_F_NEXT | VQ_PDESC_F_USED);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 0);
	vsim_push(&S, a.head, 128);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[10]);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 0);
	assert_int_equal(vsim_pop(&S, &a), 1);
	assert_int_equal(a.in_len, 100);
	vsim_push(&S, a.head, 100);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[12]);
	assert_int_equal(Q.num_free, 5);
	assert_int_equal(Q.in_flight, 0);
	/* Many passes over an odd-sized ring, chains straddling the end. */
	for (long i = 0; i < 70000; i++) {
		unsigned n_in = 1 + (unsigned)(i % 3);
		struct vq_seg ins[3] = { seg(1, 8), seg(2, 8), seg(3, 8) };
		assert_int_equal(vq_add(&Q, &o, 1, ins, n_in, bufs[20 + i % 8]), 0);
		assert_int_equal(vsim_pop(&S, &a), 1);
		assert_int_equal(a.ndesc, 1 + n_in);
		vsim_push(&S, a.head, 8 * n_in);
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
		assert_ptr_equal(tok, bufs[20 + i % 8]);
		assert_int_equal(len, 8 * n_in);
	}
	assert_int_equal(Q.num_free, 5);
	assert_false(Q.broken);
}

static void packed_indirect_tables(void **state)
{
	(void)state;
	struct vq_seg s3[3] = { seg(0, 10), seg(1, 20), seg(2, 30) };
	struct vsim_buf b;
	make_packed(4, false, true);
	assert_int_equal(vq_add(&Q, s3, 1, s3 + 1, 2, bufs[20]), 0);
	assert_int_equal(Q.num_free, 3); /* one descriptor, pointing at a table */
	assert_true(Q.pdesc[0].flags & VQ_DESC_F_INDIRECT);
	assert_int_equal(Q.pdesc[0].len, 3 * sizeof(struct vq_pdesc));
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(b.n_out, 1);
	assert_int_equal(b.n_in, 2);
	assert_int_equal(b.in_len, 50);
	assert_int_equal(b.ndesc, 1);
	vsim_push(&S, b.head, 50);
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_int_equal(len, 50);
	assert_int_equal(Q.num_free, 4);
	/* One segment goes directly; more than the table holds is a chain. */
	struct vq_seg one = seg(0, 10);
	assert_int_equal(vq_add(&Q, &one, 1, NULL, 0, bufs[21]), 0);
	assert_false(Q.pdesc[1].flags & VQ_DESC_F_INDIRECT);
}

static void packed_notification_suppression(void **state)
{
	(void)state;
	struct vq_seg o = seg(0, 8);
	make_packed(4, false, false);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[30]), 0);
	assert_true(vq_kick_prepare(&Q)); /* ENABLE: the zeroed structure */
	vsim_set_no_notify(&S, true);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[31]), 0);
	assert_false(vq_kick_prepare(&Q));

	make_packed(4, true, false);
	vsim_set_avail_event(&S, 0 | VQ_EVENT_WRAP); /* slot 0, first pass */
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[30]), 0);
	assert_true(vq_kick_prepare(&Q));
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[31]), 0);
	assert_false(vq_kick_prepare(&Q)); /* slot 1: not asked for */
	vsim_set_avail_event(&S, 0); /* slot 0 of the second pass (wrap 0) */
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[32]), 0);
	assert_false(vq_kick_prepare(&Q)); /* slot 2 */
	void *tok;
	uint32_t len;
	struct vsim_buf b;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vsim_pop(&S, &b), 1);
		vsim_push(&S, b.head, 0);
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	}
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[33]), 0); /* slot 3 */
	assert_false(vq_kick_prepare(&Q));
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[34]), 0); /* slot 0, wrap 0 */
	assert_true(vq_kick_prepare(&Q));
	/* The device asks for slot 3 of the first pass, long gone: no kick. */
	vsim_set_avail_event(&S, 3 | VQ_EVENT_WRAP);
	assert_int_equal(vsim_pop(&S, &b), 1);
	vsim_push(&S, b.head, 0);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[35]), 0); /* slot 1, wrap 0 */
	assert_false(vq_kick_prepare(&Q));
	assert_false(Q.broken);
}

static void packed_enable_cb_reports_the_race(void **state)
{
	(void)state;
	struct vq_seg in = seg(0, 8);
	struct vsim_buf b;
	void *tok;
	uint32_t len;
	for (int event_idx = 0; event_idx < 2; event_idx++) {
		make_packed(4, event_idx, false);
		assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[40]), 0);
		vq_disable_cb(&Q);
		assert_int_equal(vsim_pop(&S, &b), 1);
		vsim_push(&S, b.head, 8); /* completes while interrupts are off */
		assert_false(S.interrupt);
		assert_true(vq_enable_cb(&Q));
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
		assert_false(vq_enable_cb(&Q));
		/* Interrupts asked for again: the next completion raises one. */
		for (int i = 0; i < 6; i++) { /* round the ring and past the wrap */
			assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[41]), 0);
			assert_int_equal(vsim_pop(&S, &b), 1);
			vsim_push(&S, b.head, 8);
			assert_true(S.interrupt);
			assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
		}
	}
	/* With EVENT_IDX, the driver's off_wrap asks for exactly its next slot:
	 * a second completion before it read the first raises no interrupt. */
	make_packed(4, true, false);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[42]), 0);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[43]), 0);
	struct vsim_buf b2;
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(vsim_pop(&S, &b2), 1);
	vsim_push(&S, b.head, 8);
	assert_true(S.interrupt);
	vsim_push(&S, b2.head, 8);
	assert_false(S.interrupt);
}

/* Post two one-descriptor buffers (ids 0, 1 at slots 0, 1); the device lies. */
static void expect_packed_broken(void (*misbehave)(void), const char *needle, bool event_idx)
{
	struct vq_seg in = seg(0, 64);
	make_packed(8, event_idx, false);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[50]), 0);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[51]), 0);
	struct vsim_buf b;
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(vsim_pop(&S, &b), 1);
	misbehave();
	void *tok;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(&Q, &tok, &len)) == 1)
		;
	if (rc == 0) /* a lie about notifications shows at the next kick */
		assert_false(vq_kick_prepare(&Q));
	assert_true(Q.broken);
	if (!strstr(vq_broken_reason(&Q), needle))
		fail_msg("reason '%s' lacks '%s'", vq_broken_reason(&Q), needle);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[52]), -EIO);
	assert_int_equal(vq_get_used(&Q, &tok, &len), -EIO);
	assert_false(vq_kick_prepare(&Q));
}

static void p_bad_id(void) { vsim_push(&S, 200, 0); }
static void p_id_reuse(void) { vsim_push(&S, 0, 8); vsim_push(&S, 0, 8); }
static void p_never_posted(void) { vsim_push(&S, 5, 8); }
static void p_length_lie(void) { vsim_push(&S, 1, 65); }
/* USED set for this pass, AVAIL not: no device writes that. */
static void p_wrap_lie(void) { vsim_push_raw(&S, 0, 8, VQ_PDESC_F_USED, 1); }
static void p_avail_without_used(void) { vsim_push(&S, 0, 8); vsim_push(&S, 1, 8);
	vsim_push_raw(&S, 0, 8, VQ_PDESC_F_AVAIL | VQ_PDESC_F_USED, 1); }
static void p_reserved_event(void) { vsim_set_device_event(&S, 0, 3); }
static void p_desc_event_without_idx(void) { vsim_set_device_event(&S, 1 | VQ_EVENT_WRAP, VQ_EVENT_F_DESC); }
static void p_event_beyond_ring(void) { vsim_set_device_event(&S, 9 | VQ_EVENT_WRAP, VQ_EVENT_F_DESC); }

static void packed_hostile_device_is_detected(void **state)
{
	(void)state;
	expect_packed_broken(p_bad_id, "id 200 beyond the queue size 8", false);
	expect_packed_broken(p_id_reuse, "descriptor 1: id 0 is not a buffer in flight", false);
	expect_packed_broken(p_never_posted, "id 5 is not a buffer in flight", false);
	expect_packed_broken(p_length_lie, "reports 65 bytes written, but only 64", false);
	expect_packed_broken(p_wrap_lie, "flags 0x8000 mark it used (USED=1) but AVAIL=0", false);
	expect_packed_broken(p_avail_without_used, "descriptor 2 marked used (wrap counter 1) with no buffers in flight", false);
	expect_packed_broken(p_reserved_event, "flags = 3 (reserved)", true);
	expect_packed_broken(p_desc_event_without_idx, "DESC without VIRTIO_F_EVENT_IDX", false);
	expect_packed_broken(p_event_beyond_ring, "device event offset 9 beyond the queue size 8", true);
}

/* Found by fuzz_vq_packed: the device writes one used descriptor per chain
 * and skips the rest, which keep the driver's flags (AVAIL = the old wrap
 * counter, USED = the new one). A pass later, with nothing in flight, the
 * driver's next used slot is such a descriptor: not an answer, not a lie. */
static void packed_skipped_chain_descriptor_is_not_a_lie(void **state)
{
	(void)state;
	struct vq_seg o = seg(0, 8), in = seg(1, 8);
	struct vsim_buf b;
	void *tok;
	uint32_t len;
	make_packed(4, true, false);
	for (int i = 0; i < 2; i++) { /* chains of two at slots 0-1, 2-3; the ring wraps */
		assert_int_equal(vq_add(&Q, &o, 1, &in, 1, bufs[10]), 0);
		assert_int_equal(vsim_pop(&S, &b), 1);
		vsim_push(&S, b.head, 8);
		assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	}
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[11]), 0); /* slot 0, wrap 0 */
	assert_int_equal(vsim_pop(&S, &b), 1);
	vsim_push(&S, b.head, 0);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	/* Slot 1 still holds the first chain's second descriptor. */
	assert_int_equal(Q.next_used, 1);
	assert_int_equal(Q.pdesc[1].flags & (VQ_PDESC_F_AVAIL | VQ_PDESC_F_USED), VQ_PDESC_F_AVAIL);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 0);
	assert_false(vq_enable_cb(&Q));
	assert_false(Q.broken);
	assert_int_equal(vq_add(&Q, &o, 1, NULL, 0, bufs[12]), 0);
	assert_int_equal(vsim_pop(&S, &b), 1);
	vsim_push(&S, b.head, 0);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[12]);
}

/* A device marking used descriptors out of order (slot 1 before slot 0) is
 * not seen until slot 0 is used: the driver reads the ring in order. A used
 * descriptor with the old wrap counter is still the device's. */
static void packed_used_flags_out_of_order_wait(void **state)
{
	(void)state;
	struct vq_seg in = seg(0, 64);
	make_packed(4, false, false);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[50]), 0);
	assert_int_equal(vq_add(&Q, NULL, 0, &in, 1, bufs[51]), 0);
	struct vsim_buf b;
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_int_equal(vsim_pop(&S, &b), 1);
	Q.pdesc[1] = (struct vq_pdesc){ 0, 8, 1, VQ_PDESC_F_AVAIL | VQ_PDESC_F_USED };
	Q.pdesc[0].flags = 0; /* both bits for wrap 0: the previous pass */
	void *tok;
	uint32_t len;
	assert_int_equal(vq_get_used(&Q, &tok, &len), 0);
	vsim_push(&S, 0, 4); /* now slot 0, honestly */
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[50]);
	assert_int_equal(vq_get_used(&Q, &tok, &len), 1);
	assert_ptr_equal(tok, bufs[51]);
	assert_int_equal(len, 8);
	assert_false(Q.broken);
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
		cmocka_unit_test_teardown(packed_layout_is_chosen_by_the_feature, teardown),
		cmocka_unit_test_teardown(packed_round_trip_chains_and_wrap, teardown),
		cmocka_unit_test_teardown(packed_indirect_tables, teardown),
		cmocka_unit_test_teardown(packed_notification_suppression, teardown),
		cmocka_unit_test_teardown(packed_enable_cb_reports_the_race, teardown),
		cmocka_unit_test_teardown(packed_hostile_device_is_detected, teardown),
		cmocka_unit_test_teardown(packed_used_flags_out_of_order_wait, teardown),
		cmocka_unit_test_teardown(packed_skipped_chain_descriptor_is_not_a_lie, teardown),
		cmocka_unit_test_teardown(packed_random_out_of_order_completion, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
