/*
 * balloon_internal: what the balloon core's own files share, and nobody else.
 *
 * The core is split by feature: balloon_core.c (target, inflate, deflate,
 * deflate-on-OOM, messages, timers), balloon_stats.c (5.5.6.3),
 * balloon_reporting.c (free page reporting, 5.5.6.6) and balloon_hint.c
 * (free page hinting, 5.5.6.7, off unless `balloon.hint`). They call each
 * other through this header; the kernel glue, the tests and the fuzz
 * harnesses see only balloon_core.h, so these can change without them.
 */
#ifndef BLIMP_BALLOON_INTERNAL_H
#define BLIMP_BALLOON_INTERNAL_H

#include "balloon_core.h"

/* balloon_core.c: a console line (no newline), through ops->log. */
void balloon_say(struct balloon *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An event line with JSON `fields` (fmt may be NULL), through ops->event. */
void balloon_event(struct balloon *b, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The device did something the driver will not accept: counted, said, and a
 * `balloon_refused` event naming `what`. */
void balloon_refuse(struct balloon *b, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Queue q's ring is broken: said once, its work stops. */
void balloon_queue_broken(struct balloon *b, enum balloon_queue q);
/* ops->timer_arm, remembering that t is armed. */
void balloon_arm(struct balloon *b, enum balloon_timer t, uint64_t delay_ns);

/* Blocks one report or hint buffer may carry on `vq`: a chain longer than
 * the ring (no indirect tables) would never be taken, and the report or
 * hint would be retried for ever. */
static inline size_t balloon_max_blocks(const struct vq *vq)
{
	size_t n = vq->indirect ? vq->max_indirect : vq->size;
	return n < BALLOON_MAX_REPORT_RUNS ? n : BALLOON_MAX_REPORT_RUNS;
}

/* balloon_stats.c: refill the one stats buffer and give it to the device
 * (not while it has it); reap its return (the host's request). */
void balloon_post_stats(struct balloon *b);
void balloon_stats_ready(struct balloon *b);

/* balloon_reporting.c: the allocator formed a free, unreported 2 MiB block
 * (a pfa hook, `b` is the balloon); the report timer is due; the report
 * queue returned buffers. */
void balloon_free_block_formed(void *b);
void balloon_report_fired(struct balloon *b);
void balloon_report_ready(struct balloon *b);

/* balloon_hint.c: the host's command id changed (configuration); reap,
 * post held blocks, finish a round (the hint timer and the queue). */
void balloon_hint_command(struct balloon *b, uint32_t id);
void balloon_hint_pump(struct balloon *b);

#endif
