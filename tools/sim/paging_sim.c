/*
 * paging_sim: a seeded exercise on page replacement, run by blimp's own
 * policies (kernel/replace.c).
 *
 *   paging [-s SEED] [-n REFS] [-P PAGES] [-w WRITE_PERCENT] [-f FRAMES[,FRAMES...]]
 *          [-p fifo,clock,esc,lru,opt] [-r "1,2,3w,..."] [-b] [-c]
 *
 * Poses a problem: a reference string (seeded, or given with -r; "3w" is a
 * write to page 3), a number of frames, and the policies; asks how many hits
 * and faults each has (and write-backs when the string writes). With -c it
 * prints every step — the frames after each reference, hit or miss, the
 * victim — and the totals. -f takes a list ("3,4") to compare memory sizes:
 * a policy that faults more with more frames is called out (Belady's
 * anomaly); -b poses exactly that case, FIFO on 1,2,3,4,1,2,5,1,2,3,4,5 with
 * 3 and 4 frames.
 *
 * Every answer is replace_simulate_steps' (the kernel's FIFO, clock and
 * enhanced second chance; LRU and Belady's OPT as bench/replace_bench.c
 * runs them, OPT from each reference's next use). Seeded strings come from
 * SplitMix64 (kernel/prng.h): the same seed prints the same text anywhere.
 *
 * Exit status: 0, 2 for a bad argument (the reason and the usage), 1 if the
 * simulator refuses a run (a bug).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kernel/prng.h"
#include "kernel/replace.h"

#define MAX_REFS 1000
#define MAX_PAGES 100
#define MAX_FRAMES 32
#define MAX_FRAME_SETS 8

static const uint32_t belady_string[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };

static const char *const policy_what[REPLACE_POLICIES] = {
	[REPLACE_FIFO] = "evicts the page that came in first (the hand's), bits ignored",
	[REPLACE_CLOCK] = "second chance: from the hand, a page with R set has R cleared and is\n"
			  "           passed over; the first page with R clear is the victim",
	[REPLACE_ESC] = "enhanced second chance: the first page from the hand of the lowest\n"
			"           class (R,M) in the order (0,0) (0,1) (1,0) (1,1); R is cleared on\n"
			"           the pages passed over only if no (0,0) page was found",
	[REPLACE_LRU] = "evicts the page whose last use is the oldest",
	[REPLACE_OPT] = "Belady's optimum: evicts the page whose next use is the farthest away\n"
			"           (or that is never used again)",
};

/* The options, on f (stdout for -h, stderr after a bad argument). */
static void usage(FILE *f)
{
	fprintf(f, "usage: paging [-s SEED] [-n REFS] [-P PAGES] [-w WRITE_PERCENT] [-f FRAMES[,FRAMES...]]\n"
		   "              [-p fifo,clock,esc,lru,opt] [-r \"1,2,3w,...\"] [-b] [-c]\n"
		   "  -s SEED           the seeded string's seed (default 0)\n"
		   "  -n REFS           references in the seeded string, 1-%d (default 10)\n"
		   "  -P PAGES          the seeded string uses pages 0..PAGES-1, 1-%d (default: frames + 2)\n"
		   "  -w WRITE_PERCENT  share of the seeded references that are writes, 0-100 (default 0)\n"
		   "  -f FRAMES         frames, 1-%d; a list (3,4) runs each (default 3)\n"
		   "  -p POLICIES       which policies (default fifo,clock,esc,lru,opt)\n"
		   "  -r REFS           this reference string instead of a seeded one: pages 0-%d,\n"
		   "                    comma-separated, a 'w' after a page makes it a write\n"
		   "  -b                Belady's anomaly: FIFO on 1,2,3,4,1,2,5,1,2,3,4,5 with 3 and 4 frames\n"
		   "                    (-p and -f still choose)\n"
		   "  -c                print the answers, step by step, computed by kernel/replace.c\n",
		MAX_REFS, MAX_PAGES, MAX_FRAMES, MAX_PAGES - 1);
}

/* Say what is wrong with the arguments (fmt with one %s) and how to call:
 * the exit status for main, 2. */
static int bad_arg(const char *fmt, const char *what)
{
	fprintf(stderr, "paging: ");
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n");
	usage(stderr);
	return 2;
}

/* A decimal number in [lo, hi] at the start of s into *out, and where it
 * ends into *end; false if s does not start with one in range. */
static bool parse_num(const char *s, uint64_t lo, uint64_t hi, uint64_t *out, const char **end)
{
	char *e;
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &e, 10);
	if (errno || v < lo || v > hi)
		return false;
	*out = v;
	*end = e;
	return true;
}

