/*
 * blk: virtio-blk kernel glue and the `blk` shell command (see blk.h).
 *
 * Per device: a struct blk (blk_core.c) over request queue 0, its DMA
 * slots allocated once and never freed (a device that answers late writes
 * into memory that is still its own). Completions are taken off the queue
 * by the queue's work and, during a synchronous call, by the wait itself
 * (work_wait runs no work, so its test polls the ring).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "blk.h"
#include "blk_core.h"
#include "virtio.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/parse.h"
#include "kernel/shell.h"

struct blk_dev {
	struct virtio_dev *vd;
	struct blk core;
	bool up;
};

static struct blk_dev devs[BLK_MAX_DEVS];
static int ndevs;

static void blk_notify(void *ctx)
{
	virtio_notify(((struct blk_dev *)ctx)->vd, 0);
}

static void blk_say(void *ctx, const char *msg)
{
	struct blk_dev *d = ctx;
	printf("blk%d: %s\n", (int)(d - devs), msg);
}

static const struct blk_ops kernel_ops = { blk_notify, blk_say };

static void blk_queue_work(struct virtio_dev *vd)
{
	struct blk_dev *d = vd->driver;
	if (d && d->up)
		blk_core_reap(&d->core);
}

/* Start one device; false (with a message) when it cannot be used. */
static bool blk_start(struct blk_dev *d, struct virtio_dev *vd)
{
	static const char *const names[VIRTIO_DEVICE_FEATURE_BITS] = {
		[VIRTIO_BLK_F_SIZE_MAX] = "SIZE_MAX/1", [VIRTIO_BLK_F_SEG_MAX] = "SEG_MAX/2",
		[VIRTIO_BLK_F_GEOMETRY] = "GEOMETRY/4", [VIRTIO_BLK_F_RO] = "RO/5",
		[VIRTIO_BLK_F_BLK_SIZE] = "BLK_SIZE/6", [VIRTIO_BLK_F_FLUSH] = "FLUSH/9",
		/* Offered by QEMU, not used (yet): named so `virtio` says what was declined. */
		[10] = "TOPOLOGY/10", [11] = "CONFIG_WCE/11", [12] = "MQ/12", [13] = "DISCARD/13",
		[14] = "WRITE_ZEROES/14", [15] = "LIFETIME/15", [16] = "SECURE_ERASE/16", [17] = "ZONED/17",
	};
	int n = (int)(d - devs);
	d->vd = vd;
	vd->driver = d; /* taken, even if it fails: virtio_find moves on */
	vd->feature_names = names;
	uint64_t wanted = 1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
			  1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH;
	if (virtio_start(vd, wanted) < 0)
		return false;
	uint8_t raw[BLK_CFG_BYTES] = { 0 };
	uint32_t len = vd->device_cfg_len < BLK_CFG_BYTES ? vd->device_cfg_len : BLK_CFG_BYTES;
	struct blk_config cfg;
	char why[160];
	if (virtio_config_read(vd, 0, raw, len) < 0) {
		printf("blk%d: configuration unreadable (kept changing); device not used\n", n);
		return false;
	}
	if (blk_parse_config(raw, len, vd->features, &cfg, why, sizeof(why)) < 0) {
		printf("blk%d: %s; device not used\n", n, why);
		event_emit("blk_refused", "\"dev\":%d,\"why\":\"%s\"", n, why);
		return false;
	}
	void *hdr = mm_alloc_dma(BLK_HDR_MEM_BYTES), *data = mm_alloc_dma(BLK_DATA_MEM_BYTES);
	if (!hdr || !data || virtio_setup_queue(vd, 0, 128) < 0 ||
	    blk_core_init(&d->core, vd->queues[0], &cfg, hdr, data, &kernel_ops, d) < 0) {
		printf("blk%d: no memory or no usable queue; device not used\n", n);
		return false;
	}
	d->up = true;
	virtio_ready(vd, NULL, blk_queue_work);
	printf("blk%d: %llu sectors (%llu MiB), block %u bytes, %s%s, up to %u sectors per request\n", n,
	       (unsigned long long)cfg.capacity, (unsigned long long)(cfg.capacity >> 11), cfg.blk_size,
	       cfg.ro ? "read-only" : "read-write", cfg.flush ? ", write cache (flush)" : "", d->core.max_sectors);
	return true;
}

