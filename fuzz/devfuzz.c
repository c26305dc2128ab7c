/*
 * devfuzz: fuzz mode, the part that runs programs (see devfuzz.h).
 *
 * Generated programs run as work, a few operations per turn, so the kernel
 * loop (and the shell) keep running between them. The seed goes out first,
 * then every operation as it executes; at the end a `fuzz_done` event
 * carries the counters. In replay mode nothing is generated: the host sends
 * each logged operation with the `fz` shell command.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "devfuzz.h"
#include "kernel/clock.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"
#include "kernel/shell.h"
#include "kernel/work.h"

CMDLINE_OPTION(fuzz, "fuzz", "fuzz the virtio-balloon device with generated programs instead of driving it");
CMDLINE_OPTION(fuzz_seed, "fuzz.seed", "the generator's seed (default 1)");
CMDLINE_OPTION(fuzz_ops, "fuzz.ops", "operations to run in fuzz mode (default 2000)");
CMDLINE_OPTION(fuzz_bad, "fuzz.bad", "percent of programs with malformed operations (default 70)");
CMDLINE_OPTION(fuzz_replay, "fuzz.replay", "fuzz mode without the generator: run ops sent with the `fz` command");

#define OPS_PER_TURN 16

static struct {
	bool active, replay, finishing, done;
	uint64_t seed, ops_wanted, start_ms;
	struct work work;
} M;

static void fuzz_summary(void)
{
	const struct fz_counters *c = &fz_counters;
	uint64_t ms = clock_ms() - M.start_ms;
	printf("fuzz: %lu ops (%lu refused) in %lu programs (%lu valid) in %lu ms; NEEDS_RESET after %lu bad "
	       "programs and %lu valid ones; %lu findings\n", (unsigned long)c->ops, (unsigned long)c->refused,
	       (unsigned long)c->programs, (unsigned long)c->valid_programs, (unsigned long)ms,
	       (unsigned long)c->needs_reset_bad, (unsigned long)c->needs_reset_valid, (unsigned long)c->findings);
	event_emit("fuzz_done", "\"seed\":%lu,\"ops\":%lu,\"refused\":%lu,\"programs\":%lu,\"valid_programs\":%lu,"
		   "\"needs_reset_bad\":%lu,\"needs_reset_valid\":%lu,\"pattern_errors\":%lu,\"used\":%lu,"
		   "\"bad_used\":%lu,\"findings\":%lu,\"ms\":%lu", (unsigned long)M.seed, (unsigned long)c->ops,
		   (unsigned long)c->refused, (unsigned long)c->programs, (unsigned long)c->valid_programs,
		   (unsigned long)c->needs_reset_bad, (unsigned long)c->needs_reset_valid,
		   (unsigned long)c->pattern_errors, (unsigned long)c->used, (unsigned long)c->bad_used,
		   (unsigned long)c->findings, (unsigned long)ms);
}

static void fuzz_turn(struct work *w)
{
	for (int i = 0; i < OPS_PER_TURN && !M.done; i++) {
		struct fz_op op;
		fz_gen_next(&op);
		/* Past the budget, finish the running program: stop at its check. */
		if (fz_counters.ops >= M.ops_wanted && op.kind == FZ_PROG) {
			M.done = true;
			break;
		}
		fz_exec(&op);
	}
	if (M.done)
		fuzz_summary();
	else
		work_queue(w);
}

/* Called instead of balloon_init when the command line asks for fuzz mode. */
bool devfuzz_start(void)
{
	if (!cmdline_has("fuzz") && !cmdline_has("fuzz.replay"))
		return false;
	M.replay = cmdline_has("fuzz.replay");
	M.seed = cmdline_get_u64("fuzz.seed", 1);
	M.ops_wanted = cmdline_get_u64("fuzz.ops", 2000);
	unsigned bad = (unsigned)cmdline_get_u64("fuzz.bad", 70);
	printf("fuzz: seed %lu, %lu ops, %u%% bad programs%s\n", (unsigned long)M.seed,
	       (unsigned long)M.ops_wanted, bad, M.replay ? " (replay: ops come from the host)" : "");
	event_emit("fuzz_start", "\"seed\":%lu,\"ops\":%lu,\"bad_percent\":%u,\"replay\":%d", (unsigned long)M.seed,
		   (unsigned long)M.ops_wanted, bad, M.replay);
	int rc = fz_exec_init();
	if (rc < 0) {
		event_emit("fuzz_error", "\"reason\":\"%s\"", rc == -EPROTONOSUPPORT
			   ? "the balloon is on legacy PCI; the device fuzzer drives modern PCI and virtio-mmio"
			   : rc == -ENOMEM ? "no memory for the arena" : "no balloon device");
		return true;
	}
	fz_exec_set_pattern_seed(M.seed);
	M.active = true;
	M.start_ms = clock_ms();
	if (!M.replay) {
		fz_gen_init(M.seed, bad);
		M.work.fn = fuzz_turn;
		work_queue(&M.work);
	}
	return true;
}

/* `fz OP...`: run one op from a log (replay); `fz` alone: the counters. */
static int cmd_fz(int argc, char **argv)
{
	if (!M.active) {
		printf("fz: not in fuzz mode (boot with `fuzz` or `fuzz.replay`)\n");
		return -ENODEV;
	}
	if (argc < 2) {
		fuzz_summary();
		return 0;
	}
	char text[FZ_LINE_MAX];
	size_t at = 0;
	for (int i = 1; i < argc; i++) {
		int n = snprintf(text + at, sizeof(text) - at, "%s%s", i > 1 ? " " : "", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(text) - at) {
			printf("fz: op longer than %u characters\n", FZ_LINE_MAX);
			return -EINVAL;
		}
		at += (size_t)n;
	}
	struct fz_op op;
	char why[120];
	if (fz_parse(text, &op, why, sizeof(why)) < 0) {
		printf("fz: %s\n", why);
		return -EINVAL;
	}
	return fz_exec(&op);
}
SHELL_COMMAND(fz, "[op...]", "fuzz mode: run one logged op, or show the counters", cmd_fz);
