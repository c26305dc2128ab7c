/*
 * host_limit: what the host can do at best, the ceiling each balloon figure
 * is measured against.
 *
 * QEMU discards an inflated frame with one madvise(MADV_DONTNEED) per 4 KiB
 * page, a reported free range with one call per 2 MiB, and prepares a
 * deflated frame with one madvise(MADV_WILLNEED) per 4 KiB page. This program
 * does exactly that to anonymous memory of its own, so the figures are the
 * fastest any guest could go on this host, with QEMU's own costs left out.
 *
 * Usage: host_limit [MiB] [runs]   (default 1536 MiB, 5 runs)
 * Prints one JSON object per line: {"what":..., "mib_per_s": [runs...]}.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096UL
#define HUGE (2UL << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Anonymous memory like QEMU's guest RAM: 2 MiB aligned, THP allowed. */
static uint8_t *map_region(size_t bytes)
{
	size_t len = bytes + HUGE;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	uint8_t *aligned = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(HUGE - 1));
	madvise(aligned, bytes, MADV_HUGEPAGE);
	return aligned;
}

static void touch(uint8_t *p, size_t bytes)
{
	for (size_t off = 0; off < bytes; off += PAGE)
		p[off] = 1;
}

static double advise(uint8_t *p, size_t bytes, size_t step, int advice)
{
	double t0 = now();
	for (size_t off = 0; off < bytes; off += step)
		if (madvise(p + off, step, advice) != 0) {
			perror("madvise");
			exit(1);
		}
	return (bytes >> 20) / (now() - t0);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 1536;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	size_t bytes = mib << 20;
	double dontneed_4k[64], dontneed_2m[64], willneed_4k[64];

	if (mib == 0 || runs < 1 || runs > 64) {
		fprintf(stderr, "usage: host_limit [MiB > 0] [runs 1..64]\n");
		return 2;
	}
	uint8_t *p = map_region(bytes);
	/* Alternate the three measurements run by run, so a slow phase of the
	 * host (it is a VM itself) hits all of them alike. */
	for (int r = 0; r < runs; r++) {
		touch(p, bytes);
		dontneed_4k[r] = advise(p, bytes, PAGE, MADV_DONTNEED);
		willneed_4k[r] = advise(p, bytes, PAGE, MADV_WILLNEED); /* over non-present memory */
		touch(p, bytes);
		dontneed_2m[r] = advise(p, bytes, HUGE, MADV_DONTNEED);
	}
	const char *names[3] = { "dontneed_4k_touched", "dontneed_2m_touched", "willneed_4k_absent" };
	double *vals[3] = { dontneed_4k, dontneed_2m, willneed_4k };
	for (int i = 0; i < 3; i++) {
		printf("{\"what\":\"%s\",\"mib\":%zu,\"mib_per_s\":[", names[i], mib);
		for (int r = 0; r < runs; r++)
			printf("%s%.0f", r ? "," : "", vals[i][r]);
		printf("]}\n");
	}
	return 0;
}