void blk_init(void)
{
	struct virtio_dev *vd;
	while (ndevs < BLK_MAX_DEVS && (vd = virtio_find(VIRTIO_ID_BLOCK)) != NULL)
		blk_start(&devs[ndevs++], vd);
}

int blk_count(void)
{
	return ndevs;
}

static struct blk_dev *blk_get(unsigned dev)
{
	if (dev >= (unsigned)ndevs || !devs[dev].up || devs[dev].core.broken)
		return NULL;
	return &devs[dev];
}

uint64_t blk_capacity(unsigned dev)
{
	return dev < (unsigned)ndevs && devs[dev].up ? devs[dev].core.cfg.capacity : 0;
}

int blk_read_only(unsigned dev)
{
	if (dev >= (unsigned)ndevs || !devs[dev].up)
		return -ENODEV;
	return devs[dev].core.cfg.ro ? 1 : 0;
}

/* What a synchronous call has in flight: slot -> sector offset in its buffer. */
struct blk_wait {
	struct blk *b;
	int64_t off[BLK_MAX_INFLIGHT]; /* -1: not ours */
};

/* work_wait's test: one of ours completed (or the device broke). */
static bool blk_any_done(void *ctx)
{
	struct blk_wait *w = ctx;
	if (blk_core_reap(w->b) < 0)
		return true;
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		if (w->off[i] >= 0 && blk_core_done(w->b, i))
			return true;
	return false;
}

/* Sectors [sector, sector + n) as requests of `type`, several in flight. */
static int blk_io(unsigned dev, uint32_t type, uint64_t sector, uint8_t *buf, uint32_t n)
{
	struct blk_dev *d = blk_get(dev);
	if (!d)
		return -ENODEV;
	struct blk *b = &d->core;
	struct blk_wait w = { .b = b };
	for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
		w.off[i] = -1;
	/* Refuse the whole range before any of it goes (capacity, read-only). */
	int rc = blk_core_check(b, type, sector, n);
	if (rc < 0)
		return rc;
	uint32_t next = 0;
	int err = 0, outstanding = 0;
	bool flush = type == VIRTIO_BLK_T_FLUSH, flush_sent = false;
	while ((!err && (flush ? !flush_sent : next < n)) || outstanding) {
		while (!err && (flush ? !flush_sent : next < n)) {
			uint32_t k = flush ? 0 : (n - next < b->max_sectors ? n - next : b->max_sectors);
			int i = blk_core_submit(b, type, flush ? 0 : sector + next, k, buf ? buf + (uint64_t)next * BLK_SECTOR : NULL);
			if (i == -EBUSY)
				break;
			if (i < 0) {
				err = i;
				break;
			}
			w.off[i] = next;
			next += k;
			flush_sent = flush;
			outstanding++;
		}
		if (!outstanding)
			break;
		if (work_wait(blk_any_done, &w, BLK_TIMEOUT_MS) < 0) {
			printf("blk%u: no answer from the device in %d ms; %d requests stay with it\n", dev,
			       BLK_TIMEOUT_MS, outstanding);
			for (int i = 0; i < BLK_MAX_INFLIGHT; i++)
				if (w.off[i] >= 0)
					blk_core_abandon(b, i);
			return -ETIMEDOUT;
		}
		for (int i = 0; i < BLK_MAX_INFLIGHT; i++) {
			if (w.off[i] < 0 || !blk_core_done(b, i))
				continue;
			rc = blk_core_finish(b, i, type == VIRTIO_BLK_T_IN ? buf + w.off[i] * BLK_SECTOR : NULL);
			if (rc < 0 && !err)
				err = rc;
			w.off[i] = -1;
			outstanding--;
		}
	}
	return err;
}

int blk_read(unsigned dev, uint64_t sector, void *buf, uint32_t n)
{
	return blk_io(dev, VIRTIO_BLK_T_IN, sector, buf, n);
}

int blk_write(unsigned dev, uint64_t sector, const void *buf, uint32_t n)
{
	return blk_io(dev, VIRTIO_BLK_T_OUT, sector, (uint8_t *)(uintptr_t)buf, n);
}

