/*
 * fuzz_balloon: the balloon state machine (drivers/virtio/balloon_core.c,
 * balloon_stats.c, balloon_reporting.c, balloon_hint.c) on a simulated
 * machine (tests/unit/balloon_sim.c), with
 * the fuzzer playing the host, the device and the guest's other users of
 * memory. Statistics handling is part of it (the stats queue is one of the
 * queues the device may answer, repeat or lie on).
 *
 * Input: 8 bytes of setup — memory size and reserve floor, batch size and
 * buffers in flight, features wanted and offered (and claimed beyond the
 * offer), queue size, event index, indirect tables, packed or split rings,
 * which queues the device
 * answers inside the notify (as QEMU under TCG does), whether it answers
 * while the OOM path polls, the poison byte — then one operation per byte
 * with its arguments:
 *   target    the host writes num_pages (small, near memory, or anything)
 *   hint      the host writes a hint command id (STOP, DONE, or a round)
 *   config    the configuration as read is any 0-16 bytes (short reads too)
 *   work      the kernel loop runs the balloon's work
 *   irq       a queue interrupt
 *   timer     a timer the balloon armed fires (retry, report, hint)
 *   take      the device takes the next buffer on a queue (checked)
 *   complete  the device completes one it took, with length 0 or any
 *   answer    the device takes and completes everything on a queue
 *   lie       the device breaks a queue: an id not in flight, a length
 *             beyond the buffer, used.idx past the buffers in flight
 *   auto      toggle answering a queue inside the notify
 *   alloc     the guest allocates a block (deflate-on-OOM may run)
 *   free      the guest frees one of its blocks
 * After every operation, bsim_check: the allocator's invariants (pfa_check),
 * the balloon's (balloon_check: held and in-flight counts match the run list
 * and batches, every held frame is ballooned, the allocator's ballooned
 * count is the balloon's), ballooned exactly when unmapped, nothing the host
 * holds is back in the guest's hands, the queues' own bookkeeping, timers,
 * `actual` equal to what the guest has seen acknowledged, poison_val; and
 * here: no more buffers in flight than the balloon may have. The per-step
 * checks are incremental (bsim's `incremental` mode: only the allocator and
 * the 2 MiB blocks that changed since the last check are walked again, with
 * the same verdict as a full walk); after the last operation one more check
 * walks everything.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/balloon_sim.h"

#define MAX_OPS 512
#define MAX_GUEST 64

static struct bsim S;

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t byte(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t u32(struct input *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)byte(in) << (8 * i);
	return v;
}

static void check(const char *op)
{
	if (bsim_check(&S) == 0) {
		unsigned in_out = S.vq[BALLOON_Q_INFLATE].in_flight + S.vq[BALLOON_Q_DEFLATE].in_flight;
		if (in_out > S.b.p.inflight)
			snprintf(S.failure, sizeof(S.failure), "%u inflate/deflate buffers in flight, at most %u",
				 in_out, S.b.p.inflight);
		else if (S.live[BALLOON_Q_STATS] && S.vq[BALLOON_Q_STATS].in_flight > 1)
			snprintf(S.failure, sizeof(S.failure), "a second stats buffer: %u in flight",
				 S.vq[BALLOON_Q_STATS].in_flight);
		else if (S.live[BALLOON_Q_REPORT] && S.vq[BALLOON_Q_REPORT].in_flight > 1)
			snprintf(S.failure, sizeof(S.failure), "%u report buffers in flight",
				 S.vq[BALLOON_Q_REPORT].in_flight);
		else
			return;
	}
	fprintf(stderr, "fuzz_balloon: after %s: %s\n", op, S.failure);
	abort();
}

static void setup(struct input *in, struct bsim_config *c)
{
	uint8_t m = byte(in), b = byte(in), f = byte(in), o = byte(in), q = byte(in), a = byte(in);
	uint8_t x = byte(in), poison = byte(in);
	static const uint32_t batches[8] = { 1, 3, 16, 64, 256, 512, 1000, 4096 };
	c->frames = 1024u * (1 + (m & 3));                 /* 4, 8, 12 or 16 MiB */
	c->reserve_floor = (uint64_t)(m >> 2) * 64;         /* up to 4 MiB */
	c->p.batch_pages = batches[b & 7];
	c->p.inflight = 1 + ((b >> 3) & 3);
	c->p.report_delay_ms = 100;
	c->p.stats = f & 1;
	c->p.reporting = f & 2;
	c->p.oom = f & 4;
	c->p.hint = f & 8;
	c->p.poison = (f & 16) ? poison : -1;
	c->offered = ((uint64_t)o << 0) | (1ULL << 32);
	c->extra = (f & 32) ? (uint64_t)(x & 0x3f) : 0;
	c->queue_size = (uint16_t)(1u << (q & 7));          /* 1 to 128 */
	c->event_idx = q & 8;
	c->indirect = q & 16;
	c->packed = q & 32;
	c->auto_answer = a & 0x1f;
	c->oom_answers = a & 0x20;
}

