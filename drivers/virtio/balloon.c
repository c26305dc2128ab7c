/*
 * balloon: the virtio-balloon driver's kernel side (see balloon.h).
 *
 * The state machine is balloon_core.c, balloon_stats.c, balloon_reporting.c
 * and balloon_hint.c, shared with the host tests and fuzz harnesses. This file plugs it into the kernel: command
 * line options, the PCI transport (features, queues, configuration, notify),
 * the direct map (paging), the work queue and timers, the console and event
 * lines, and the `balloon` shell command.
 *
 * Configuration (5.5.4): num_pages le32 at 0, actual le32 at 4,
 * free_page_hint_cmd_id le32 at 8, poison_val le32 at 12.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon.h"
#include "balloon_core.h"
#include "virtio.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/paging.h"
#include "kernel/addr.h"
#include "kernel/clock.h"
#include "kernel/cmdline.h"
#include "kernel/event.h"
#include "kernel/mm.h"
#include "kernel/pagecache.h"
#include "kernel/shell.h"
#include "kernel/vm.h"
#include "kernel/work.h"

CMDLINE_OPTION(balloon_batch, "balloon.batch", "pages per inflate/deflate buffer (default 32768; 256 for strict devices)");
CMDLINE_OPTION(balloon_inflight, "balloon.inflight", "inflate/deflate buffers in flight, 1-4 (default 2)");
CMDLINE_OPTION(balloon_report_delay, "balloon.report_delay_ms", "delay before free 2 MiB blocks are reported (default 100)");
CMDLINE_OPTION(balloon_no_stats, "balloon.no_stats", "do not negotiate STATS_VQ");
CMDLINE_OPTION(balloon_no_reporting, "balloon.no_reporting", "do not negotiate REPORTING");
CMDLINE_OPTION(balloon_no_oom, "balloon.no_oom", "do not negotiate DEFLATE_ON_OOM");
CMDLINE_OPTION(balloon_hint, "balloon.hint",
	       "negotiate FREE_PAGE_HINT (off by default: under TCG QEMU aborts on hints over INTx, 7.2 always; works on 10.0 over MSI-X; docs/findings.md)");

static struct balloon B;
static struct virtio_dev *dev;
static struct work step_work;
static struct timer timers[BALLOON_NT];

/* ---------------------------------------------------------------- ops */

/* A run is one buddy block: inside one 2 MiB block, or whole aligned 2 MiB
 * blocks, so paging changes all of it or (on -ENOMEM) none of it. */
static int op_unmap(void *ctx, uint64_t pfn, unsigned order)
{
	(void)ctx;
	return paging_unmap_range(pfn << PAGE_SHIFT, PAGE_SIZE << order);
}

static int op_map(void *ctx, uint64_t pfn, unsigned order)
{
	(void)ctx;
	return paging_map_range(pfn << PAGE_SHIFT, PAGE_SIZE << order);
}

static void op_notify(void *ctx, uint16_t queue)
{
	(void)ctx;
	virtio_notify(dev, queue);
}

static int op_config_write32(void *ctx, uint32_t off, uint32_t val)
{
	(void)ctx;
	return virtio_config_write32(dev, off, val);
}

static void op_queue_work(void *ctx)
{
	(void)ctx;
	work_queue(&step_work);
}

static void op_timer_arm(void *ctx, enum balloon_timer t, uint64_t delay_ns)
{
	(void)ctx;
	timer_arm(&timers[t], delay_ns);
}

static void op_timer_cancel(void *ctx, enum balloon_timer t)
{
	(void)ctx;
	timer_cancel(&timers[t]);
}

static uint64_t op_now_ns(void *ctx)
{
	(void)ctx;
	return clock_ns();
}

static void op_relax(void *ctx)
{
	(void)ctx;
	cpu_relax();
}

static bool op_device_failed(void *ctx)
{
	(void)ctx;
	return dev->failed;
}

static void *op_dma_alloc(void *ctx, size_t bytes)
{
	(void)ctx;
	return mm_alloc_dma(bytes);
}

static void op_log(void *ctx, const char *line)
{
	(void)ctx;
	printf("%s\n", line);
}

static void op_event(void *ctx, const char *name, const char *fields)
{
	(void)ctx;
	if (fields)
		event_emit(name, "%s", fields);
	else
		event_emit(name, NULL);
}

/* The balloon's pressure goes into the guest's reclaim (kernel/vm.h). */
static uint64_t op_reclaim(void *ctx, uint64_t frames)
{
	(void)ctx;
	return vm_reclaim(frames, VM_RECLAIM_BALLOON);
}

