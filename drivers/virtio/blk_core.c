/*
 * blk_core: virtio-blk configuration, requests and completions (see
 * blk_core.h for the request layout and what is validated). Compiles into
 * the kernel, the host unit tests and the fuzz harness.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "blk_core.h"
#include "kernel/addr.h"
#include "kernel/le.h"

static bool has(uint64_t features, unsigned bit)
{
	return features & (1ULL << bit);
}

int blk_parse_config(const uint8_t *raw, size_t len, uint64_t features, struct blk_config *cfg,
		     char *why, size_t why_len)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->blk_size = BLK_SECTOR;
	cfg->seg_max = BLK_MAX_SEGS;
	cfg->size_max = BLK_REQ_BYTES;
	cfg->ro = has(features, VIRTIO_BLK_F_RO);
	cfg->flush = has(features, VIRTIO_BLK_F_FLUSH);
	size_t need = BLK_CFG_CAPACITY + 8;
	if (has(features, VIRTIO_BLK_F_SIZE_MAX) && need < BLK_CFG_SIZE_MAX + 4)
		need = BLK_CFG_SIZE_MAX + 4;
	if (has(features, VIRTIO_BLK_F_SEG_MAX) && need < BLK_CFG_SEG_MAX + 4)
		need = BLK_CFG_SEG_MAX + 4;
	if (has(features, VIRTIO_BLK_F_BLK_SIZE))
		need = BLK_CFG_BLK_SIZE + 4;
	if (len < need) {
		snprintf(why, why_len, "configuration is %zu bytes, the offered features need %zu", len, need);
		return -EINVAL;
	}
	cfg->capacity = le32(raw + BLK_CFG_CAPACITY) | (uint64_t)le32(raw + BLK_CFG_CAPACITY + 4) << 32;
	if (cfg->capacity > UINT64_MAX / BLK_SECTOR) {
		snprintf(why, why_len, "capacity %#llx sectors overflows 64-bit bytes",
			 (unsigned long long)cfg->capacity);
		return -EINVAL;
	}
	if (has(features, VIRTIO_BLK_F_BLK_SIZE)) {
		uint32_t bs = le32(raw + BLK_CFG_BLK_SIZE);
		if (bs < BLK_SECTOR || bs > 65536 || (bs & (bs - 1))) {
			snprintf(why, why_len, "blk_size %u is not a power of two in 512..65536", bs);
			return -EINVAL;
		}
		cfg->blk_size = bs;
	}
	if (has(features, VIRTIO_BLK_F_SEG_MAX)) {
		uint32_t v = le32(raw + BLK_CFG_SEG_MAX);
		if (v == 0) {
			snprintf(why, why_len, "seg_max is 0: no request could carry data");
			return -EINVAL;
		}
		cfg->seg_max = v < BLK_MAX_SEGS ? v : BLK_MAX_SEGS;
	}
	if (has(features, VIRTIO_BLK_F_SIZE_MAX)) {
		uint32_t v = le32(raw + BLK_CFG_SIZE_MAX);
		if (v < BLK_SECTOR) {
			snprintf(why, why_len, "size_max %u is below one sector", v);
			return -EINVAL;
		}
		cfg->size_max = v < BLK_REQ_BYTES ? v : BLK_REQ_BYTES;
	}
	if ((uint64_t)cfg->seg_max * cfg->size_max < cfg->blk_size) {
		snprintf(why, why_len, "seg_max %u x size_max %u cannot carry one block of %u bytes",
			 cfg->seg_max, cfg->size_max, cfg->blk_size);
		return -EINVAL;
	}
	return 0;
}

__attribute__((format(printf, 2, 3))) static void say(struct blk *b, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (b->ops && b->ops->say)
		b->ops->say(b->ctx, msg);
}

int blk_core_init(struct blk *b, struct vq *vq, const struct blk_config *cfg, void *hdr_mem,
		  void *data_mem, const struct blk_ops *ops, void *ctx)
{
	if (!vq || !cfg || !hdr_mem || !data_mem || ((uintptr_t)hdr_mem & 15))
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	b->vq = vq;
	b->cfg = *cfg;
	b->ops = ops;
	b->ctx = ctx;
	/* The largest request: whole blocks within our buffer and the device's limits. */
	uint64_t bytes = (uint64_t)cfg->seg_max * cfg->size_max;
	if (bytes > BLK_REQ_BYTES)
		bytes = BLK_REQ_BYTES;
	bytes -= bytes % cfg->blk_size;
	b->max_sectors = (uint32_t)(bytes / BLK_SECTOR);
	if (b->max_sectors == 0)
		return -EINVAL;
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++) {
		b->slot[i].hdr = (struct blk_hdr_mem *)hdr_mem + i;
		b->slot[i].data = (uint8_t *)data_mem + (size_t)i * BLK_REQ_BYTES;
	}
	return 0;
}

