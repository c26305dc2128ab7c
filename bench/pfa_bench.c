/*
 * pfa_bench: how fast the page-frame allocator is, on the host build of the
 * same kernel/pfa.c, over 8 GiB of frames.
 *
 * Prints one JSON object per line (ops per second for 4 KiB and 2 MiB
 * alloc+free pairs and for the balloon's batch path, and the metadata cost),
 * each the median of 5 runs with min and max.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kernel/pfa.h"

#define FRAMES (8ULL << 30 >> 12)
#define RUNS 5

static struct pfa A;
static struct pfa_run runs[FRAMES >> 9];
static int64_t held[1 << 20];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Allocate n blocks of `order`, free them all: alloc+free pairs per second. */
static double pairs_per_second(unsigned order, int n)
{
	double t0 = now();
	for (int i = 0; i < n; i++)
		held[i] = pfa_alloc_block(&A, order);
	for (int i = n - 1; i >= 0; i--)
		pfa_free_block(&A, (uint64_t)held[i], order, NULL);
	return n / (now() - t0);
}

/* Balloon 6 GiB out and back: frames per second through the batch path. */
static double balloon_frames_per_second(void)
{
	size_t n;
	double t0 = now();
	uint64_t got = pfa_balloon_take(&A, 6ULL << 30 >> 12, runs, sizeof(runs) / sizeof(runs[0]), &n);
	for (size_t i = 0; i < n; i++)
		pfa_balloon_return(&A, runs[i].pfn, runs[i].order, NULL);
	return got / (now() - t0);
}

static void report(const char *what, const char *unit, double (*fn)(unsigned, int), unsigned order, int n)
{
	double v[RUNS];
	for (int r = 0; r < RUNS; r++)
		v[r] = fn ? fn(order, n) : balloon_frames_per_second();
	qsort(v, RUNS, sizeof(v[0]), cmp);
	printf("{\"what\":\"%s\",\"unit\":\"%s\",\"median\":%.0f,\"min\":%.0f,\"max\":%.0f}\n", what, unit,
	       v[RUNS / 2], v[0], v[RUNS - 1]);
}

int main(void)
{
	size_t meta = pfa_metadata_size(FRAMES);
	if (pfa_init(&A, malloc(meta), meta, FRAMES) < 0 || pfa_add_free_range(&A, 256, FRAMES - 256) < 0) {
		fprintf(stderr, "pfa_bench: setup failed\n");
		return 1;
	}
	report("alloc_free_4k", "pairs/s", pairs_per_second, 0, 1 << 20);
	report("alloc_free_2m", "pairs/s", pairs_per_second, PFA_HUGE_ORDER, 2048);
	report("balloon_take_return_6g", "frames/s", NULL, 0, 0);
	printf("{\"what\":\"metadata\",\"bytes\":%zu,\"bytes_per_frame\":%.3f,\"percent_of_ram\":%.4f}\n",
	       meta, (double)meta / FRAMES, 100.0 * meta / (FRAMES * 4096.0));
	return 0;
}