int blk_flush(unsigned dev)
{
	struct blk_dev *d = blk_get(dev);
	if (!d)
		return -ENODEV;
	if (!d->core.cfg.flush)
		return 0;
	return blk_io(dev, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
}

/* ---------------------------------------------------------------- shell */

/* The test pattern: 64-bit word j of sector s for `seed` is splitmix64's
 * finalizer of (seed << 40 ^ s << 8 ^ j) + golden ratio; tests/qemu/test_blk.py
 * computes the same, so a check proves the bytes crossed the device. */
static uint64_t blk_pattern(uint64_t seed, uint64_t s, unsigned j)
{
	uint64_t x = (seed << 40 ^ s << 8 ^ j) + 0x9e3779b97f4a7c15ULL;
	x = (x ^ x >> 30) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ x >> 27) * 0x94d049bb133111ebULL;
	return x ^ x >> 31;
}

#define BLK_SHELL_SECTORS 1024 /* 512 KiB at a time: all slots in flight */

static void blk_list(void)
{
	if (!ndevs)
		printf("no virtio-blk devices\n");
	for (int n = 0; n < ndevs; n++) {
		struct blk_dev *d = &devs[n];
		struct blk *b = &d->core;
		if (!d->up) {
			printf("blk%d: not usable\n", n);
			continue;
		}
		printf("blk%d: %llu sectors (%llu MiB), block %u, %s, seg_max %u, size_max %u, irq %s\n", n,
		       (unsigned long long)b->cfg.capacity, (unsigned long long)(b->cfg.capacity >> 11), b->cfg.blk_size,
		       b->cfg.ro ? "ro" : "rw", b->cfg.seg_max, b->cfg.size_max,
		       d->vd->irq_mode == VIRTIO_IRQ_MSIX ? "msix" : d->vd->irq_mode == VIRTIO_IRQ_INTX ? "intx" : "poll");
		printf("  requests %llu (reads %llu, writes %llu, flushes %llu), bytes read %llu, written %llu, "
		       "errors %llu, lies %llu, refused %llu, late %llu, in flight %u (at most %llu)%s%s\n",
		       (unsigned long long)b->st.requests, (unsigned long long)b->st.reads,
		       (unsigned long long)b->st.writes, (unsigned long long)b->st.flushes,
		       (unsigned long long)b->st.bytes_read, (unsigned long long)b->st.bytes_written,
		       (unsigned long long)b->st.errors, (unsigned long long)b->st.lies,
		       (unsigned long long)b->st.refused, (unsigned long long)b->st.late, b->inflight,
		       (unsigned long long)b->st.max_inflight, b->broken ? "; broken: " : "", b->broken ? b->broken_reason : "");
		event_emit("blk", "\"dev\":%d,\"capacity\":%llu,\"blk_size\":%u,\"ro\":%d,\"requests\":%llu,"
			   "\"reads\":%llu,\"writes\":%llu,\"flushes\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,"
			   "\"errors\":%llu,\"lies\":%llu,\"refused\":%llu,\"late\":%llu,\"max_inflight\":%llu,"
			   "\"broken\":%d", n,
			   (unsigned long long)b->cfg.capacity, b->cfg.blk_size, b->cfg.ro,
			   (unsigned long long)b->st.requests, (unsigned long long)b->st.reads,
			   (unsigned long long)b->st.writes, (unsigned long long)b->st.flushes,
			   (unsigned long long)b->st.bytes_read, (unsigned long long)b->st.bytes_written,
			   (unsigned long long)b->st.errors, (unsigned long long)b->st.lies,
			   (unsigned long long)b->st.refused, (unsigned long long)b->st.late,
			   (unsigned long long)b->st.max_inflight, b->broken);
	}
}

/* `blk read|write DEV SECTOR COUNT SEED`: write the pattern, or read and
 * count the sectors that differ from it. */
