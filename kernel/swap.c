/*
 * swap: the swap area's I/O (see swap.h), and the `swap` shell command.
 *
 * Pages of a run are gathered into one bounce buffer so the run goes to the
 * device as one write: blk splits it into requests of its max_sectors and
 * keeps BLK_MAX_INFLIGHT of them in flight. 64 pages are 256 KiB, one
 * swap_slots cluster.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "swap.h"
#include "addr.h"
#include "clock.h"
#include "cmdline.h"
#include "event.h"
#include "parse.h"
#include "shell.h"
#include "drivers/virtio/blk.h"

#define SECTORS_PER_SLOT (PAGE_SIZE / 512)

CMDLINE_OPTION(vm_swap, "vm.swap", "use virtio-blk device N as swap from boot (like `swap on N`)");

static struct swap_slots slots;
static struct swap_stats st = { .dev = -1 };
static uint8_t *bounce; /* SWAP_SLOTS_RUN_MAX pages */

int swap_on(unsigned dev)
{
	if (st.dev >= 0)
		return -EBUSY;
	uint64_t cap = blk_capacity(dev);
	if (!cap)
		return -ENODEV;
	if (blk_read_only(dev))
		return -EROFS;
	uint64_t n = cap / SECTORS_PER_SLOT;
	if (n == 0)
		return -EINVAL;
	if (n > SWAP_SLOTS_LIMIT)
		n = SWAP_SLOTS_LIMIT;
	size_t meta = swap_slots_metadata_size(n);
	void *m = malloc(meta);
	uint8_t *buf = malloc(SWAP_SLOTS_RUN_MAX * PAGE_SIZE);
	if (!m || !buf || swap_slots_init(&slots, m, meta, n) < 0) {
		free(m);
		free(buf);
		return -ENOMEM;
	}
	bounce = buf;
	st.dev = (int)dev;
	event_emit("swap_on", "\"dev\":%u,\"slots\":%lu", dev, (unsigned long)n);
	return 0;
}

bool swap_active(void)
{
	return st.dev >= 0;
}

/* One line per I/O would flood the console in a swap storm: at most 4 a
 * second (with the totals, so nothing is hidden), errors on their own. */
static bool io_event(const char *op, uint64_t slot, uint64_t pages, uint64_t ns, int rc)
{
	static struct event_ratelimit ok_rl, err_rl;
	struct event_ratelimit *rl = rc < 0 ? &err_rl : &ok_rl;
	if (!event_ratelimit_ok(rl, clock_ms(), 4))
		return false;
	event_emit("swap_io", "\"op\":\"%s\",\"slot\":%lu,\"pages\":%lu,\"us\":%lu,\"rc\":%d,"
		   "\"pages_out\":%lu,\"pages_in\":%lu,\"suppressed\":%u", op, (unsigned long)slot,
		   (unsigned long)pages, (unsigned long)(ns / 1000), rc, (unsigned long)st.pages_out,
		   (unsigned long)st.pages_in, event_ratelimit_suppressed(rl));
	return true;
}

int swap_write(const uint64_t *pfns, unsigned n, uint64_t *first)
{
	if (st.dev < 0)
		return -ENODEV;
	if (n == 0 || n > SWAP_SLOTS_RUN_MAX)
		return -EINVAL;
	int64_t k = swap_slots_alloc(&slots, n, first);
	if (k < 0) {
		if (k == -ENOSPC)
			st.full++;
		return (int)k;
	}
	for (int64_t i = 0; i < k; i++)
		memcpy(bounce + i * PAGE_SIZE, phys_to_virt(pfns[i] << PAGE_SHIFT), PAGE_SIZE);
	uint64_t t0 = clock_ns();
	int rc = blk_write((unsigned)st.dev, *first * SECTORS_PER_SLOT, bounce,
			   (uint32_t)(k * SECTORS_PER_SLOT));
	uint64_t ns = clock_ns() - t0;
	st.write_ns += ns;
	st.writes++;
	if (rc >= 0)
		st.pages_out += (uint64_t)k;
	bool said = io_event("out", *first, (uint64_t)k, ns, rc);
	if (rc < 0) {
		st.write_errors++;
		if (said) /* a dying disk fails every write: as often as the event */
			printf("swap: writing slots %lu-%lu failed (%d); they are out of use, the pages stay in memory\n",
			       (unsigned long)*first, (unsigned long)(*first + k - 1), rc);
		swap_slots_mark_bad(&slots, *first, (uint64_t)k, __builtin_return_address(0));
		return -EIO;
	}
	swap_slots_written(&slots, *first, (uint64_t)k, __builtin_return_address(0));
	return (int)k;
}

int swap_read(uint64_t slot, uint64_t pfn)
{
	if (st.dev < 0)
		return -ENODEV;
	if (swap_slots_state(&slots, slot) != SWAP_SLOT_VALID)
		return -EFAULT;
	uint64_t t0 = clock_ns();
	int rc = blk_read((unsigned)st.dev, slot * SECTORS_PER_SLOT, phys_to_virt(pfn << PAGE_SHIFT),
			  SECTORS_PER_SLOT);
	uint64_t ns = clock_ns() - t0;
	st.read_ns += ns;
	st.reads++;
	if (rc >= 0)
		st.pages_in++;
	(void)io_event("in", slot, 1, ns, rc);
	if (rc < 0) {
		st.read_errors++;
		printf("swap: reading slot %lu failed (%d); it is out of use\n", (unsigned long)slot, rc);
		swap_slots_mark_bad(&slots, slot, 1, __builtin_return_address(0));
		return -EIO;
	}
	return 0;
}

