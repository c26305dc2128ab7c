/*
 * pressmem: the memory workload of the balloon squeeze (issue 14).
 *
 * The squeeze asks what a guest's workload feels while the host takes memory
 * back from under it: the balloon inflates below what the workload uses, so
 * the guest must swap (or fail). To compare Linux and blimp, both run this
 * same workload, access for access; blimp has its own implementation of the
 * definition below, so the definition is the contract -- change it in both.
 *
 *     pressmem SIZE_MIB HOT_MIB HOT_PCT WRITE_PCT SECONDS SEED
 *     e.g. pressmem 384 64 90 30 60 1
 *
 * Definition:
 *   - One anonymous mapping of SIZE_MIB MiB; its 4 KiB pages are numbered
 *     0..N-1. The hot set is pages 0..H-1 (H = HOT_MIB MiB of pages), the
 *     cold set H..N-1. Needs 0 < HOT_MIB < SIZE_MIB.
 *   - Random numbers: xorshift64* whose state starts as SEED (SEED != 0):
 *       x ^= x >> 12; x ^= x << 25; x ^= x >> 27; r = x * 0x2545F4914F6CDD1D.
 *   - An access draws three numbers, in this order, always all three:
 *       hot  = r1 % 100 < HOT_PCT;
 *       page = hot ? r2 % H : H + r2 % (N - H);
 *       write = r3 % 100 < WRITE_PCT.
 *     It reads the 8 words (uint64_t at byte offsets i*512 of the page,
 *     i = 0..7) and checks each against pattern(page, v[page], i), where v[]
 *     is the pages' versions, kept outside the mapping (0: never written, the
 *     word must read 0). A write access then does v[page]++ and stores the 8
 *     words pattern(page, v[page], i).
 *       pattern(p, v, i) = splitmix64(SEED ^ (p << 32) ^ ((uint64_t)v << 3) ^ i)
 *       splitmix64(z): z += 0x9E3779B97F4A7C15;
 *                      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
 *                      z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *                      return z ^ (z >> 31).
 *   - First every page, in order 0..N-1, gets one write access (check, then
 *     write): after it every page exists. This uses no random numbers and is
 *     not counted in "accesses".
 *   - Then accesses run for SECONDS seconds of CLOCK_MONOTONIC, with one line
 *     per elapsed second, `pressmem t=S accesses=A` (A counted from the start
 *     of this phase), and at the end one JSON line:
 *       {"pressmem":{"accesses":A,"seconds":S,"errors":E,"majflt":M,"minflt":m,
 *                    "touch_ms":T,"size_mib":..,"hot_mib":..}}
 *     majflt/minflt are this process's faults during the timed phase
 *     (getrusage), touch_ms the time of the first pass.
 *   - A word that differs is an error: counted, and the first 20 printed as
 *     `pressmem: error page P word I version V expected X found Y`.
 *
 * Exit status 0 when there was no error, 1 when there were errors or the
 * memory could not be had, 2 for bad arguments.
 *
 * Built on the host with `gcc -static -O2` by build_guest.py, like touchmem.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#define PAGE_BYTES 4096UL
#define PAGES_PER_MIB 256UL
#define WORDS 8
#define WORD_STRIDE 512          /* bytes between checked words: 8 per page */
#define ERRORS_SHOWN 20
#define CLOCK_EVERY 256          /* accesses between clock reads */

static uint64_t rng_state;
static uint64_t seed;
static unsigned char *region;
static uint32_t *version;
static uint64_t errors;

static uint64_t xorshift64star(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t pattern(uint64_t page, uint32_t v, unsigned i)
{
    return splitmix64(seed ^ (page << 32) ^ ((uint64_t)v << 3) ^ i);
}

static void access_page(uint64_t page, int write)
{
    volatile uint64_t *base = (volatile uint64_t *)(region + page * PAGE_BYTES);
    uint32_t v = version[page];
    for (unsigned i = 0; i < WORDS; i++) {
        uint64_t want = v == 0 ? 0 : pattern(page, v, i);
        uint64_t found = base[i * (WORD_STRIDE / sizeof(uint64_t))];
        if (found != want) {
            if (errors < ERRORS_SHOWN)
                printf("pressmem: error page %" PRIu64 " word %u version %" PRIu32
                       " expected 0x%016" PRIx64 " found 0x%016" PRIx64 "\n",
                       page, i, v, want, found);
            errors++;
        }
    }
    if (write) {
        v = ++version[page];
        for (unsigned i = 0; i < WORDS; i++)
            base[i * (WORD_STRIDE / sizeof(uint64_t))] = pattern(page, v, i);
    }
}

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* A whole number in [min, max] from argv, or -1 with a message. */
static long long parse(const char *name, const char *text, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "pressmem: %s '%s' is not a whole number in %lld..%lld\n",
                name, text, min, max);
        return -1;
    }
    return value;
}