static int blk_pattern_cmd(bool write, uint64_t dev, uint64_t sector, uint64_t count, uint64_t seed)
{
	uint8_t *buf = malloc(BLK_SHELL_SECTORS * BLK_SECTOR);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	uint64_t bad = 0, first_bad = 0;
	for (uint64_t done = 0; done < count && rc == 0;) {
		uint32_t k = count - done < BLK_SHELL_SECTORS ? (uint32_t)(count - done) : BLK_SHELL_SECTORS;
		uint64_t *w = (uint64_t *)buf;
		if (write) {
			for (uint32_t s = 0; s < k; s++)
				for (unsigned j = 0; j < BLK_SECTOR / 8; j++)
					w[s * (BLK_SECTOR / 8) + j] = blk_pattern(seed, sector + done + s, j);
			rc = blk_write((unsigned)dev, sector + done, buf, k);
		} else {
			rc = blk_read((unsigned)dev, sector + done, buf, k);
			for (uint32_t s = 0; s < k && rc == 0; s++)
				for (unsigned j = 0; j < BLK_SECTOR / 8; j++)
					if (w[s * (BLK_SECTOR / 8) + j] != blk_pattern(seed, sector + done + s, j)) {
						if (!bad++)
							first_bad = sector + done + s;
						break;
					}
		}
		done += k;
	}
	free(buf);
	const char *op = write ? "write" : "read";
	if (rc == 0 && !write)
		printf("blk%llu: read %llu sectors at %llu, seed %llu: %llu mismatching%s", (unsigned long long)dev,
		       (unsigned long long)count, (unsigned long long)sector, (unsigned long long)seed,
		       (unsigned long long)bad, bad ? " (first at sector " : "\n");
	if (rc == 0 && bad)
		printf("%llu)\n", (unsigned long long)first_bad);
	if (rc == 0 && write)
		printf("blk%llu: wrote %llu sectors at %llu, seed %llu\n", (unsigned long long)dev,
		       (unsigned long long)count, (unsigned long long)sector, (unsigned long long)seed);
	event_emit("blk_io", "\"dev\":%llu,\"op\":\"%s\",\"sector\":%llu,\"count\":%llu,\"seed\":%llu,"
		   "\"rc\":%d,\"mismatches\":%llu,\"first_mismatch\":%llu", (unsigned long long)dev, op,
		   (unsigned long long)sector, (unsigned long long)count, (unsigned long long)seed, rc,
		   (unsigned long long)bad, (unsigned long long)first_bad);
	return rc < 0 ? rc : bad ? -EIO : 0;
}

/* `blk` lists devices and counters; `blk read|write DEV SECTOR COUNT SEED`,
 * `blk flush DEV`. Returns 0, -EINVAL (usage), or the I/O's error (-EIO
 * also when a read found sectors that differ from the pattern). */
static int cmd_blk(int argc, char **argv)
{
	if (argc == 1) {
		blk_list();
		return ndevs ? 0 : -ENODEV;
	}
	uint64_t dev = 0, sector = 0, count = 0, seed = 0;
	bool rw = strcmp(argv[1], "read") == 0 || strcmp(argv[1], "write") == 0;
	if (argc >= 3 && parse_u64_max(argv[2], BLK_MAX_DEVS - 1, &dev) == 0) {
		if (strcmp(argv[1], "flush") == 0 && argc == 3) {
			int rc = blk_flush((unsigned)dev);
			printf("blk%llu: flush %s (%d)\n", (unsigned long long)dev, rc == 0 ? "done" : "failed", rc);
			event_emit("blk_io", "\"dev\":%llu,\"op\":\"flush\",\"rc\":%d", (unsigned long long)dev, rc);
			return rc;
		}
		if (rw && argc == 6 && parse_u64(argv[3], &sector) == 0 &&
		    parse_u64_max(argv[4], 1ULL << 32, &count) == 0 && count > 0 &&
		    parse_u64_max(argv[5], 0xffffff, &seed) == 0)
			return blk_pattern_cmd(argv[1][0] == 'w', dev, sector, count, seed);
	}
	printf("usage: blk | blk read|write DEV SECTOR COUNT SEED | blk flush DEV\n");
	return -EINVAL;
}
SHELL_COMMAND(blk, "[read|write DEV SECTOR COUNT SEED | flush DEV]",
	      "virtio-blk devices and counters; write or verify a test pattern", cmd_blk);