int swap_read_run(uint64_t first, const uint64_t *pfns, unsigned n)
{
	if (st.dev < 0)
		return -ENODEV;
	if (n == 0 || n > SWAP_SLOTS_RUN_MAX)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (swap_slots_state(&slots, first + i) != SWAP_SLOT_VALID)
			return -EFAULT;
	uint64_t t0 = clock_ns();
	int rc = blk_read((unsigned)st.dev, first * SECTORS_PER_SLOT, bounce, n * SECTORS_PER_SLOT);
	uint64_t ns = clock_ns() - t0;
	st.read_ns += ns;
	st.reads++;
	(void)io_event("in", first, n, ns, rc);
	if (rc < 0)
		return -EIO; /* nothing marked: the caller reads its own page alone */
	for (unsigned i = 0; i < n; i++)
		memcpy(phys_to_virt(pfns[i] << PAGE_SHIFT), bounce + (uint64_t)i * PAGE_SIZE, PAGE_SIZE);
	st.pages_in += n;
	return 0;
}

void swap_free(uint64_t slot)
{
	if (st.dev >= 0 && swap_slots_state(&slots, slot) != SWAP_SLOT_BAD)
		swap_slots_free(&slots, slot, 1, __builtin_return_address(0));
}

bool swap_valid(uint64_t slot)
{
	return st.dev >= 0 && swap_slots_state(&slots, slot) == SWAP_SLOT_VALID;
}

void swap_get_stats(struct swap_stats *out)
{
	*out = st;
	if (st.dev >= 0)
		out->slots = slots.st;
	else
		memset(&out->slots, 0, sizeof(out->slots));
}

/* vm.swap=N: called once the block devices are up. */
void swap_boot(void)
{
	const char *v = cmdline_get("vm.swap");
	uint64_t dev;
	if (!v)
		return;
	int rc = parse_u64_max(v, BLK_MAX_DEVS - 1, &dev) < 0 ? -EINVAL : swap_on((unsigned)dev);
	if (rc < 0)
		printf("swap: vm.swap=%s: cannot use it (%d)\n", v, rc);
}

static void swap_print(void)
{
	struct swap_stats s;
	swap_get_stats(&s);
	if (s.dev < 0) {
		printf("swap: off (swap on DEV, or vm.swap=DEV at boot)\n");
	} else {
		printf("swap: blk%d, %lu slots: %lu used (%lu with a good copy), %lu free, %lu bad\n", s.dev,
		       (unsigned long)s.slots.total, (unsigned long)s.slots.used, (unsigned long)s.slots.valid,
		       (unsigned long)s.slots.free, (unsigned long)s.slots.bad);
		printf("      out %lu pages in %lu writes (%lu ms), in %lu pages (%lu ms), errors %lu/%lu, full %lu\n",
		       (unsigned long)s.pages_out, (unsigned long)s.writes, (unsigned long)(s.write_ns / 1000000),
		       (unsigned long)s.pages_in, (unsigned long)(s.read_ns / 1000000),
		       (unsigned long)s.write_errors, (unsigned long)s.read_errors, (unsigned long)s.full);
	}
	event_emit("swap", "\"dev\":%d,\"slots\":%lu,\"used\":%lu,\"valid\":%lu,\"bad\":%lu,\"pages_out\":%lu,"
		   "\"pages_in\":%lu,\"writes\":%lu,\"reads\":%lu,\"write_errors\":%lu,\"read_errors\":%lu,"
		   "\"full\":%lu,\"write_ms\":%lu,\"read_ms\":%lu",
		   s.dev, (unsigned long)s.slots.total, (unsigned long)s.slots.used, (unsigned long)s.slots.valid,
		   (unsigned long)s.slots.bad, (unsigned long)s.pages_out, (unsigned long)s.pages_in,
		   (unsigned long)s.writes, (unsigned long)s.reads, (unsigned long)s.write_errors,
		   (unsigned long)s.read_errors, (unsigned long)s.full, (unsigned long)(s.write_ns / 1000000),
		   (unsigned long)(s.read_ns / 1000000));
}

static int cmd_swap(int argc, char **argv)
{
	if (argc == 1) {
		swap_print();
		return 0;
	}
	uint64_t dev;
	if (argc == 3 && strcmp(argv[1], "on") == 0 && parse_u64_max(argv[2], BLK_MAX_DEVS - 1, &dev) == 0) {
		int rc = swap_on((unsigned)dev);
		if (rc < 0)
			printf("swap on %lu: %s (%d)\n", (unsigned long)dev,
			       rc == -EBUSY ? "swap is already on" : rc == -ENODEV ? "no such block device" :
			       rc == -EINVAL ? "smaller than one page" : rc == -EROFS ? "the device is read-only" : "no memory for its slot map", rc);
		else
			swap_print();
		return rc;
	}
	printf("usage: swap | swap on DEV\n");
	return -EINVAL;
}
SHELL_COMMAND(swap, "[on DEV]", "the swap area: slots, pages in and out, errors", cmd_swap);
