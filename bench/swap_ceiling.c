/*
 * swap_ceiling: the fastest the host can write and read a swap image, the
 * ceiling a guest's swap-out and swap-in will be measured against.
 *
 * A guest's swap device is an image file on the host; opened with
 * cache=none, QEMU reaches it with O_DIRECT requests. This program makes
 * such requests to an image of its own: sequential O_DIRECT writes and
 * reads from 4 KiB-aligned buffers, one request at a time (queue depth 1),
 * of 4 KiB (a page swapped alone) and 256 KiB (a cluster of 64 pages).
 * The image is filled once first, untimed, so the timed writes overwrite
 * allocated blocks as a swap device would; each write pass ends with
 * fdatasync, inside the timing. Reads may
 * be helped by caches below the file system (the host's disk, if it is a
 * VM's): that is part of what this host can do.
 *
 * The image is unlinked as soon as it is open, so it never outlives the
 * program, even killed.
 *
 * Usage: swap_ceiling PATH [MiB] [runs]   (default 256 MiB, 5 runs)
 * Prints one JSON object per line:
 *   {"what":"write_4k","request_kib":4,"mib":256,"mib_per_s":[runs...]}
 * Exit status 3 if the file system refuses O_DIRECT (say so, measure nothing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 4096
#define CLUSTER (256u << 10)
#define MAX_RUNS 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* One sequential pass over `bytes` in requests of `req`: MiB/s. */
static double pass(int fd, uint8_t *buf, size_t bytes, size_t req, int write)
{
	double t0 = now();
	for (size_t off = 0; off < bytes; off += req) {
		ssize_t n = write ? pwrite(fd, buf, req, (off_t)off) : pread(fd, buf, req, (off_t)off);
		if (n != (ssize_t)req)
			die(write ? "pwrite" : "pread");
	}
	if (write && fdatasync(fd) != 0)
		die("fdatasync");
	return (double)(bytes >> 20) / (now() - t0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: swap_ceiling PATH [MiB > 0] [runs 1..%d]\n", MAX_RUNS);
		return 2;
	}
	const char *path = argv[1];
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 0) : 256;
	int runs = argc > 3 ? atoi(argv[3]) : 5;
	if (mib == 0 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "usage: swap_ceiling PATH [MiB > 0] [runs 1..%d]\n", MAX_RUNS);
		return 2;
	}
	size_t bytes = mib << 20;

	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0600);
	if (fd < 0 && errno == EINVAL) {
		fprintf(stderr, "swap_ceiling: %s: the file system refuses O_DIRECT\n", path);
		return 3;
	}
	if (fd < 0)
		die(path);
	if (unlink(path) != 0)
		die("unlink");

	uint8_t *buf;
	if (posix_memalign((void **)&buf, ALIGN, CLUSTER) != 0)
		die("posix_memalign");
	/* Not zeros: no layer below may shortcut them. */
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < CLUSTER; i += 8) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	pass(fd, buf, bytes, CLUSTER, 1); /* allocate the image, untimed */

	static const struct {
		const char *name;
		size_t req;
		int write;
	} kinds[] = {
		{ "write_4k", 4096, 1 }, { "read_4k", 4096, 0 },
		{ "write_256k", CLUSTER, 1 }, { "read_256k", CLUSTER, 0 },
	};
	enum { KINDS = sizeof(kinds) / sizeof(kinds[0]) };
	double v[KINDS][MAX_RUNS];
	/* Alternate the measurements run by run, so a slow phase of the host
	 * (it is a VM itself) hits all of them alike. */
	for (int r = 0; r < runs; r++)
		for (int k = 0; k < KINDS; k++)
			v[k][r] = pass(fd, buf, bytes, kinds[k].req, kinds[k].write);
	close(fd);
	free(buf);

	for (int k = 0; k < KINDS; k++) {
		printf("{\"what\":\"%s\",\"request_kib\":%zu,\"mib\":%zu,\"mib_per_s\":[", kinds[k].name,
		       kinds[k].req >> 10, mib);
		for (int r = 0; r < runs; r++)
			printf("%s%.1f", r ? "," : "", v[k][r]);
		printf("]}\n");
	}
	return 0;
}