static uint32_t target_value(struct input *in)
{
	uint8_t k = byte(in);
	switch (k & 3) {
	case 0:
		return byte(in);                                   /* a few pages */
	case 1:
		return (uint32_t)(S.c.frames * byte(in) / 255);    /* anywhere in memory */
	case 2:
		return (uint32_t)S.c.frames - byte(in) + 128;       /* about all of it, or beyond */
	default:
		return u32(in);                                    /* anything */
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!getenv("BSIM_VERBOSE"))
		(void)!freopen("/dev/null", "w", stdout); /* the queues say when they break */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct bsim_config c = { 0 };
	setup(&in, &c);
	if (bsim_init(&S, &c) < 0) {
		fprintf(stderr, "fuzz_balloon: bsim_init: %s\n", S.failure);
		abort();
	}
	S.incremental = true;
	check("start");
	struct { int64_t pfn; unsigned order; } guest[MAX_GUEST];
	unsigned n_guest = 0;
	for (int ops = 0; ops < MAX_OPS && in.n; ops++) {
		uint8_t op = byte(&in);
		enum balloon_queue q = (enum balloon_queue)((op >> 4) % BALLOON_NQ);
		const char *name = "?";
		switch (op & 15) {
		case 0:
			name = "target";
			bsim_set_num_pages(&S, target_value(&in));
			break;
		case 1: {
			name = "hint";
			uint8_t k = byte(&in);
			bsim_set_hint_cmd(&S, k < 64 ? BALLOON_HINT_CMD_ID_STOP : k < 128 ? BALLOON_HINT_CMD_ID_DONE : k);
			break;
		}
		case 3: {
			name = "config";
			uint8_t raw[16], len = byte(&in) % 17;
			for (int i = 0; i < 16; i++)
				raw[i] = byte(&in);
			if (len >= 8) /* taken: the machine's configuration is what it read */
				memcpy(S.cfg, raw, 8 + (len >= 12 ? 4 : 0));
			balloon_config_changed(&S.b, len >= 8 ? S.cfg : raw, len);
			break;
		}
		case 2:
			name = "work";
			bsim_run_work(&S);
			break;
		case 4:
			name = "irq";
			bsim_interrupt(&S);
			break;
		case 5:
			name = "timer";
			bsim_fire_timer(&S, (enum balloon_timer)((op >> 4) % BALLOON_NT));
			break;
		case 6:
			name = "take";
			bsim_take(&S, q);
			break;
		case 7:
		case 8: {
			name = "complete";
			uint8_t k = byte(&in);
			uint32_t len = (op & 15) == 7 ? 0 : u32(&in) % (4u << 20);
			bsim_complete(&S, q, k, len);
			break;
		}
		case 9:
			name = "answer";
			bsim_answer_all(&S, q);
			break;
		case 10: {
			name = "lie";
			uint8_t k = byte(&in);
			bsim_lie(&S, q, k % 3, k);
			break;
		}
		case 11:
			name = "auto";
			S.c.auto_answer ^= 1u << q;
			break;
		case 12:
		case 13: {
			name = "alloc";
			unsigned order = byte(&in) % 12;
			if (n_guest == MAX_GUEST)
				break;
			int64_t pfn = bsim_alloc(&S, order);
			if (pfn >= 0)
				guest[n_guest++] = (typeof(guest[0])){ pfn, order };
			break;
		}
		case 14: {
			name = "free";
			uint8_t k = byte(&in);
			if (!n_guest)
				break;
			k %= n_guest;
			if (bsim_free(&S, (uint64_t)guest[k].pfn, guest[k].order) < 0) {
				snprintf(S.failure, sizeof(S.failure), "the guest's own block %#lx order %u would not free",
					 (unsigned long)guest[k].pfn, guest[k].order);
			}
			guest[k] = guest[--n_guest];
			break;
		}
		default:
			name = "settle";
			for (int i = 0; i < 8; i++) {
				bsim_run_work(&S);
				bsim_answer_all(&S, BALLOON_Q_INFLATE);
				bsim_answer_all(&S, BALLOON_Q_DEFLATE);
				bsim_interrupt(&S);
			}
			break;
		}
		check(name);
	}
	S.incremental = false;
	check("the last operation (full check)");
	bsim_destroy(&S);
	return 0;
}
