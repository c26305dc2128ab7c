/*
 * blk: virtio-blk devices (virtio 1.2, 5.2) for the kernel, and the `blk`
 * shell command.
 *
 * The requests themselves — layout, limits, what is checked in a
 * completion — are drivers/virtio/blk_core.c; this file finds the devices,
 * negotiates, sets up the one request queue with interrupts from the
 * transport (MSI-X when present, INTx otherwise, or polling) and offers a
 * synchronous interface. A call splits its sectors into requests of at most
 * blk_core's max_sectors, keeps up to BLK_MAX_INFLIGHT of them in flight,
 * and waits for them with a bounded timeout (work_wait: no other work runs
 * meanwhile). Buffers may be anywhere (the heap too): data is copied
 * through the device's own DMA slots.
 */
#ifndef BLIMP_VIRTIO_BLK_H
#define BLIMP_VIRTIO_BLK_H

#include <stdint.h>

#define BLK_MAX_DEVS 4
#define BLK_TIMEOUT_MS 5000

/* Bring up every virtio-blk device (blk0, blk1, ... in PCI order). */
void blk_init(void);

/* Devices brought up, and device `dev`'s capacity in 512-byte sectors
 * (0 for no such device). */
int blk_count(void);
uint64_t blk_capacity(unsigned dev);

/* 1 if device `dev` is read-only (it offered VIRTIO_BLK_F_RO: `readonly=on`
 * on QEMU's drive), 0 if it may be written, -ENODEV for no such device. A
 * reader that caches the disk's contents needs the first: no write through
 * the device can then change the bytes under its copies. */
int blk_read_only(unsigned dev);

/*
 * Read / write `n` 512-byte sectors at `sector` of device `dev`. Returns 0
 * or a negative errno: -ENODEV (no such device or it broke), -EROFS,
 * -ERANGE (beyond capacity), -EINVAL (not whole blocks), -EIO (the device
 * said IOERR or broke a rule), -EPROTO (it lied in this very request),
 * -EOPNOTSUPP, -ETIMEDOUT (no answer within BLK_TIMEOUT_MS; the requests
 * stay the device's). On an error, part of the range may have been done.
 */
int blk_read(unsigned dev, uint64_t sector, void *buf, uint32_t n);
int blk_write(unsigned dev, uint64_t sector, const void *buf, uint32_t n);

/* Make completed writes durable (VIRTIO_BLK_T_FLUSH; 0 at once when the
 * device did not offer VIRTIO_BLK_F_FLUSH: it has no volatile cache). */
int blk_flush(unsigned dev);

#endif