static void op_vm_counters(void *ctx, struct balloon_vm_counters *c)
{
	(void)ctx;
	struct vm_stats v;
	vm_get_stats(&v);
	c->swap_in_bytes = v.swap_in << PAGE_SHIFT;
	c->swap_out_bytes = v.swap_out << PAGE_SHIFT;
	c->major_faults = v.majflt;
	c->minor_faults = v.minflt;
	c->cache_bytes = pagecache_pages() << PAGE_SHIFT;
	struct vm_avail av;
	vm_avail(&av);
	c->avail_bytes = av.avail << PAGE_SHIFT;
	c->has_avail = true;
}

static bool op_working_set(void *ctx, struct balloon_ws *w)
{
	(void)ctx;
	struct vm_avail av;
	vm_avail(&av);
	*w = (struct balloon_ws){ .ws = av.ws, .margin = av.margin, .avail = av.avail };
	return av.ws > 0;
}

static const struct balloon_ops kernel_ops = {
	.unmap = op_unmap, .map = op_map, .notify = op_notify, .config_write32 = op_config_write32,
	.queue_work = op_queue_work, .timer_arm = op_timer_arm, .timer_cancel = op_timer_cancel,
	.now_ns = op_now_ns, .relax = op_relax, .device_failed = op_device_failed,
	.dma_alloc = op_dma_alloc, .log = op_log, .event = op_event,
	.reclaim = op_reclaim, .vm_counters = op_vm_counters, .working_set = op_working_set,
};

/* ---------------------------------------------------------------- callbacks */

static void step_fn(struct work *w)
{
	(void)w;
	balloon_step(&B);
}

static void timer_fn(struct timer *t)
{
	balloon_timer_fired(&B, (enum balloon_timer)(t - timers));
}

static void config_changed(struct virtio_dev *vd)
{
	/* num_pages and actual; the hint command id when hinting (the
	 * configuration may be shorter without it). */
	uint8_t cfg[12];
	uint32_t len = B.has_hint ? 12 : 8;
	if (virtio_config_read(vd, 0, cfg, len) < 0)
		return;
	balloon_config_changed(&B, cfg, len);
	static const char *const modes[] = { "none", "intx", "msix", "poll" };
	event_emit("balloon_target", "\"num_pages\":%u,\"held\":%u,\"irq\":\"%s\",\"config_irqs\":%lu",
		   B.num_pages, B.held, modes[vd->irq_mode], (unsigned long)vd->config_irqs);
}

static void queue_ready(struct virtio_dev *vd)
{
	(void)vd;
	balloon_queue_ready(&B);
}

/* ---------------------------------------------------------------- init */

CMDLINE_OPTION(balloon_reclaim, "balloon.reclaim",
	       "off: an inflate at the reserve floor stalls instead of making the guest reclaim (to compare)");

CMDLINE_OPTION(balloon_ws_guard, "balloon.ws_guard",
	       "off: an inflate may take the workloads' working sets (they thrash); on (default): it stops there");

static bool option_off(const char *key)
{
	const char *v = cmdline_get(key);
	return v && strcmp(v, "off") == 0;
}

void balloon_init(void)
{
	dev = virtio_find(VIRTIO_ID_BALLOON);
	if (!dev)
		return;
	struct balloon_params p = {
		.batch_pages = (uint32_t)cmdline_get_u64("balloon.batch", BALLOON_DEFAULT_BATCH),
		.inflight = (uint32_t)cmdline_get_u64("balloon.inflight", 2),
		.report_delay_ms = cmdline_get_u64("balloon.report_delay_ms", 100),
		.stats = !cmdline_has("balloon.no_stats"),
		.reporting = !cmdline_has("balloon.no_reporting"),
		.oom = !cmdline_has("balloon.no_oom"),
		.hint = cmdline_has("balloon.hint"),
		.reclaim = !option_off("balloon.reclaim"),
		.ws_guard = !option_off("balloon.ws_guard"),
		.poison = mm_poison_value(),
	};
	static const char *const names[VIRTIO_DEVICE_FEATURE_BITS] = { "MUST_TELL_HOST/0", "STATS_VQ/1",
		"DEFLATE_ON_OOM/2", "FREE_PAGE_HINT/3", "PAGE_POISON/4", "REPORTING/5" };
	dev->feature_names = names; /* for the shell's `virtio` */
	if (virtio_start(dev, balloon_wanted_features(&p)) < 0)
		return;
	int nq = balloon_core_init(&B, &kernel_pfa, &kernel_ops, NULL, &p, dev->features);
	if (nq < 0) {
		printf("balloon: no memory for its buffers; device not used\n");
		return;
	}
	step_work.fn = step_fn;
	for (int t = 0; t < BALLOON_NT; t++)
		timers[t].fn = timer_fn;
	for (uint16_t i = 0; i < nq; i++)
		if (virtio_setup_queue(dev, i, 128) < 0) {
			printf("balloon: queue %u could not be set up; device not used\n", i);
			return;
		}
	dev->driver = &B;
	virtio_ready(dev, config_changed, queue_ready);
	balloon_core_start(&B, dev->queues);
	config_changed(dev); /* a target set before we were ready */
}