/* parse_num over the whole of s: nothing may follow the number. */
static bool parse_whole(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	const char *end;
	return parse_num(s, lo, hi, out, &end) && *end == 0;
}

/* "3,4" -> frames[], *n; false on anything else. */
static bool parse_frames(const char *s, uint32_t *frames, unsigned *n)
{
	*n = 0;
	for (;;) {
		uint64_t v;
		const char *end;
		if (*n == MAX_FRAME_SETS || !parse_num(s, 1, MAX_FRAMES, &v, &end))
			return false;
		frames[(*n)++] = (uint32_t)v;
		if (*end == 0)
			return true;
		if (*end != ',')
			return false;
		s = end + 1;
	}
}

/* "fifo,lru" -> policies[], *n; the name it could not read in *bad. */
static bool parse_policies(char *s, enum replace_policy *pol, unsigned *n, const char **bad)
{
	*n = 0;
	for (char *save = NULL, *w = strtok_r(s, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		int p = replace_policy_parse(w);
		*bad = w;
		if (p < 0 || *n == REPLACE_POLICIES)
			return false;
		pol[(*n)++] = (enum replace_policy)p;
	}
	*bad = s;
	return *n > 0;
}

/* "1,2,3w" -> refs[], *n; false on anything else. */
static bool parse_refs(const char *s, struct replace_ref *refs, uint32_t *n)
{
	*n = 0;
	for (;;) {
		uint64_t v;
		const char *end;
		while (*s == ' ')
			s++;
		if (*n == MAX_REFS || !parse_num(s, 0, MAX_PAGES - 1, &v, &end))
			return false;
		refs[*n].page = (uint32_t)v;
		refs[*n].write = *end == 'w' || *end == 'W';
		if (refs[*n].write)
			end++;
		(*n)++;
		while (*end == ' ')
			end++;
		if (*end == 0)
			return true;
		if (*end != ',')
			return false;
		s = end + 1;
	}
}

/* ---------------------------------------------------------------- the trace */

struct trace {
	const struct replace_ref *refs;
	enum replace_policy policy;
	bool writes;         /* the string has writes: M is worth showing */
	uint32_t frames;
};

/* The policies whose ring order means something: the hand is where they
 * look first (LRU and OPT keep the ring only to hold the pages). */
static bool shows_hand(enum replace_policy p)
{
	return p == REPLACE_FIFO || p == REPLACE_CLOCK || p == REPLACE_ESC;
}

/* One line per reference: "  3  4w  miss  evicts 1 (written back)  | >2R  3R  4RM". */
static void print_step(void *ctx, const struct replace_sim_step *st)
{
	const struct trace *t = ctx;
	char victim[40] = "-";
	if (st->victim != REPLACE_NONE)
		snprintf(victim, sizeof(victim), "%u%s", st->victim, st->writeback ? " (written back)" : "");
	printf("  %4u  %3u%c  %-4s  %-18s |", st->ref + 1, st->page, t->refs[st->ref].write ? 'w' : ' ',
	       st->hit ? "hit" : "miss", victim);
	for (uint32_t f = 0; f < t->frames; f++) {
		char cell[16];
		const struct replace_slot *sl = &st->ring->slot[f];
		if (!sl->used) {
			snprintf(cell, sizeof(cell), "-");
		} else {
			bool clocks = t->policy == REPLACE_CLOCK || t->policy == REPLACE_ESC;
			bool r = clocks && (st->rm[f] & REPLACE_R);
			bool m = (clocks || t->writes) && (st->rm[f] & REPLACE_M);
			snprintf(cell, sizeof(cell), "%s%llu%s%s",
				 shows_hand(t->policy) && st->ring->hand == f ? ">" : "",
				 (unsigned long long)sl->page, r ? "R" : "", m ? "M" : "");
		}
		printf(" %6s", cell);
	}
	printf("\n");
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	uint64_t seed = 0, n = 10, pages = 0, write_pct = 0;
	bool answers = false, belady = false, seeded_opts = false;
	const char *ref_text = NULL;
	uint32_t frames[MAX_FRAME_SETS] = { 3 };
	unsigned n_frames = 1;
	bool frames_given = false, policies_given = false;
	enum replace_policy pol[REPLACE_POLICIES] = { REPLACE_FIFO, REPLACE_CLOCK, REPLACE_ESC,
						      REPLACE_LRU, REPLACE_OPT };
	unsigned n_pol = REPLACE_POLICIES;
	static struct replace_ref refs[MAX_REFS];
	uint32_t n_refs = 0;
	int c;
	opterr = 0;
	while ((c = getopt(argc, argv, "s:n:P:w:f:p:r:bch")) != -1) {
		switch (c) {
		case 's':
			if (!parse_whole(optarg, 0, UINT64_MAX, &seed))
				return bad_arg("-s wants a number from 0 to 2^64-1, not '%s'", optarg);
			seeded_opts = true;
			break;
		case 'n':
			if (!parse_whole(optarg, 1, MAX_REFS, &n))
				return bad_arg("-n wants a number of references from 1 to 1000, not '%s'", optarg);
			seeded_opts = true;
			break;
		case 'P':
			if (!parse_whole(optarg, 1, MAX_PAGES, &pages))
				return bad_arg("-P wants a number of pages from 1 to 100, not '%s'", optarg);
			seeded_opts = true;
			break;
		case 'w':
			if (!parse_whole(optarg, 0, 100, &write_pct))
				return bad_arg("-w wants a percentage from 0 to 100, not '%s'", optarg);
			seeded_opts = true;
			break;
		case 'f':
			if (!parse_frames(optarg, frames, &n_frames))
				return bad_arg("-f wants frames from 1 to 32, or a list of up to 8 (3,4), not '%s'", optarg);
			frames_given = true;
			break;
		case 'p': {
			const char *bad;
			if (!parse_policies(optarg, pol, &n_pol, &bad))
				return bad_arg("-p wants policies among fifo,clock,esc,lru,opt; '%s' is not one", bad);
			policies_given = true;
			break;
		}
		case 'r':
			ref_text = optarg;
			if (!parse_refs(optarg, refs, &n_refs))
				return bad_arg("-r wants pages 0-99 separated by commas, each maybe followed by w "
					       "(at most 1000), not '%s'", optarg);
			break;
		case 'b':
			belady = true;
			break;
		case 'c':
			answers = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default: {
			char opt[3] = { '-', (char)optopt, 0 };
			return bad_arg(strchr("snPwfpr", optopt) ? "%s needs a value" : "unknown option '%s'", opt);
		}
		}
	}
	if (optind < argc)
		return bad_arg("unexpected argument '%s'", argv[optind]);
	if (belady && ref_text)
		return bad_arg("%s: -b gives the reference string, so -r cannot", "-b with -r");
	if ((belady || ref_text) && seeded_opts)
		return bad_arg("%s: -s, -n, -P and -w make a seeded string; -r and -b give one",
			       belady ? "-b" : "-r");

	uint32_t max_frames = 0;
	for (unsigned i = 0; i < n_frames; i++)
		max_frames = frames[i] > max_frames ? frames[i] : max_frames;
	if (belady) {
		n_refs = sizeof(belady_string) / sizeof(belady_string[0]);
		for (uint32_t i = 0; i < n_refs; i++)
			refs[i] = (struct replace_ref){ .page = belady_string[i], .write = 0 };
		if (!frames_given) {
			frames[0] = 3, frames[1] = 4, n_frames = 2;
			max_frames = 4;
		}
		if (!policies_given)
			pol[0] = REPLACE_FIFO, n_pol = 1;
	} else if (!ref_text) {
		if (!pages)
			pages = max_frames + 2 <= MAX_PAGES ? max_frames + 2 : MAX_PAGES;
		uint64_t state = seed;
		n_refs = (uint32_t)n;
		for (uint32_t i = 0; i < n_refs; i++) {
			uint64_t r = prng_splitmix64(&state);
			refs[i].page = (uint32_t)((r >> 16) % pages);
			refs[i].write = (r & 0xffff) % 100 < write_pct;
		}
	}
	uint32_t n_pages = 0;
	bool writes = false;
	for (uint32_t i = 0; i < n_refs; i++) {
		n_pages = refs[i].page + 1 > n_pages ? refs[i].page + 1 : n_pages;
		writes |= refs[i].write;
	}

	/* The problem. */
	if (belady)
		printf("paging: Belady's string, %u references\n", n_refs);
	else if (ref_text)
		printf("paging: the given string, %u references\n", n_refs);
	else
		printf("paging: seed %llu, %u references to pages 0-%llu, %llu %% writes\n",
		       (unsigned long long)seed, n_refs, (unsigned long long)pages - 1,
		       (unsigned long long)write_pct);
	printf("\nreference string%s:\n ", writes ? " (w: a write, which sets the page's M bit)" : "");
	for (uint32_t i = 0; i < n_refs; i++)
		printf(" %u%s", refs[i].page, refs[i].write ? "w" : "");
	printf("\n\nframes:");
	for (unsigned i = 0; i < n_frames; i++)
		printf(" %u", frames[i]);
	printf("\npolicies (kernel/replace.c):\n");
	for (unsigned p = 0; p < n_pol; p++)
		printf("  %-8s %s\n", replace_policy_name(pol[p]), policy_what[pol[p]]);
	printf("\nThe frames start empty. A reference to a page not in a frame is a fault\n"
	       "(a miss); it takes a free frame, or the victim's when none is free. Every\n"
	       "reference sets the page's R bit (referenced), a write its M bit (modified);\n"
	       "a page comes in with both clear, and a victim with M set is written back.\n"
	       "The clocks' hand starts at the first page to come in and sits, after each\n"
	       "fault, just past the page brought in.\n");
	printf("\nquestions:\n"
	       "  1. For each policy and number of frames: how many hits, how many faults?\n");
	if (writes)
		printf("  2. How many victims are written back? Why does esc write back fewer than\n"
		       "     clock (when it does)?\n");
	if (n_frames > 1)
		printf("  %u. Does any policy fault more with more frames?\n", writes ? 3 : 2);
	if (!answers) {
		printf("\nRun again with -c for the answers.\n");
		return 0;
	}

	/* The answers. */
	struct replace_result res[MAX_FRAME_SETS][REPLACE_POLICIES];
	printf("\nanswers (from kernel/replace.c):\n");
	printf("  each line: the reference, hit or miss, the page evicted, then the frames\n"
	       "  after it: - an empty frame, > the hand, R the page's referenced bit (shown\n"
	       "  for the clocks, which read it)%s\n",
	       writes ? ", M its modified bit" : "");
	for (unsigned fi = 0; fi < n_frames; fi++) {
		size_t len = replace_sim_scratch_size(n_refs, n_pages, frames[fi]);
		void *scratch = aligned_alloc(8, (len + 7) & ~(size_t)7);
		if (!scratch) {
			fprintf(stderr, "paging: out of memory\n");
			return 1;
		}
		for (unsigned p = 0; p < n_pol; p++) {
			struct trace t = { .refs = refs, .policy = pol[p], .writes = writes, .frames = frames[fi] };
			printf("\n  %s, %u frame%s:\n   ref  page  hit?  evicts             | frames\n",
			       replace_policy_name(pol[p]), frames[fi], frames[fi] == 1 ? "" : "s");
			int e = replace_simulate_steps(pol[p], refs, n_refs, n_pages, frames[fi], scratch,
						       (len + 7) & ~(size_t)7, &res[fi][p], print_step, &t);
			if (e < 0) {
				fprintf(stderr, "paging: replace_simulate_steps(%s, %u frames): %d\n",
					replace_policy_name(pol[p]), frames[fi], e);
				return 1;
			}
			struct replace_result *r = &res[fi][p];
			printf("  %s, %u frames: %llu hits, %llu faults", replace_policy_name(pol[p]), frames[fi],
			       (unsigned long long)(r->refs - r->faults), (unsigned long long)r->faults);
			if (writes)
				printf(", %llu written back", (unsigned long long)r->writebacks);
			printf("\n");
		}
		free(scratch);
	}
	printf("\ntotals:\n  frames  policy  hits  faults%s\n", writes ? "  written back" : "");
	for (unsigned fi = 0; fi < n_frames; fi++)
		for (unsigned p = 0; p < n_pol; p++) {
			struct replace_result *r = &res[fi][p];
			printf("  %6u  %-6s  %4llu  %6llu", frames[fi], replace_policy_name(pol[p]),
			       (unsigned long long)(r->refs - r->faults), (unsigned long long)r->faults);
			if (writes)
				printf("  %12llu", (unsigned long long)r->writebacks);
			printf("\n");
		}
	bool anomaly = false;
	for (unsigned p = 0; p < n_pol; p++)
		for (unsigned a = 0; a < n_frames; a++)
			for (unsigned b = 0; b < n_frames; b++)
				if (frames[b] > frames[a] && res[b][p].faults > res[a][p].faults) {
					printf("\nBelady's anomaly: %s faults %llu times with %u frames and %llu times "
					       "with %u:\nmore memory, more faults.\n", replace_policy_name(pol[p]),
					       (unsigned long long)res[b][p].faults, frames[b],
					       (unsigned long long)res[a][p].faults, frames[a]);
					anomaly = true;
				}
	if (n_frames > 1 && !anomaly)
		printf("\nNo policy faults more with more frames here.\n");
	return 0;
}