/* Why sectors [sector, sector + nsect) may not go, said; 0 if they may. */
static int blk_refusal(struct blk *b, uint32_t type, uint64_t sector, uint32_t nsect)
{
	uint32_t per_block = b->cfg.blk_size / BLK_SECTOR;
	if (type == VIRTIO_BLK_T_FLUSH)
		return nsect || sector ? say(b, "a flush carries no sectors"), -EINVAL : 0;
	if (type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_OUT)
		return say(b, "unknown request type %u", type), -EINVAL;
	if (type == VIRTIO_BLK_T_OUT && b->cfg.ro)
		return say(b, "the device is read-only: write of %u sectors at %llu refused", nsect,
			   (unsigned long long)sector), -EROFS;
	if (nsect == 0)
		return say(b, "a request of 0 sectors"), -EINVAL;
	if (sector >= b->cfg.capacity || nsect > b->cfg.capacity - sector)
		return say(b, "sectors %llu..%llu are beyond the capacity of %llu sectors",
			   (unsigned long long)sector, (unsigned long long)sector + nsect - 1,
			   (unsigned long long)b->cfg.capacity), -ERANGE;
	if (sector % per_block || nsect % per_block)
		return say(b, "sector %llu, %u sectors: not whole blocks of %u bytes",
			   (unsigned long long)sector, nsect, b->cfg.blk_size), -EINVAL;
	return 0;
}

int blk_core_check(struct blk *b, uint32_t type, uint64_t sector, uint32_t nsect)
{
	if (b->broken)
		return -EIO;
	int rc = blk_refusal(b, type, sector, nsect);
	if (rc < 0)
		b->st.refused++;
	return rc;
}

int blk_core_submit(struct blk *b, uint32_t type, uint64_t sector, uint32_t nsect, const void *src)
{
	int rc = blk_core_check(b, type, sector, nsect);
	if (rc < 0)
		return rc;
	if (nsect > b->max_sectors) {
		b->st.refused++;
		return say(b, "%u sectors in one request: at most %u", nsect, b->max_sectors), -EINVAL;
	}
	int i = 0;
	while (i < BLK_MAX_INFLIGHT && b->slot[i].state != BLK_FREE)
		i++;
	if (i == BLK_MAX_INFLIGHT)
		return -EBUSY;
	struct blk_slot *s = &b->slot[i];
	uint32_t bytes = nsect * BLK_SECTOR;
	s->hdr->type = type;
	s->hdr->reserved = 0;
	s->hdr->sector = type == VIRTIO_BLK_T_FLUSH ? 0 : sector;
	s->hdr->status = BLK_STATUS_UNSET;
	if (type == VIRTIO_BLK_T_OUT)
		memcpy(s->data, src, bytes);

	/* Header, data in size_max pieces, status. */
	struct vq_seg seg[BLK_MAX_SEGS + 2];
	unsigned n = 0;
	seg[n++] = (struct vq_seg){ virt_to_phys(s->hdr), 16 };
	for (uint32_t off = 0; off < bytes; off += b->cfg.size_max) {
		uint32_t len = bytes - off < b->cfg.size_max ? bytes - off : b->cfg.size_max;
		seg[n++] = (struct vq_seg){ virt_to_phys(s->data + off), len };
	}
	unsigned n_data = n - 1;
	seg[n++] = (struct vq_seg){ virt_to_phys(&s->hdr->status), 1 };
	unsigned n_out = type == VIRTIO_BLK_T_OUT ? 1 + n_data : 1;
	uint64_t token = (uint64_t)i + 1 + ++b->gen * BLK_MAX_INFLIGHT;
	rc = vq_add(b->vq, seg, n_out, seg + n_out, n - n_out, (void *)(uintptr_t)token);
	if (rc == -ENOSPC)
		return -EBUSY;
	if (rc < 0)
		return rc;
	*s = (struct blk_slot){ BLK_INFLIGHT, type, sector, bytes, 0, token, s->hdr, s->data };
	b->inflight++;
	if (b->inflight > b->st.max_inflight)
		b->st.max_inflight = b->inflight;
	b->st.requests++;
	if (b->ops && b->ops->notify)
		b->ops->notify(b->ctx);
	return i;
}

