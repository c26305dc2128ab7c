/*
 * fuzz_blk: virtio-blk's device-controlled data (drivers/virtio/blk_core.c)
 * — the configuration bytes and every completion — from a program the
 * fuzzer writes.
 *
 * Input: a byte of offered feature bits (SIZE_MAX, SEG_MAX, RO, BLK_SIZE,
 * FLUSH), a length and BLK_CFG_BYTES of configuration, parsed as the kernel
 * does; when the parse refuses it, a plain configuration is used so the
 * program still drives requests. Then one operation per byte:
 *   submit    the driver posts a read, write or flush (any sector and count)
 *   serve     the simulated device (tests/unit/virtio_sim.c) takes the next
 *             buffer and does it on its disk, then answers with any status
 *             byte and used length (honest when the byte says so)
 *   push      the device writes a used entry with any id and length
 *   reap      blk_core_reap
 *   finish    collect a slot, or abandon one
 * Invariants after every step: a parsed configuration is within the limits
 * blk_parse_config promises; a refused request never reaches the device;
 * `inflight` counts exactly the slots the device holds; an honest answer to
 * a read gives the disk's bytes, to a write puts the slot's bytes on the
 * disk; a request succeeds only after an OK status byte and a used length
 * covering what it had to write; a broken device holds nothing and refuses everything with -EIO.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/virtio/blk_core.h"
#include "kernel/addr.h"
#include "tests/fuzz/host/fuzz_util.h"
#include "tests/unit/virtio_sim.h"

#define QSIZE 32
#define DISK_SECTORS 512

static struct vq Q;
static struct vsim S;
static struct blk B;
static void *ring, *hdr_mem, *data_mem;
static uint8_t disk[DISK_SECTORS * BLK_SECTOR];
static uint8_t expect[BLK_MAX_INFLIGHT][BLK_REQ_BYTES]; /* what an honest read returns */
static bool honest[BLK_MAX_INFLIGHT];
static uint8_t served_status[BLK_MAX_INFLIGHT]; /* what the device answered, since the submit */
static uint32_t served_len[BLK_MAX_INFLIGHT];

static const struct blk_ops ops = { NULL, NULL };

void fh_setup(void)
{
	ring = aligned_alloc(64, (vq_ring_bytes(QSIZE) + 63) & ~63UL);
	hdr_mem = aligned_alloc(64, BLK_HDR_MEM_BYTES);
	data_mem = aligned_alloc(4096, BLK_DATA_MEM_BYTES);
}

static void check_config(const struct blk_config *c)
{
	if (c->blk_size < 512 || c->blk_size > 65536 || (c->blk_size & (c->blk_size - 1)))
		fh_fail("blk_size %u accepted", c->blk_size);
	if (c->seg_max == 0 || c->seg_max > BLK_MAX_SEGS || c->size_max < 512 || c->size_max > BLK_REQ_BYTES)
		fh_fail("seg_max %u size_max %u accepted", c->seg_max, c->size_max);
	if ((uint64_t)c->seg_max * c->size_max < c->blk_size || c->capacity > UINT64_MAX / 512)
		fh_fail("configuration accepted that cannot carry a block or overflows");
}

static void check(void)
{
	unsigned held = 0;
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		held += B.slot[i].state == BLK_INFLIGHT || B.slot[i].state == BLK_ABANDONED;
	if (held != B.inflight)
		fh_fail("inflight %u, slots held by the device %u", B.inflight, held);
	if (B.broken && (held || !B.broken_reason[0]))
		fh_fail("broken device still holds %u slots, reason \"%s\"", held, B.broken_reason);
	if (B.inflight > BLK_MAX_INFLIGHT)
		fh_fail("inflight %u", B.inflight);
}