static void faults(long *majflt, long *minflt)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    *majflt = usage.ru_majflt;
    *minflt = usage.ru_minflt;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: pressmem SIZE_MIB HOT_MIB HOT_PCT WRITE_PCT SECONDS SEED\n");
        return 2;
    }
    long long size_mib = parse("SIZE_MIB", argv[1], 2, 1LL << 20);
    long long hot_mib = parse("HOT_MIB", argv[2], 1, 1LL << 20);
    long long hot_pct = parse("HOT_PCT", argv[3], 0, 100);
    long long write_pct = parse("WRITE_PCT", argv[4], 0, 100);
    long long seconds = parse("SECONDS", argv[5], 1, 1LL << 30);
    if (size_mib < 0 || hot_mib < 0 || hot_pct < 0 || write_pct < 0 || seconds < 0)
        return 2;
    if (hot_mib >= size_mib) {
        fprintf(stderr, "pressmem: HOT_MIB (%lld) must be below SIZE_MIB (%lld)\n",
                hot_mib, size_mib);
        return 2;
    }
    errno = 0;
    unsigned long long seed_arg = strtoull(argv[6], NULL, 0);
    if (errno != 0 || seed_arg == 0) {
        fprintf(stderr, "pressmem: SEED '%s' must be a non-zero number\n", argv[6]);
        return 2;
    }
    seed = rng_state = seed_arg;
    setvbuf(stdout, NULL, _IOLBF, 0);    /* each line whole, as it happens */

    uint64_t pages = (uint64_t)size_mib * PAGES_PER_MIB;
    uint64_t hot = (uint64_t)hot_mib * PAGES_PER_MIB;
    uint64_t cold = pages - hot;
    region = mmap(NULL, pages * PAGE_BYTES, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    version = calloc(pages, sizeof(*version));
    if (region == MAP_FAILED || version == NULL) {
        fprintf(stderr, "pressmem: cannot have %lld MiB: %s\n", size_mib, strerror(errno));
        return 1;
    }

    double touch_start = seconds_now();
    for (uint64_t page = 0; page < pages; page++)
        access_page(page, 1);
    double start = seconds_now();
    printf("pressmem: touched %lld MiB in %.0f ms, hot %lld MiB, %lld %% hot, %lld %% writes, "
           "%lld s\n", size_mib, (start - touch_start) * 1000.0, hot_mib, hot_pct, write_pct,
           seconds);

    long majflt0, minflt0, majflt1, minflt1;
    faults(&majflt0, &minflt0);
    uint64_t accesses = 0;
    long long next_second = 1;
    double elapsed = 0;
    for (;;) {
        for (unsigned n = 0; n < CLOCK_EVERY; n++) {
            int is_hot = xorshift64star() % 100 < (uint64_t)hot_pct;
            uint64_t r = xorshift64star();
            uint64_t page = is_hot ? r % hot : hot + r % cold;
            int write = xorshift64star() % 100 < (uint64_t)write_pct;
            access_page(page, write);
        }
        accesses += CLOCK_EVERY;
        elapsed = seconds_now() - start;
        while (elapsed >= (double)next_second && next_second <= seconds) {
            printf("pressmem t=%lld accesses=%" PRIu64 "\n", next_second, accesses);
            next_second++;
        }
        if (elapsed >= (double)seconds)
            break;
    }
    faults(&majflt1, &minflt1);
    printf("{\"pressmem\":{\"accesses\":%" PRIu64 ",\"seconds\":%.3f,\"errors\":%" PRIu64
           ",\"majflt\":%ld,\"minflt\":%ld,\"touch_ms\":%.0f,\"size_mib\":%lld,\"hot_mib\":%lld}}\n",
           accesses, elapsed, errors, majflt1 - majflt0, minflt1 - minflt0,
           (start - touch_start) * 1000.0, size_mib, hot_mib);
    return errors == 0 ? 0 : 1;
}
