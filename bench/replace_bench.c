/*
 * replace_bench: how close each page-replacement policy comes to Belady's
 * OPT, on the host build of the same kernel/replace.c.
 *
 * Runs replace_simulate() for FIFO, CLOCK, ESC, LRU and OPT over a few
 * reference strings, each chosen to show one thing:
 *
 *   belady    1,2,3,4,1,2,5,1,2,3,4,5 with 3 and 4 frames: FIFO faults more
 *             with more memory (Belady's anomaly); LRU and OPT cannot.
 *   uniform   every page equally likely: no policy can guess, all are close.
 *   hotcold   20 % of the pages get 80 % of the references: recency pays.
 *   loop      a sequential loop over a few more pages than frames: LRU and
 *             the clocks evict exactly the page needed next and fault on
 *             every reference; OPT faults about once a lap.
 *   writes    hotcold with 30 % of the references writes: ESC prefers clean
 *             victims, so it writes back less than CLOCK.
 *
 * The random strings come from splitmix64 with fixed seeds (in the output),
 * so every run prints the same figures. OPT is the limit: a policy faulting
 * less than OPT would be a bug in the simulator, so every ratio to OPT is
 * checked to be >= 1 and the program exits 1 otherwise.
 *
 * Usage: replace_bench   Prints one JSON document on stdout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernel/replace.h"

#define MAX_REFS 20000
#define MAX_FRAMES 8

struct string {
	const char *name, *what;
	uint64_t seed;              /* 0: not random */
	uint32_t n_pages, n_refs;
	unsigned write_pct;
	uint32_t frames[MAX_FRAMES]; /* 0-terminated */
	void (*make)(struct string *s, struct replace_ref *refs);
};

static uint64_t rng_state;

/* splitmix64: small, and the same sequence on every machine. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return (uint32_t)(rng() % n);
}

static void make_belady(struct string *s, struct replace_ref *refs)
{
	static const uint32_t belady[] = { 1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5 };
	for (uint32_t i = 0; i < s->n_refs; i++)
		refs[i] = (struct replace_ref){ .page = belady[i], .write = 0 };
}

static void make_uniform(struct string *s, struct replace_ref *refs)
{
	for (uint32_t i = 0; i < s->n_refs; i++)
		refs[i] = (struct replace_ref){ .page = below(s->n_pages),
						.write = below(100) < s->write_pct };
}

/* The first fifth of the pages (the hot set) gets 80 % of the references. */
static void make_hotcold(struct string *s, struct replace_ref *refs)
{
	uint32_t hot = s->n_pages / 5;
	for (uint32_t i = 0; i < s->n_refs; i++) {
		uint32_t page = below(100) < 80 ? below(hot) : hot + below(s->n_pages - hot);
		refs[i] = (struct replace_ref){ .page = page, .write = below(100) < s->write_pct };
	}
}

static void make_loop(struct string *s, struct replace_ref *refs)
{
	for (uint32_t i = 0; i < s->n_refs; i++)
		refs[i] = (struct replace_ref){ .page = i % s->n_pages, .write = 0 };
}

static struct string strings[] = {
	{ "belady", "1,2,3,4,1,2,5,1,2,3,4,5", 0, 6, 12, 0, { 3, 4 }, make_belady },
	{ "uniform", "100 pages, each equally likely", 1, 100, MAX_REFS, 0, { 10, 25, 50, 75 },
	  make_uniform },
	{ "hotcold", "100 pages, 20 of them get 80 % of the references", 2, 100, MAX_REFS, 0,
	  { 10, 20, 40 }, make_hotcold },
	{ "loop", "pages 0..35 in order, 100 laps", 0, 36, 3600, 0, { 32 }, make_loop },
	{ "writes", "hotcold with 30 % writes", 3, 100, MAX_REFS, 30, { 10, 20, 40 }, make_hotcold },
};

static const enum replace_policy policies[] = { REPLACE_FIFO, REPLACE_CLOCK, REPLACE_ESC,
						REPLACE_LRU, REPLACE_OPT };
#define N_POLICIES (sizeof(policies) / sizeof(policies[0]))

static struct replace_ref refs[MAX_REFS];
static uint64_t scratch[(MAX_REFS + 4096) / 2]; /* 8-aligned; size checked below */

int main(void)
{
	int bad = 0;
	printf("{\"what\":\"replace\",\"policies\":[");
	for (size_t p = 0; p < N_POLICIES; p++)
		printf("%s\"%s\"", p ? "," : "", replace_policy_name(policies[p]));
	printf("],\"strings\":[");
	for (size_t si = 0; si < sizeof(strings) / sizeof(strings[0]); si++) {
		struct string *s = &strings[si];
		rng_state = s->seed;
		s->make(s, refs);
		printf("%s\n{\"name\":\"%s\",\"what\":\"%s\",\"seed\":%llu,\"pages\":%u,\"refs\":%u,"
		       "\"write_pct\":%u,\"runs\":[",
		       si ? "," : "", s->name, s->what, (unsigned long long)s->seed, s->n_pages,
		       s->n_refs, s->write_pct);
		for (int fi = 0; fi < MAX_FRAMES && s->frames[fi]; fi++) {
			uint32_t k = s->frames[fi];
			struct replace_result res[N_POLICIES];
			if (replace_sim_scratch_size(s->n_refs, s->n_pages, k) > sizeof(scratch)) {
				fprintf(stderr, "replace_bench: scratch too small for %s\n", s->name);
				return 2;
			}
			for (size_t p = 0; p < N_POLICIES; p++) {
				int e = replace_simulate(policies[p], refs, s->n_refs, s->n_pages, k,
							 scratch, sizeof(scratch), &res[p]);
				if (e < 0) {
					fprintf(stderr, "replace_bench: replace_simulate(%s, %s, %u frames): %d\n",
						replace_policy_name(policies[p]), s->name, k, e);
					return 2;
				}
			}
			uint64_t opt = res[N_POLICIES - 1].faults;
			printf("%s\n {\"frames\":%u", fi ? "," : "", k);
			for (size_t p = 0; p < N_POLICIES; p++) {
				/* OPT is the limit: nothing may fault less. */
				if (res[p].faults < opt) {
					fprintf(stderr, "replace_bench: %s on %s with %u frames: %llu faults, "
						"fewer than OPT's %llu\n", replace_policy_name(policies[p]),
						s->name, k, (unsigned long long)res[p].faults,
						(unsigned long long)opt);
					bad = 1;
				}
				printf(",\"%s\":{\"faults\":%llu,\"writebacks\":%llu,\"ratio_to_opt\":%.4f}",
				       replace_policy_name(policies[p]), (unsigned long long)res[p].faults,
				       (unsigned long long)res[p].writebacks,
				       opt ? (double)res[p].faults / (double)opt : 1.0);
			}
			printf("}");
		}
		printf("]}");
	}
	printf("]}\n");
	return bad;
}
