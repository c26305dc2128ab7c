/*
 * fz_mmio: the device fuzzer's virtio-mmio registers (version 2, and
 * legacy version 1), for fz_exec.c.
 *
 * On mmio the rings' whereabouts hang on registers the ops may write in
 * any order: QueueReady (v2) enables the addresses last written, and on v1
 * QueuePFN x GuestPageSize, QueueNum and QueueAlign place all three rings.
 * So this keeps, per queue, what the spec (4.2.2, 4.2.4) says the device
 * now holds, and refuses a write after which the rings could lie outside
 * the ring memory. Where it cannot know (a reset by a partial Status
 * write, a QueueSel of odd width), it assumes the worse.
 */
#include <errno.h>
#include <stdio.h>
#include "fz_internal.h"
#include "arch/x86_64/mmio.h"
#include "drivers/virtio/virtio.h"
#include "drivers/virtio/virtio_mmio.h"
#include "kernel/addr.h"

/* What the device holds for each mmio queue, as the spec says it should
 * (4.2.2, 4.2.4), for deciding which register writes are safe. */
#define SEL_UNKNOWN 0xffffffffu
#define NUM_UNKNOWN 0xffffffffu
static struct mmio_model {
	uint32_t sel;                           /* QueueSel, or SEL_UNKNOWN */
	/* v2: addresses written by qsetup/qaddr since the last (possible) reset */
	bool addrs_ok[FZ_QUEUES];
	uint32_t num[FZ_QUEUES];                /* QueueNum written, else QueueNumMax read, else unknown */
	/* v1: the rings follow desc, num and align; desc is never forgotten
	 * (a reset the device ignored would leave it in place) */
	uint64_t desc[FZ_QUEUES];
	uint32_t vnum[FZ_QUEUES], align[FZ_QUEUES];
	uint32_t page_size;
	uint32_t feature_sel, driver_feature_sel;
} mm;

/* The device may have reset: no v2 queue may be enabled again before its
 * addresses are written again (a reset device holds 0 there). */
void fz_mmio_forget(void)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		mm.addrs_ok[i] = false;
		mm.num[i] = NUM_UNKNOWN;
	}
}


/* After the device is taken: nothing known, the device's defaults assumed. */
void fz_mmio_init(void)
{
	mm.sel = SEL_UNKNOWN;
	mm.page_size = VIRTIO_MMIO_LEGACY_PAGE;
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		mm.vnum[i] = FZ_RING_MAX; /* the device's default size: at most QEMU's largest */
		mm.align[i] = VIRTIO_MMIO_LEGACY_PAGE;
	}
	fz_mmio_forget();
}

/* Is [lo, hi) inside one ring's memory? */
static bool in_ring_mem(uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < FZ_QUEUES; i++) {
		uint64_t base = virt_to_phys(fz_rings[i].mem);
		if (lo >= base && hi <= base + RING_BYTES && lo <= hi)
			return true;
	}
	return false;
}

/* The three rings a legacy device places from desc, num and align (2.7.2
 * legacy layout): inside one ring's memory? Rounding is done both the
 * spec's way (a power-of-two mask) and QEMU's (division), so an odd
 * QueueAlign is judged by the worse of the two. desc 0: no fz_rings. */
static bool v1_span_ok(uint64_t desc, uint64_t num, uint64_t align)
{
	if (desc == 0)
		return true;
	uint64_t avail_end = desc + 16 * num + 6 + 2 * num;
	uint64_t up = align ? (avail_end + align - 1) / align * align : avail_end;
	uint64_t masked = align ? (avail_end + align - 1) & ~(align - 1) : avail_end;
	uint64_t lo = desc < masked ? desc : masked, hi = (up > masked ? up : masked) + 6 + 8 * num;
	return up >= avail_end && in_ring_mem(lo, hi);
}

/* The value's bytes that land in [reg, reg + 4) of a write of `w` bytes at off. */
static uint32_t bytes_in(uint64_t off, unsigned w, uint64_t v, unsigned reg)
{
	uint32_t out = 0;
	for (unsigned i = 0; i < w; i++)
		if (off + i >= reg && off + i < reg + 4u)
			out |= (uint32_t)((v >> (8 * i)) & 0xff) << (8 * (off + i - reg));
	return out;
}

static bool overlaps(uint64_t off, unsigned w, unsigned reg) { return off < reg + 4u && off + w > reg; }

/*
 * Check one mmio register write against the model; 0 and the model updated
 * as the spec says the device now stands, or -EINVAL with why. Called
 * before the write, which the caller then does.
 */
