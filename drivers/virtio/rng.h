/*
 * rng: virtio-rng (virtio 1.2, 5.4), blimp's second virtio device.
 *
 * The simplest device there is — one queue of device-writable buffers the
 * host fills with random bytes — and, unlike QEMU's balloon, it has MSI-X,
 * so it is how the transport's MSI-X path is exercised.
 */
#ifndef BLIMP_VIRTIO_RNG_H
#define BLIMP_VIRTIO_RNG_H

/* Bring up the first virtio-rng device, if any. */
void rng_init(void);

#endif
