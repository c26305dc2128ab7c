/*
 * balloon: the virtio-balloon driver (virtio 1.2, section 5.5).
 *
 * The host sets a target (num_pages, in 4 KiB pages, in the device
 * configuration) and raises a configuration-change interrupt; the driver
 * moves toward it in batches — inflating takes frames from the allocator
 * (whole 2 MiB blocks first), unmaps them and sends their numbers on the
 * inflate queue; deflating sends numbers on the deflate queue, then maps the
 * frames back and frees them — and writes `actual` as the device
 * acknowledges each batch. It never takes the guest below the allocator's
 * reserve floor (it reports actual < target instead).
 *
 * Also: statistics on request (STATS_VQ), free page reporting of 2 MiB
 * blocks after a short delay (REPORTING), deflate when an allocation would
 * fail (DEFLATE_ON_OOM). MUST_TELL_HOST is honoured by always telling the
 * host before a frame is reused. PAGE_POISON is negotiated only when the
 * kernel really poisons freed frames (poison=0xNN), with that poison_val;
 * otherwise it is refused, since QEMU ignores reports while a poison value
 * is set.
 * FREE_PAGE_HINT (answering the host's hint requests during migration) is
 * implemented but negotiated only with `balloon.hint`: QEMU 7.2 under TCG
 * aborts as soon as a guest sends hints (docs/findings.md, QEMU-1).
 *
 * Queues are numbered compactly (5.5.2): inflate 0, deflate 1, stats 2 if
 * STATS_VQ, free page hint next if FREE_PAGE_HINT, reporting next if
 * REPORTING.
 *
 * The state machine is host-compilable (balloon_core.h, balloon_core.c,
 * balloon_stats.c, balloon_reporting.c, balloon_hint.c); balloon.c is the
 * kernel glue around it.
 */
#ifndef BLIMP_BALLOON_H
#define BLIMP_BALLOON_H

#include "balloon_core.h" /* feature bits, the state machine */

/* Bring up the first virtio-balloon device, if any. */
void balloon_init(void);

#endif