int fz_mmio_check_write(uint64_t off, unsigned w, uint64_t v, char *why, size_t why_len)
{
	bool exact = w == 4 && (off & 3) == 0;
	uint32_t sel = mm.sel, val = (uint32_t)v;
	bool sel_ok = sel < FZ_QUEUES;
	if (off < VIRTIO_MMIO_QUEUE_DEVICE_LOW + 8 && off + w > VIRTIO_MMIO_QUEUE_DESC_LOW) {
		snprintf(why, why_len, "ring addresses are written only by qsetup and qaddr");
		return -EINVAL;
	}
	if (fz_transport == FZ_T_MMIO1) {
		static const unsigned placed[] = { VIRTIO_MMIO_GUEST_PAGE_SIZE, VIRTIO_MMIO_QUEUE_NUM,
						   VIRTIO_MMIO_QUEUE_ALIGN, VIRTIO_MMIO_QUEUE_PFN };
		for (unsigned i = 0; i < 4; i++) {
			unsigned reg = placed[i];
			if (!overlaps(off, w, reg))
				continue;
			if (!exact || (reg != VIRTIO_MMIO_GUEST_PAGE_SIZE && sel == SEL_UNKNOWN)) {
				snprintf(why, why_len, "v1's ring placement (%#x) is written whole, with QueueSel known", reg);
				return -EINVAL;
			}
			if (reg == VIRTIO_MMIO_QUEUE_NUM && sel_ok) {
				uint32_t n = val > mm.vnum[sel] ? val : mm.vnum[sel];
				if (!v1_span_ok(mm.desc[sel], n, mm.align[sel]))
					goto outside;
				mm.vnum[sel] = n;
			} else if (reg == VIRTIO_MMIO_QUEUE_ALIGN && sel_ok) {
				if (!v1_span_ok(mm.desc[sel], mm.vnum[sel], val))
					goto outside;
				if (val)
					mm.align[sel] = val;
			} else if (reg == VIRTIO_MMIO_QUEUE_PFN && val) {
				uint64_t ps = mm.page_size, desc = (uint64_t)val * ps;
				if (!sel_ok || ps == 0 || (ps & (ps - 1))) {
					snprintf(why, why_len, "QueuePFN with %s", !sel_ok ? "QueueSel beyond the ring memory"
						 : "a GuestPageSize that is no power of two");
					return -EINVAL;
				}
				if (!v1_span_ok(desc, mm.vnum[sel], mm.align[sel]))
					goto outside;
				mm.desc[sel] = desc;
			} else if (reg == VIRTIO_MMIO_GUEST_PAGE_SIZE) {
				mm.page_size = val;
			}
		}
	} else if (overlaps(off, w, VIRTIO_MMIO_QUEUE_READY) &&
		   bytes_in(off, w, v, VIRTIO_MMIO_QUEUE_READY) != 0) {
		uint32_t n = sel_ok ? mm.num[sel] : NUM_UNKNOWN;
		if (!exact || !sel_ok || !mm.addrs_ok[sel] || n == NUM_UNKNOWN || n > FZ_RING_MAX) {
			snprintf(why, why_len, "QueueReady only for a selected queue whose addresses and size "
				 "(<= %u) are known", FZ_RING_MAX);
			return -EINVAL;
		}
	}
	if (overlaps(off, w, VIRTIO_MMIO_QUEUE_SEL))
		mm.sel = exact ? val : SEL_UNKNOWN;
	if (fz_transport == FZ_T_MMIO && overlaps(off, w, VIRTIO_MMIO_QUEUE_NUM)) {
		if (exact && sel_ok)
			mm.num[sel] = val;
		else if (sel_ok)
			mm.num[sel] = NUM_UNKNOWN;
		else if (sel == SEL_UNKNOWN)
			fz_mmio_forget();
	}
	if (fz_transport == FZ_T_MMIO && overlaps(off, w, VIRTIO_MMIO_STATUS))
		fz_mmio_forget(); /* it may have been a reset */
	if (exact && off == VIRTIO_MMIO_DEVICE_FEATURES_SEL)
		mm.feature_sel = val;
	if (exact && off == VIRTIO_MMIO_DRIVER_FEATURES_SEL)
		mm.driver_feature_sel = val;
	if (exact && off == VIRTIO_MMIO_DRIVER_FEATURES && mm.driver_feature_sel < 2) {
		int sh = mm.driver_feature_sel ? 32 : 0;
		fz_driver_features = (fz_driver_features & ~(0xffffffffULL << sh)) | (uint64_t)val << sh;
	}
	if (exact && off == VIRTIO_MMIO_STATUS && val == 0)
		fz_driver_features = 0;
	return 0;
outside:
	snprintf(why, why_len, "the fz_rings of queue %u would leave the ring memory", sel);
	return -EINVAL;
}

void fz_mmio_reg_write(uint64_t off, unsigned w, uint64_t v) { fz_reg_write(fz_vd->mmio + off, w, v); }

