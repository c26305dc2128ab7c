/*
 * Host tests for virtio-blk requests (drivers/virtio/blk_core.c) against a
 * simulated disk on tests/unit/virtio_sim.c that answers honestly, slowly
 * (several in flight, out of order) or lies (a status byte that is none of
 * the three, a used length too short for the data, an id not in flight).
 * Each lie must end in a clear error, the device marked broken with its
 * reason, no slot left busy and counters that add up.
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

#include "drivers/virtio/blk_core.h"
#include "kernel/addr.h"
#include "tests/unit/virtio_sim.h"

#define QSIZE 64
#define DISK_SECTORS 4096

static struct vq Q;
static struct vsim S;
static struct blk B;
static void *ring, *hdr_mem, *data_mem;
static uint8_t disk[DISK_SECTORS * BLK_SECTOR];
static int notified;
static char said[256];

static void t_notify(void *ctx) { (void)ctx; notified++; }
static void t_say(void *ctx, const char *msg)
{
	(void)ctx;
	snprintf(said, sizeof(said), "%s", msg);
}
static const struct blk_ops ops = { t_notify, t_say };

static void make(const struct blk_config *cfg)
{
	vq_destroy(&Q);
	free(ring);
	ring = aligned_alloc(64, (vq_ring_bytes(QSIZE) + 63) & ~63UL);
	assert_int_equal(vq_init(&Q, 0, QSIZE, ring, false, NULL, 0), 0);
	vsim_attach(&S, &Q);
	assert_int_equal(blk_core_init(&B, &Q, cfg, hdr_mem, data_mem, &ops, NULL), 0);
	for (size_t i = 0; i < sizeof(disk); i++)
		disk[i] = (uint8_t)(i * 7 + i / BLK_SECTOR);
	notified = 0;
	said[0] = 0;
}

static struct blk_config plain(void)
{
	return (struct blk_config){ DISK_SECTORS, BLK_SECTOR, BLK_MAX_SEGS, BLK_REQ_BYTES, false, true };
}

static int setup(void **state)
{
	(void)state;
	hdr_mem = aligned_alloc(64, BLK_HDR_MEM_BYTES);
	data_mem = aligned_alloc(4096, BLK_DATA_MEM_BYTES);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	vq_destroy(&Q);
	free(ring);
	free(hdr_mem);
	free(data_mem);
	ring = hdr_mem = data_mem = NULL;
	return 0;
}

/* The device takes the next buffer and does what its header says on the
 * disk; returns its head and the used length an honest device reports. */
static uint16_t serve(uint8_t status_override, int *len_out)
{
	struct vsim_buf b;
	assert_int_equal(vsim_pop(&S, &b), 1);
	assert_true(b.n_out >= 1 && b.n_in >= 1);
	const struct blk_hdr_mem *h = phys_to_virt(b.seg[0].addr);
	assert_int_equal(b.seg[0].len, 16);
	struct vq_seg st = b.seg[b.n_out + b.n_in - 1];
	assert_int_equal(st.len, 1);
	uint64_t off = h->sector * BLK_SECTOR;
	uint32_t len = 1;
	if (h->type == VIRTIO_BLK_T_IN) {
		for (unsigned i = b.n_out; i < b.n_out + b.n_in - 1; i++) {
			assert_true(off + b.seg[i].len <= sizeof(disk));
			memcpy(phys_to_virt(b.seg[i].addr), disk + off, b.seg[i].len);
			off += b.seg[i].len;
			len += b.seg[i].len;
		}
	} else if (h->type == VIRTIO_BLK_T_OUT) {
		for (unsigned i = 1; i < b.n_out; i++) {
			assert_true(off + b.seg[i].len <= sizeof(disk));
			memcpy(disk + off, phys_to_virt(b.seg[i].addr), b.seg[i].len);
			off += b.seg[i].len;
		}
	}
	*(uint8_t *)phys_to_virt(st.addr) = status_override;
	*len_out = (int)len;
	return b.head;
}

static void serve_all_honestly(void)
{
	int len;
	uint16_t head;
	while (S.last_avail != Q.avail->idx) {
		head = serve(VIRTIO_BLK_S_OK, &len);
		vsim_push(&S, head, (uint32_t)len);
	}
}