/* ---------------------------------------------------------------- shell */

static int cmd_balloon(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct balloon *b = &B;
	if (!dev || dev->driver != b) {
		printf("no balloon device\n");
		return -ENODEV;
	}
	printf("target %u pages (%u MiB), holding %u (%u MiB)%s%s\n", b->target, b->target >> 8, b->held,
	       b->held >> 8, b->stalled ? ", stalled" : "", b->oom_hold ? ", held back after an OOM deflate" : "");
	printf("features: stats %s, reporting %s, deflate-on-oom %s, free-page-hint %s, must-tell-host %s\n",
	       b->has_stats ? "on" : "off", b->has_report ? "on" : "off", b->has_oom ? "on" : "off",
	       b->has_hint ? "on" : "off",
	       virtio_has(dev, VIRTIO_BALLOON_F_MUST_TELL_HOST) ? "on" : "off (told anyway)");
	printf("batch %u pages, %u in flight; inflations %lu (%lu pages), deflations %lu (%lu pages), "
	       "allocation stalls %lu\n", b->p.batch_pages, b->p.inflight, (unsigned long)b->inflations,
	       (unsigned long)b->pages_in, (unsigned long)b->deflations, (unsigned long)b->pages_out,
	       (unsigned long)b->alloc_failures);
	printf("free page hints %lu (%lu pages)%s\n", (unsigned long)b->hints, (unsigned long)b->hinted_pages,
	       b->hint_n ? ", blocks held until the host is done" : "");
	printf("reclaim for inflates %s: %lu calls, %lu frames freed; working-set guard %s: %lu stops\n",
	       b->p.reclaim ? "on" : "off", (unsigned long)b->reclaim_calls, (unsigned long)b->reclaimed,
	       b->p.ws_guard ? "on" : "off", (unsigned long)b->ws_stalls);
	printf("reports %lu (%lu pages), OOM deflates %lu (%lu pages), stats requests %lu, time in steps %lu ms\n",
	       (unsigned long)b->reports, (unsigned long)b->reported_pages, (unsigned long)b->oom_deflates,
	       (unsigned long)b->oom_pages, (unsigned long)b->stats_requests, (unsigned long)(b->step_ns / 1000000));
	char why[160];
	int ok = balloon_check(b, why, sizeof(why));
	printf("refusals %lu; check: %s\n", (unsigned long)b->refusals, ok == 0 ? "ok" : why);
	event_emit("balloon", "\"target\":%u,\"held\":%u,\"stalled\":%d,\"features\":%lu,\"inflations\":%lu,"
		   "\"deflations\":%lu,\"pages_in\":%lu,\"pages_out\":%lu,\"alloc_failures\":%lu,\"reports\":%lu,"
		   "\"reported_pages\":%lu,\"oom_deflates\":%lu,\"oom_pages\":%lu,\"stats_requests\":%lu,"
		   "\"free\":%lu,\"managed\":%lu,\"huge_allocs\":%lu,\"huge_failures\":%lu,\"refusals\":%lu,"
		   "\"reclaim_calls\":%lu,\"reclaimed\":%lu,\"ws_guard\":%s,\"ws_stalls\":%lu,\"check\":\"%s\"",
		   b->target, b->held, b->stalled, (unsigned long)dev->features, (unsigned long)b->inflations,
		   (unsigned long)b->deflations, (unsigned long)b->pages_in, (unsigned long)b->pages_out,
		   (unsigned long)b->alloc_failures, (unsigned long)b->reports, (unsigned long)b->reported_pages,
		   (unsigned long)b->oom_deflates, (unsigned long)b->oom_pages, (unsigned long)b->stats_requests,
		   (unsigned long)kernel_pfa.st.free, (unsigned long)kernel_pfa.st.managed,
		   (unsigned long)kernel_pfa.st.huge_allocs, (unsigned long)kernel_pfa.st.huge_failures,
		   (unsigned long)b->refusals, (unsigned long)b->reclaim_calls, (unsigned long)b->reclaimed,
		   b->p.ws_guard ? "true" : "false", (unsigned long)b->ws_stalls, ok == 0 ? "ok" : "failed");
	return 0;
}
SHELL_COMMAND(balloon, "", "balloon state, features and counters", cmd_balloon);