/* A write the model allows, or nothing and -EINVAL. */
static int mmio_write_checked(uint64_t off, unsigned w, uint64_t v, char *why, size_t why_len)
{
	int rc = fz_mmio_check_write(off, w, v, why, why_len);
	if (rc == 0)
		fz_mmio_reg_write(off, w, v);
	return rc;
}

int fz_mmio_qsetup(const struct fz_op *op, struct fz_ring *r, uint64_t base, char *why, size_t why_len)
{
	int rc;
	uint16_t size = r->size;
	if (fz_transport == FZ_T_MMIO1) {
		const uint64_t align = VIRTIO_MMIO_LEGACY_PAGE;
		r->avail_off = 16u * size;
		r->used_off = (uint32_t)((r->avail_off + 6 + 2u * size + align - 1) & ~(align - 1));
		if ((rc = mmio_write_checked(VIRTIO_MMIO_GUEST_PAGE_SIZE, 4, VIRTIO_MMIO_LEGACY_PAGE, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_SEL, 4, op->q, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_NUM, 4, size, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_ALIGN, 4, align, why, why_len)) ||
		    (rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_PFN, 4, base / VIRTIO_MMIO_LEGACY_PAGE, why, why_len)))
			return rc;
		return 0;
	}
	fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_SEL, 4, op->q);
	mm.sel = op->q;
	if ((rc = mmio_write_checked(VIRTIO_MMIO_QUEUE_NUM, 4, size, why, why_len)) < 0)
		return rc;
	const uint64_t addr[3] = { base, base + RING_AVAIL_OFF, base + RING_USED_OFF };
	for (unsigned i = 0; i < 3; i++) {
		fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i, 4, (uint32_t)addr[i]);
		fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i + 4, 4, (uint32_t)(addr[i] >> 32));
	}
	if (op->q < FZ_QUEUES)
		mm.addrs_ok[op->q] = true;
	return mmio_write_checked(VIRTIO_MMIO_QUEUE_READY, 4, 1, why, why_len);
}

/* qaddr: select Q, give it three ring addresses inside its ring memory. */
int fz_mmio_qaddr(const struct fz_op *op, char *why, size_t why_len)
{
	if (fz_transport != FZ_T_MMIO) {
		snprintf(why, why_len, "qaddr is for virtio-mmio version 2 (v1 places fz_rings by QueuePFN)");
		return -EINVAL;
	}
	for (unsigned i = 0; i < 3; i++)
		if (op->qoff[i] > QADDR_MAX) {
			snprintf(why, why_len, "offset %#x is beyond %#x: the ring would leave its memory", op->qoff[i],
				 QADDR_MAX);
			return -EINVAL;
		}
	uint64_t base = virt_to_phys(fz_rings[op->q % FZ_QUEUES].mem);
	fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_SEL, 4, op->q);
	mm.sel = op->q;
	for (unsigned i = 0; i < 3; i++) {
		uint64_t a = base + op->qoff[i];
		fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i, 4, (uint32_t)a);
		fz_mmio_reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW + 16 * i + 4, 4, (uint32_t)(a >> 32));
	}
	if (op->q < FZ_QUEUES)
		mm.addrs_ok[op->q] = true;
	return 0;
}

int fz_mmio_mw(const struct fz_op *op, char *why, size_t why_len)
{
	if (fz_transport == FZ_T_PCI) {
		snprintf(why, why_len, "mw is for virtio-mmio; the balloon is on PCI (cw)");
		return -EINVAL;
	}
	if (op->off + op->width > fz_vd->mmio_size) {
		snprintf(why, why_len, "outside the mmio register block");
		return -EINVAL;
	}
	return mmio_write_checked(op->off, op->width, op->value, why, why_len);
}

int fz_mmio_mr(const struct fz_op *op, char *why, size_t why_len)
{
	if (fz_transport == FZ_T_PCI || op->off + op->width > fz_vd->mmio_size) {
		snprintf(why, why_len, fz_transport == FZ_T_PCI ? "mr is for virtio-mmio; the balloon is on PCI (cr)"
							  : "outside the mmio register block");
		return -EINVAL;
	}
	uint64_t v = fz_reg_read(fz_vd->mmio + op->off, op->width);
	printf("fz> = %#lx\n", (unsigned long)v);
	if (op->width != 4)
		return 0;
	if (op->off == VIRTIO_MMIO_DEVICE_FEATURES && mm.feature_sel < 2) {
		int sh = mm.feature_sel ? 32 : 0;
		fz_state.device_features = (fz_state.device_features & ~(0xffffffffULL << sh)) | v << sh;
	}
	if (op->off == VIRTIO_MMIO_QUEUE_NUM_MAX && mm.sel < FZ_QUEUES && mm.num[mm.sel] == NUM_UNKNOWN)
		mm.num[mm.sel] = (uint32_t)v; /* the size the device takes when none is written */
	return 0;
}