/* The device broke a rule: remember why, fail everything it holds. */
static void blk_break(struct blk *b, const char *why)
{
	if (!b->broken) {
		b->broken = true;
		snprintf(b->broken_reason, sizeof(b->broken_reason), "%s", why);
		say(b, "the device broke the rules (%s); it is not used any more", why);
	}
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++) {
		struct blk_slot *s = &b->slot[i];
		if (s->state == BLK_INFLIGHT) {
			s->state = BLK_DONE;
			s->result = -EIO;
			b->st.errors++;
		} else if (s->state == BLK_ABANDONED) {
			s->state = BLK_FREE;
		}
	}
	b->inflight = 0;
}

/* Judge one completion of slot s with used length len; the request's result. */
static int blk_judge(struct blk *b, struct blk_slot *s, uint32_t len, char *lie, size_t lie_len)
{
	uint8_t status = __atomic_load_n(&s->hdr->status, __ATOMIC_ACQUIRE);
	uint32_t want = s->type == VIRTIO_BLK_T_IN && status == VIRTIO_BLK_S_OK ? s->bytes + 1 : 1;
	if (len < want) {
		snprintf(lie, lie_len, "request at sector %llu: used length %u, at least %u expected",
			 (unsigned long long)s->sector, len, want);
		return -EPROTO;
	}
	switch (status) {
	case VIRTIO_BLK_S_OK:
		return 0;
	case VIRTIO_BLK_S_IOERR:
		say(b, "I/O error at sector %llu (%u bytes, type %u)", (unsigned long long)s->sector,
		    s->bytes, s->type);
		return -EIO;
	case VIRTIO_BLK_S_UNSUPP:
		say(b, "request type %u unsupported by the device", s->type);
		return -EOPNOTSUPP;
	default:
		snprintf(lie, lie_len, "request at sector %llu: status byte %#x is none of OK, IOERR, UNSUPP",
			 (unsigned long long)s->sector, status);
		return -EPROTO;
	}
}

int blk_core_reap(struct blk *b)
{
	if (b->broken)
		return -EIO;
	int completed = 0;
	void *token;
	uint32_t len;
	int rc;
	while ((rc = vq_get_used(b->vq, &token, &len)) == 1) {
		uint64_t t = (uint64_t)(uintptr_t)token;
		unsigned i = (unsigned)((t - 1) % BLK_MAX_INFLIGHT);
		struct blk_slot *s = &b->slot[i];
		char lie[160];
		if (t == 0 || (s->state != BLK_INFLIGHT && s->state != BLK_ABANDONED) || s->token != t) {
			snprintf(lie, sizeof(lie), "completion of token %llu, no request in flight",
				 (unsigned long long)t);
			b->st.lies++;
			blk_break(b, lie);
			return -EIO;
		}
		b->inflight--;
		completed++;
		int result = blk_judge(b, s, len, lie, sizeof(lie));
		if (s->state == BLK_ABANDONED) {
			s->state = BLK_FREE;
			b->st.late++;
		} else {
			s->state = BLK_DONE;
			s->result = result;
			if (result < 0)
				b->st.errors++;
			else if (s->type == VIRTIO_BLK_T_IN)
				b->st.reads++, b->st.bytes_read += s->bytes;
			else if (s->type == VIRTIO_BLK_T_OUT)
				b->st.writes++, b->st.bytes_written += s->bytes;
			else
				b->st.flushes++;
		}
		if (result == -EPROTO) {
			b->st.lies++;
			blk_break(b, lie);
			return -EIO;
		}
	}
	if (rc < 0) {
		char why[200];
		snprintf(why, sizeof(why), "queue broken: %s", vq_broken_reason(b->vq));
		b->st.lies++;
		blk_break(b, why);
		return -EIO;
	}
	return completed;
}

bool blk_core_done(const struct blk *b, int i)
{
	return i >= 0 && i < BLK_MAX_INFLIGHT && b->slot[i].state == BLK_DONE;
}

int blk_core_finish(struct blk *b, int i, void *dst)
{
	if (!blk_core_done(b, i))
		return -EINVAL;
	struct blk_slot *s = &b->slot[i];
	int result = s->result;
	if (result == 0 && s->type == VIRTIO_BLK_T_IN && dst)
		memcpy(dst, s->data, s->bytes);
	s->state = BLK_FREE;
	return result;
}

void blk_core_abandon(struct blk *b, int i)
{
	if (i < 0 || i >= BLK_MAX_INFLIGHT)
		return;
	struct blk_slot *s = &b->slot[i];
	if (s->state == BLK_INFLIGHT) {
		s->state = BLK_ABANDONED;
		b->st.errors++;
	} else if (s->state == BLK_DONE) {
		s->state = BLK_FREE;
	}
}
