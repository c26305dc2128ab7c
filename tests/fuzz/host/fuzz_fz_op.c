/*
 * fuzz_fz_op: the replay-log parser (fuzz/fz_op.c) fed arbitrary text.
 *
 * Replay logs are files people edit and tools cut down, so the parser must
 * refuse garbage with a reason and never read past its input. Invariant:
 * whatever it accepts prints back (fz_format) to text that parses to the
 * very same op, and printing that again gives the same text.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "fuzz/fz_op.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[FZ_LINE_MAX + 32];
	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = 0;
	struct fz_op op, again;
	char why[160], printed[FZ_LINE_MAX * 2], printed2[FZ_LINE_MAX * 2];
	if (fz_parse(text, &op, why, sizeof(why)) < 0) {
		assert(why[0] != 0); /* a refusal always says why */
		return 0;
	}
	int n = fz_format(&op, printed, sizeof(printed));
	assert(n > 0);
	if (fz_parse(printed, &again, why, sizeof(why)) < 0) {
		fprintf(stderr, "accepted \"%s\", printed \"%s\", which is refused: %s\n", text, printed, why);
		assert(0);
	}
	assert(memcmp(&op, &again, sizeof(op)) == 0);
	assert(fz_format(&again, printed2, sizeof(printed2)) == n && strcmp(printed, printed2) == 0);
	return 0;
}