static void assert_all_free(void)
{
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		assert_int_equal(B.slot[i].state, BLK_FREE);
	assert_int_equal(B.inflight, 0);
}

static void reads_and_writes_cross_the_device(void **state)
{
	(void)state;
	make(&(struct blk_config){ DISK_SECTORS, BLK_SECTOR, 4, 4096, false, true });
	assert_int_equal(B.max_sectors, 32); /* 4 segments of 4 KiB */
	uint8_t buf[32 * BLK_SECTOR], back[32 * BLK_SECTOR];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5a);
	int w = blk_core_submit(&B, VIRTIO_BLK_T_OUT, 100, 32, buf);
	assert_true(w >= 0);
	assert_int_equal(notified, 1);
	serve_all_honestly();
	assert_int_equal(blk_core_reap(&B), 1);
	assert_int_equal(blk_core_finish(&B, w, NULL), 0);
	assert_memory_equal(disk + 100 * BLK_SECTOR, buf, sizeof(buf));
	int r = blk_core_submit(&B, VIRTIO_BLK_T_IN, 100, 32, NULL);
	int f = blk_core_submit(&B, VIRTIO_BLK_T_FLUSH, 0, 0, NULL);
	serve_all_honestly();
	assert_int_equal(blk_core_reap(&B), 2);
	assert_int_equal(blk_core_finish(&B, r, back), 0);
	assert_int_equal(blk_core_finish(&B, f, NULL), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	assert_all_free();
	assert_int_equal(B.st.requests, 3);
	assert_int_equal(B.st.bytes_read, sizeof(buf));
	assert_int_equal(B.st.bytes_written, sizeof(buf));
	assert_int_equal(B.st.flushes, 1);
	assert_int_equal(B.st.errors, 0);
}

static void a_slow_device_completes_out_of_order(void **state)
{
	(void)state;
	make(&(struct blk_config){ DISK_SECTORS, BLK_SECTOR, BLK_MAX_SEGS, BLK_REQ_BYTES, false, true });
	int slot[BLK_MAX_INFLIGHT];
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		assert_int_equal(slot[i] = blk_core_submit(&B, VIRTIO_BLK_T_IN, (uint64_t)i * 8, 8, NULL), i);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 8, NULL), -EBUSY);
	assert_int_equal(B.inflight, BLK_MAX_INFLIGHT);
	uint16_t head[BLK_MAX_INFLIGHT];
	int len[BLK_MAX_INFLIGHT];
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		head[i] = serve(VIRTIO_BLK_S_OK, &len[i]);
	assert_int_equal(blk_core_reap(&B), 0); /* nothing returned yet */
	for (int i = BLK_MAX_INFLIGHT - 1; i >= 0; i -= 2)
		vsim_push(&S, head[i], (uint32_t)len[i]);
	assert_int_equal(blk_core_reap(&B), BLK_MAX_INFLIGHT / 2);
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		assert_int_equal(blk_core_done(&B, slot[i]), i % 2 == 1);
	for (int i = 0; i < BLK_MAX_INFLIGHT; i += 2)
		vsim_push(&S, head[i], (uint32_t)len[i]);
	assert_int_equal(blk_core_reap(&B), BLK_MAX_INFLIGHT / 2);
	uint8_t back[8 * BLK_SECTOR];
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++) {
		assert_int_equal(blk_core_finish(&B, slot[i], back), 0);
		assert_memory_equal(back, disk + (size_t)i * 8 * BLK_SECTOR, sizeof(back));
	}
	assert_all_free();
	assert_int_equal(B.st.reads, BLK_MAX_INFLIGHT);
	assert_int_equal(B.st.max_inflight, BLK_MAX_INFLIGHT);
}

static void ioerr_and_unsupp_fail_the_request_not_the_device(void **state)
{
	(void)state;
	struct blk_config c = plain();
	make(&c);
	int len;
	int r = blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 8, NULL);
	vsim_push(&S, serve(VIRTIO_BLK_S_IOERR, &len), 1);
	int f = blk_core_submit(&B, VIRTIO_BLK_T_FLUSH, 0, 0, NULL);
	vsim_push(&S, serve(VIRTIO_BLK_S_UNSUPP, &len), 1);
	assert_int_equal(blk_core_reap(&B), 2);
	assert_int_equal(blk_core_finish(&B, r, NULL), -EIO);
	assert_int_equal(blk_core_finish(&B, f, NULL), -EOPNOTSUPP);
	assert_false(B.broken);
	assert_int_equal(B.st.errors, 2);
	assert_int_equal(B.st.lies, 0);
	r = blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 8, NULL);
	serve_all_honestly();
	assert_int_equal(blk_core_reap(&B), 1);
	assert_int_equal(blk_core_finish(&B, r, NULL), 0);
	assert_all_free();
}

