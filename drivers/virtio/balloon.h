/*
 * balloon: the virtio-balloon driver (virtio 1.2, 5.5).
 */
#ifndef BLIMP_BALLOON_H
#define BLIMP_BALLOON_H

/* Bring up the first virtio-balloon device, if any. */
void balloon_init(void);

#endif