/* Serve the next buffer; `status` and `lie_len` (0: honest) from the input. */
static void serve(uint8_t status, uint32_t lie_len)
{
	struct vsim_buf b;
	if (vsim_pop(&S, &b) != 1)
		return;
	if (b.n_out < 1 || b.n_in < 1 || b.seg[0].len != 16 || b.seg[b.n_out + b.n_in - 1].len != 1)
		fh_fail("malformed request: %u out, %u in", b.n_out, b.n_in);
	const struct blk_hdr_mem *h = phys_to_virt(b.seg[0].addr);
	int slot = (int)(h - (const struct blk_hdr_mem *)hdr_mem);
	uint64_t off = h->sector * BLK_SECTOR;
	uint32_t len = 1;
	if (h->type == VIRTIO_BLK_T_IN || h->type == VIRTIO_BLK_T_OUT) {
		bool in = h->type == VIRTIO_BLK_T_IN;
		unsigned first = in ? b.n_out : 1, last = in ? b.n_out + b.n_in - 1 : b.n_out;
		for (unsigned i = first; i < last; i++) {
			if (off + b.seg[i].len > sizeof(disk))
				fh_fail("a request beyond the capacity reached the device (sector %llu)",
					(unsigned long long)h->sector);
			if (in)
				memcpy(phys_to_virt(b.seg[i].addr), disk + off, b.seg[i].len);
			else
				memcpy(disk + off, phys_to_virt(b.seg[i].addr), b.seg[i].len);
			off += b.seg[i].len;
			len += in ? b.seg[i].len : 0;
		}
		if (in)
			memcpy(expect[slot], disk + h->sector * BLK_SECTOR, len - 1);
	}
	*(uint8_t *)phys_to_virt(b.seg[b.n_out + b.n_in - 1].addr) = status;
	honest[slot] = status == VIRTIO_BLK_S_OK && !lie_len;
	served_status[slot] = status;
	served_len[slot] = lie_len ? lie_len - 1 : len;
	vsim_push(&S, b.head, served_len[slot]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh f = { data, size };
	uint8_t fb = fh_u8(&f);
	uint64_t features = (fb & 1 ? 1ULL << VIRTIO_BLK_F_SIZE_MAX : 0) | (fb & 2 ? 1ULL << VIRTIO_BLK_F_SEG_MAX : 0) |
			    (fb & 4 ? 1ULL << VIRTIO_BLK_F_RO : 0) | (fb & 8 ? 1ULL << VIRTIO_BLK_F_BLK_SIZE : 0) |
			    (fb & 16 ? 1ULL << VIRTIO_BLK_F_FLUSH : 0);
	size_t cfg_len = fh_u8(&f) % (BLK_CFG_BYTES + 1);
	uint8_t raw[BLK_CFG_BYTES];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = fh_u8(&f);
	struct blk_config cfg;
	char why[160];
	int parsed = blk_parse_config(raw, cfg_len, features, &cfg, why, sizeof(why));
	fh_trace("config of %zu bytes, features %#llx: %d %s", cfg_len, (unsigned long long)features, parsed,
		 parsed ? why : "");
	if (parsed == 0) {
		check_config(&cfg);
		cfg.capacity = cfg.capacity % (DISK_SECTORS + 1); /* the simulated disk's size */
	} else {
		if (!why[0])
			fh_fail("refused configuration without a reason");
		cfg = (struct blk_config){ DISK_SECTORS, 512, BLK_MAX_SEGS, BLK_REQ_BYTES, fb & 4, true };
	}
	vq_destroy(&Q);
	if (vq_init(&Q, 0, QSIZE, ring, false, NULL, 0) < 0)
		fh_fail("vq_init");
	vsim_attach(&S, &Q);
	if (blk_core_init(&B, &Q, &cfg, hdr_mem, data_mem, &ops, NULL) < 0)
		fh_fail("blk_core_init refused a parsed configuration");
	memset(honest, 0, sizeof(honest));
	uint8_t buf[BLK_REQ_BYTES];

	while (fh_left(&f)) {
		uint8_t op = fh_u8(&f);
		switch (op % 6) {
		case 0:
		case 1: { /* submit */
			static const uint32_t types[] = { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, 8 };
			uint32_t type = types[(op >> 3) & 3];
			uint64_t sector = fh_u16(&f) % (DISK_SECTORS + 16);
			uint32_t n = fh_u8(&f);
			if (type == VIRTIO_BLK_T_FLUSH && (op & 0x80))
				sector = n = 0;
			memset(buf, op, sizeof(buf));
			uint16_t before = Q.avail->idx;
			int i = blk_core_submit(&B, type, sector, n, buf);
			fh_trace("submit type %u sector %llu n %u -> %d", type, (unsigned long long)sector, n, i);
			if (i < 0 && Q.avail->idx != before)
				fh_fail("refused request (%d) reached the device", i);
			if (i >= 0) {
				served_status[i] = BLK_STATUS_UNSET;
				served_len[i] = 0;
			}
			if (i >= 0 && type == VIRTIO_BLK_T_OUT && memcmp(B.slot[i].data, buf, n * BLK_SECTOR))
				fh_fail("write slot does not hold the caller's bytes");
			if (i >= 0 && (B.broken || (type == VIRTIO_BLK_T_OUT && cfg.ro) ||
				       (type != VIRTIO_BLK_T_FLUSH && sector + n > cfg.capacity)))
				fh_fail("request accepted that must be refused (type %u, %llu+%u)", type,
					(unsigned long long)sector, n);
			break;
		}
		case 2:
			serve(fh_u8(&f) % 4 == 0 ? fh_u8(&f) : VIRTIO_BLK_S_OK, (op & 0x80) ? fh_u16(&f) : 0);
			break;
		case 3:
			vsim_push(&S, fh_u8(&f) % (QSIZE + 2), fh_u16(&f));
			break;
		case 4: {
			int rc = blk_core_reap(&B);
			fh_trace("reap -> %d%s%s", rc, B.broken ? ", broken: " : "", B.broken_reason);
			if (rc < 0 && !B.broken)
				fh_fail("reap failed (%d) without breaking", rc);
			break;
		}
		case 5: {
			int i = (op >> 3) % BLK_MAX_INFLIGHT;
			if (op & 0x80) {
				blk_core_abandon(&B, i);
				break;
			}
			if (!blk_core_done(&B, i))
				break;
			struct blk_slot s = B.slot[i];
			int rc = blk_core_finish(&B, i, buf);
			fh_trace("finish slot %d -> %d", i, rc);
			if (honest[i] && !B.broken && rc != 0)
				fh_fail("honest answer for slot %d gave %d", i, rc);
			if (rc == 0 && s.type == VIRTIO_BLK_T_IN && honest[i] && memcmp(buf, expect[i], s.bytes))
				fh_fail("read of slot %d did not return the disk's bytes", i);
			uint32_t want = s.type == VIRTIO_BLK_T_IN ? s.bytes + 1 : 1;
			if (rc == 0 && (served_status[i] != VIRTIO_BLK_S_OK || served_len[i] < want))
				fh_fail("slot %d succeeded with status %#x and used length %u (%u needed)", i,
					served_status[i], served_len[i], want);
			if (B.slot[i].state != BLK_FREE)
				fh_fail("finished slot %d not free", i);
			break;
		}
		}
		check();
		if (B.broken && blk_core_submit(&B, VIRTIO_BLK_T_IN, 0, 1, NULL) != -EIO)
			fh_fail("broken device accepted a request");
	}
	return 0;
}
