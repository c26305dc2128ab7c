/*
 * fuzz_util: what every host harness shares — reading the fuzzer's bytes as
 * a program, failing with a message, and keeping the kernel's console quiet.
 *
 * A harness reads its input front to back (fh_u8, fh_u16, ...); past the end
 * every read returns 0, so any input is a complete program. An invariant
 * that does not hold stops the run with fh_fail("what was expected, what was
 * seen"), which libFuzzer records as a crash with the input saved.
 *
 * The kernel's messages (printf) go to stdout; fh_quiet() sends them to
 * /dev/null unless FUZZ_VERBOSE=1 is set, so replaying a finding with
 * `FUZZ_VERBOSE=1 build/fuzz/fuzz_<name> FILE` shows them, and the
 * harness's own trace of each step (fh_trace).
 *
 * This header is the harness's LLVMFuzzerInitialize: fh_quiet(), then the
 * harness's fh_setup() if it defines one (what it allocates or opens once).
 */
#ifndef BLIMP_FUZZ_UTIL_H
#define BLIMP_FUZZ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fh {
	const uint8_t *p;
	size_t n;
};

static inline int fh_left(const struct fh *f) { return f->n > 0; }

static inline uint8_t fh_u8(struct fh *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

static inline uint16_t fh_u16(struct fh *f)
{
	uint16_t v = fh_u8(f);
	return (uint16_t)(v | fh_u8(f) << 8);
}

static inline uint32_t fh_u32(struct fh *f)
{
	uint32_t v = fh_u16(f);
	return v | (uint32_t)fh_u16(f) << 16;
}

static inline uint64_t fh_u64(struct fh *f)
{
	uint64_t v = fh_u32(f);
	return v | (uint64_t)fh_u32(f) << 32;
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void fh_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fflush(stdout);
	fprintf(stderr, "INVARIANT FAILED: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

static int fh_verbose;

static inline void fh_quiet(void)
{
	const char *v = getenv("FUZZ_VERBOSE");
	fh_verbose = v && strcmp(v, "1") == 0;
	if (!fh_verbose && !freopen("/dev/null", "w", stdout))
		fh_fail("cannot send stdout to /dev/null");
}

/* Defined by a harness with something to set up once; optional. */
void fh_setup(void) __attribute__((weak));

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fh_quiet();
	if (fh_setup)
		fh_setup();
	return 0;
}

/* One line per step of the program, with FUZZ_VERBOSE=1 (replaying). */
__attribute__((format(printf, 1, 2), unused)) static void fh_trace(const char *fmt, ...)
{
	if (!fh_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#endif