/* Two requests in flight; the first answered with a lie. Both must fail,
 * the device must stay broken, nothing must stay busy. */
static void lie_and_check(uint8_t status, int used_len, uint32_t id, bool id_lie, const char *reason)
{
	make(&(struct blk_config){ DISK_SECTORS, BLK_SECTOR, BLK_MAX_SEGS, BLK_REQ_BYTES, false, true });
	int a = blk_core_submit(&B, VIRTIO_BLK_T_IN, 8, 8, NULL);
	int b = blk_core_submit(&B, VIRTIO_BLK_T_OUT, 16, 1, disk);
	int len;
	uint16_t head = serve(status, &len);
	vsim_push(&S, id_lie ? id : head, used_len < 0 ? (uint32_t)len : (uint32_t)used_len);
	assert_int_equal(blk_core_reap(&B), -EIO);
	assert_true(B.broken);
	if (!strstr(B.broken_reason, reason))
		fail_msg("broken reason \"%s\" does not say \"%s\"", B.broken_reason, reason);
	assert_non_null(strstr(said, "broke the rules"));
	if (!id_lie)
		assert_int_equal(blk_core_finish(&B, a, NULL), -EPROTO);
	else
		assert_int_equal(blk_core_finish(&B, a, NULL), -EIO);
	assert_int_equal(blk_core_finish(&B, b, NULL), -EIO);
	assert_all_free();
	assert_int_equal(B.st.lies, 1);
	assert_int_equal(B.st.errors, 2);
	assert_int_equal(B.st.reads + B.st.writes, 0);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 8, NULL), -EIO);
	assert_int_equal(blk_core_reap(&B), -EIO);
}

static void a_lying_status_byte_breaks_the_device(void **state)
{
	(void)state;
	lie_and_check(7, -1, 0, false, "status byte 0x7");
	lie_and_check(BLK_STATUS_UNSET, -1, 0, false, "status byte 0xff");
}

static void a_short_used_length_on_a_read_breaks_the_device(void **state)
{
	(void)state;
	lie_and_check(VIRTIO_BLK_S_OK, 8 * BLK_SECTOR, 0, false, "used length 4096, at least 4097");
	lie_and_check(VIRTIO_BLK_S_OK, 0, 0, false, "used length 0");
}

static void an_id_not_in_flight_breaks_the_device(void **state)
{
	(void)state;
	lie_and_check(VIRTIO_BLK_S_OK, -1, 63, true, "queue broken");
	lie_and_check(VIRTIO_BLK_S_OK, -1, 100000, true, "queue broken");
}

static void an_abandoned_request_completes_late_into_its_own_memory(void **state)
{
	(void)state;
	make(&(struct blk_config){ DISK_SECTORS, BLK_SECTOR, BLK_MAX_SEGS, BLK_REQ_BYTES, false, true });
	int a = blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 8, NULL);
	blk_core_abandon(&B, a);
	assert_int_equal(B.inflight, 1);
	int b = blk_core_submit(&B, VIRTIO_BLK_T_IN, 8, 8, NULL);
	assert_int_not_equal(a, b); /* the abandoned slot is still the device's */
	serve_all_honestly();
	assert_int_equal(blk_core_reap(&B), 2);
	assert_false(blk_core_done(&B, a));
	assert_int_equal(blk_core_finish(&B, b, NULL), 0);
	assert_all_free();
	assert_int_equal(B.st.late, 1);
	assert_int_equal(B.st.errors, 1);
	assert_int_equal(B.st.reads, 1);
}

