/*
 * touchmem: the Linux reference guest's way to make the host back memory.
 *
 * The benchmark (make bench) compares blimp's balloon with Linux's on the
 * same QEMU. Both guests must first really use memory, so that QEMU's
 * resident set grows and the balloon has something to hand back. blimp does
 * that with its shell's `alloc`; in the Linux guest, init.sh runs this
 * program for the host's `touch N` command.
 *
 *     touchmem MIB
 *
 * maps MIB MiB of anonymous memory, writes one non-zero byte into every
 * 4 KiB page (so every page is faulted in and backed by the host), unmaps
 * it and exits 0. Any failure is one line on stderr and a non-zero exit:
 * 2 for a bad argument, 1 when the memory cannot be had.
 *
 * Built on the host with `gcc -static -O2` by build_guest.py: the guest's
 * initramfs has no C library, only busybox.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_BYTES 4096UL
#define MIB_BYTES (1UL << 20)

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* The MiB count from argv, or -1 with a message if it is not a positive integer. */
static long parse_mib(const char *text)
{
    char *end = NULL;
    errno = 0;
    long mib = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || mib <= 0) {
        fprintf(stderr, "touchmem: '%s' is not a positive number of MiB\n", text);
        return -1;
    }
    if ((unsigned long)mib > (~0UL / MIB_BYTES)) {
        fprintf(stderr, "touchmem: %ld MiB is too large\n", mib);
        return -1;
    }
    return mib;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: touchmem MIB   (map MIB MiB, write every 4 KiB page, unmap)\n");
        return 2;
    }
    long mib = parse_mib(argv[1]);
    if (mib < 0)
        return 2;

    size_t bytes = (size_t)mib * MIB_BYTES;
    double start = seconds_now();
    unsigned char *region = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        fprintf(stderr, "touchmem: cannot map %ld MiB: %s\n", mib, strerror(errno));
        return 1;
    }
    /* A non-zero byte per page: a zero write could in principle be kept as
     * the shared zero page by some future kernel; this one cannot. Under
     * memory pressure the kernel's OOM killer, not this loop, ends us. */
    for (size_t offset = 0; offset < bytes; offset += PAGE_BYTES)
        region[offset] = (unsigned char)(1 + (offset / PAGE_BYTES) % 255);

    if (munmap(region, bytes) != 0) {
        fprintf(stderr, "touchmem: cannot unmap %ld MiB: %s\n", mib, strerror(errno));
        return 1;
    }
    printf("touchmem: touched and freed %ld MiB in %.0f ms\n", mib,
           (seconds_now() - start) * 1000.0);
    return 0;
}