static void refusals_come_before_the_device(void **state)
{
	(void)state;
	struct blk_config c = { 1000, 4096, BLK_MAX_SEGS, BLK_REQ_BYTES, true, false };
	make(&c);
	uint8_t buf[8 * BLK_SECTOR] = { 0 };
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_OUT, 0, 8, buf), -EROFS);
	assert_non_null(strstr(said, "read-only"));
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 996, 8, NULL), -ERANGE);
	assert_non_null(strstr(said, "beyond the capacity"));
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 1000, 8, NULL), -ERANGE);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, UINT64_MAX - 2, 8, NULL), -ERANGE);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 4, 8, NULL), -EINVAL); /* not a block */
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 4, NULL), -EINVAL);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 0, NULL), -EINVAL);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 136, NULL), -EINVAL); /* > max_sectors */
	assert_int_equal(blk_core_submit(&B, 3, 0, 8, NULL), -EINVAL);
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_FLUSH, 0, 8, NULL), -EINVAL);
	assert_int_equal(B.st.refused, 10);
	assert_int_equal(B.st.requests, 0);
	assert_int_equal(S.last_avail, Q.avail->idx);
	assert_int_equal(Q.avail->idx, 0); /* the device saw nothing */
	assert_int_equal(blk_core_submit(&B, VIRTIO_BLK_T_IN, 992, 8, NULL), 0);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void configuration_is_parsed_and_checked(void **state)
{
	(void)state;
	uint8_t raw[BLK_CFG_BYTES] = { 0 };
	struct blk_config c;
	char why[160];
	uint64_t all = 1 << VIRTIO_BLK_F_SIZE_MAX | 1 << VIRTIO_BLK_F_SEG_MAX | 1 << VIRTIO_BLK_F_BLK_SIZE |
		       1 << VIRTIO_BLK_F_RO | 1 << VIRTIO_BLK_F_FLUSH;
	put32(raw, 32768);
	put32(raw + BLK_CFG_SIZE_MAX, 8192);
	put32(raw + BLK_CFG_SEG_MAX, 126);
	put32(raw + BLK_CFG_BLK_SIZE, 4096);
	assert_int_equal(blk_parse_config(raw, sizeof(raw), all, &c, why, sizeof(why)), 0);
	assert_int_equal(c.capacity, 32768);
	assert_int_equal(c.blk_size, 4096);
	assert_int_equal(c.seg_max, BLK_MAX_SEGS);
	assert_int_equal(c.size_max, 8192);
	assert_true(c.ro && c.flush);
	/* Not offered: defaults, whatever the bytes say. */
	assert_int_equal(blk_parse_config(raw, 8, 0, &c, why, sizeof(why)), 0);
	assert_int_equal(c.blk_size, 512);
	assert_false(c.ro);
	/* Lies. */
	assert_int_equal(blk_parse_config(raw, 20, all, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "the offered features need 24"));
	put32(raw + BLK_CFG_BLK_SIZE, 1000);
	assert_int_equal(blk_parse_config(raw, sizeof(raw), all, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "blk_size 1000"));
	put32(raw + BLK_CFG_BLK_SIZE, 512);
	put32(raw + BLK_CFG_SEG_MAX, 0);
	assert_int_equal(blk_parse_config(raw, sizeof(raw), all, &c, why, sizeof(why)), -EINVAL);
	put32(raw + BLK_CFG_SEG_MAX, 1);
	put32(raw + BLK_CFG_SIZE_MAX, 100);
	assert_int_equal(blk_parse_config(raw, sizeof(raw), all, &c, why, sizeof(why)), -EINVAL);
	put32(raw + BLK_CFG_SIZE_MAX, 512);
	put32(raw + BLK_CFG_BLK_SIZE, 4096);
	assert_int_equal(blk_parse_config(raw, sizeof(raw), all, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "cannot carry one block"));
	memset(raw, 0xff, 8);
	assert_int_equal(blk_parse_config(raw, 8, 0, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "overflows"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_and_writes_cross_the_device),
		cmocka_unit_test(a_slow_device_completes_out_of_order),
		cmocka_unit_test(ioerr_and_unsupp_fail_the_request_not_the_device),
		cmocka_unit_test(a_lying_status_byte_breaks_the_device),
		cmocka_unit_test(a_short_used_length_on_a_read_breaks_the_device),
		cmocka_unit_test(an_id_not_in_flight_breaks_the_device),
		cmocka_unit_test(an_abandoned_request_completes_late_into_its_own_memory),
		cmocka_unit_test(refusals_come_before_the_device),
		cmocka_unit_test(configuration_is_parsed_and_checked),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
