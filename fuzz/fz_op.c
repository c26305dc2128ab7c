/*
 * fz_op: parsing and printing the text form of device-fuzzing operations
 * (the grammar is in fz_op.h). Replay logs come from files a person may have
 * edited, so the parser refuses anything it cannot print back identically and
 * says which token is wrong. No allocation, no libc beyond string helpers:
 * the same file is built for the host tests.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fz_op.h"

static const char *const kind_names[] = {
	[FZ_PROG] = "prog", [FZ_RESET] = "reset", [FZ_CW] = "cw", [FZ_CR] = "cr", [FZ_DW] = "dw",
	[FZ_DR] = "dr", [FZ_WW] = "ww", [FZ_WR] = "wr", [FZ_QSETUP] = "qsetup", [FZ_ADD] = "add",
	[FZ_AVAIL] = "avail", [FZ_KICK] = "kick", [FZ_WAIT] = "wait", [FZ_CHECK] = "check",
	[FZ_MW] = "mw", [FZ_MR] = "mr", [FZ_QADDR] = "qaddr", [FZ_PADD] = "padd", [FZ_PEVENT] = "pevent",
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

static const char *const seg_names[] = {
	[FZ_SEG_PFNS] = "pfns", [FZ_SEG_RANGE] = "range", [FZ_SEG_STATS] = "stats",
	[FZ_SEG_ID] = "id", [FZ_SEG_ZERO] = "zero",
};

void fz_op_init(struct fz_op *op, enum fz_kind kind)
{
	memset(op, 0, sizeof(*op));
	op->kind = (uint8_t)kind;
	op->indlen = op->next = op->head = FZ_NONE;
	op->av = op->us = FZ_NONE;
}

uint64_t fz_seg_frames(const struct fz_seg *s)
{
	uint64_t n = 0;
	if (s->kind == FZ_SEG_PFNS)
		for (unsigned i = 0; i < s->n_runs; i++)
			n += s->run[i].count;
	return n;
}

/* ---------------------------------------------------------------- parsing */

struct cursor {
	const char *p;
	char *why;
	size_t why_len;
};

static int fail(struct cursor *c, const char *what, const char *at)
{
	size_t n = strcspn(at, " ");
	snprintf(c->why, c->why_len, "%s at \"%.*s\"", what, (int)(n > 40 ? 40 : n), at);
	return -EINVAL;
}

/* The next space-separated token into tok; returns its length (0 when there
 * is none), or SIZE_MAX when it does not fit: no token is ever cut short. */
static size_t next_token(struct cursor *c, char *tok, size_t len)
{
	while (*c->p == ' ')
		c->p++;
	size_t n = strcspn(c->p, " ");
	c->p += n;
	if (n >= len) {
		tok[0] = 0;
		return SIZE_MAX;
	}
	memcpy(tok, c->p - n, n);
	tok[n] = 0;
	return n;
}

/* A whole token as an unsigned number (decimal or 0x hex) no larger than max. */
static int number(const char *s, uint64_t max, uint64_t *out)
{
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Numbers up to the next character in `stop` (or the end); advances *s. */
static int number_until(const char **s, const char *stop, uint64_t max, uint64_t *out)
{
	char buf[24];
	size_t n = strcspn(*s, stop);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, *s, n);
	buf[n] = 0;
	*s += n;
	return number(buf, max, out);
}

static int arg_number(struct cursor *c, uint64_t max, uint64_t *out)
{
	char tok[32];
	const char *at = c->p;
	size_t n = next_token(c, tok, sizeof(tok));
	if (n == 0)
		return fail(c, "missing number", at);
	if (n == SIZE_MAX || number(tok, max, out) < 0)
		return fail(c, "bad number", at + strspn(at, " "));
	return 0;
}

static int parse_run(const char **s, struct fz_run *r, bool bytes)
{
	if (**s != 'a' && **s != 'p')
		return -EINVAL;
	r->arena = **s == 'a';
	(*s)++;
	if (number_until(s, "+", bytes ? UINT64_MAX : 0xffffffffu, &r->start) < 0 || **s != '+')
		return -EINVAL;
	(*s)++;
	return number_until(s, ",", bytes ? 0xffffffffu : 1u << 20, &r->count);
}

static int parse_seg(struct cursor *c, const char *tok, const char *at, struct fz_seg *sg)
{
	memset(sg, 0, sizeof(*sg));
	if ((tok[0] != 'r' && tok[0] != 'w') || tok[1] != ':')
		return fail(c, "a segment starts with r: or w:", at);
	sg->writable = tok[0] == 'w';
	const char *s = tok + 2;
	size_t name_len = strcspn(s, "=");
	unsigned k;
	for (k = 0; k < sizeof(seg_names) / sizeof(seg_names[0]); k++)
		if (strlen(seg_names[k]) == name_len && strncmp(s, seg_names[k], name_len) == 0)
			break;
	if (k == sizeof(seg_names) / sizeof(seg_names[0]) || s[name_len] != '=')
		return fail(c, "unknown segment kind", at);
	sg->kind = (uint8_t)k;
	s += name_len + 1;
	uint64_t v, l;
	switch (k) {
	case FZ_SEG_PFNS:
	case FZ_SEG_RANGE:
		for (;;) {
			if (sg->n_runs == (k == FZ_SEG_RANGE ? 1 : FZ_MAX_RUNS))
				return fail(c, "too many runs", at);
			if (parse_run(&s, &sg->run[sg->n_runs++], k == FZ_SEG_RANGE) < 0)
				return fail(c, "bad run (aN+C or pN+C)", at);
			if (*s != ',')
				break;
			s++;
		}
		break;
	case FZ_SEG_ID:
		if (number_until(&s, "/", 0xffffffffu, &v) < 0 || *s++ != '/' || number_until(&s, "", 64, &l) < 0)
			return fail(c, "bad id (VAL/LEN, LEN at most 64)", at);
		sg->value = (uint32_t)v;
		sg->len = (uint32_t)l;
		break;
	default: /* stats=N, zero=LEN */
		if (number_until(&s, "", k == FZ_SEG_STATS ? 4096 : 1u << 20, &l) < 0)
			return fail(c, "bad length", at);
		sg->len = (uint32_t)l;
	}
	if (*s)
		return fail(c, "trailing characters in segment", at);
	return 0;
}

/* add's arguments, or padd's (`packed`): slots and flags instead of d=. */
static int parse_add(struct cursor *c, struct fz_op *op, bool packed)
{
	char tok[FZ_LINE_MAX];
	bool got_at = false, got_id = false, got_wrap = false;
	for (;;) {
		while (*c->p == ' ')
			c->p++;
		const char *at = c->p;
		size_t n = next_token(c, tok, sizeof(tok));
		if (n == 0)
			break;
		if (n == SIZE_MAX)
			return fail(c, "token too long", at);
		uint64_t v;
		if (packed && strncmp(tok, "at=", 3) == 0 && !got_at && number(tok + 3, 0xffff, &v) == 0) {
			op->slot = (uint16_t)v;
			got_at = true;
		} else if (packed && strncmp(tok, "id=", 3) == 0 && !got_id && number(tok + 3, 0xffff, &v) == 0) {
			op->bid = (uint16_t)v;
			got_id = true;
		} else if (packed && strncmp(tok, "wrap=", 5) == 0 && !got_wrap && number(tok + 5, 1, &v) == 0) {
			op->wrap = v;
			got_wrap = true;
		} else if (packed && strncmp(tok, "av=", 3) == 0 && number(tok + 3, 1, &v) == 0) {
			op->av = (int8_t)v;
		} else if (packed && strncmp(tok, "us=", 3) == 0 && number(tok + 3, 1, &v) == 0) {
			op->us = (int8_t)v;
		} else if (packed && strcmp(tok, "rev") == 0) {
			op->rev = true;
		} else if (packed && strcmp(tok, "nest") == 0) {
			op->nest = true;
		} else if (!packed && strncmp(tok, "d=", 2) == 0) {
			const char *s = tok + 2;
			for (;;) {
				if (op->n_desc == FZ_MAX_SEGS || number_until(&s, ",", 0xffff, &v) < 0)
					return fail(c, "bad descriptor list", at);
				op->desc[op->n_desc++] = (uint16_t)v;
				if (*s != ',')
					break;
				s++;
			}
			if (*s)
				return fail(c, "bad descriptor list", at);
		} else if (strcmp(tok, "ind") == 0) {
			op->ind = true;
		} else if (!packed && strcmp(tok, "loop") == 0) {
			op->loop = true;
		} else if (strcmp(tok, "hide") == 0) {
			op->hide = true;
		} else if (strncmp(tok, "indlen=", 7) == 0 && number(tok + 7, 65536, &v) == 0) {
			op->indlen = (int32_t)v;
		} else if (!packed && strncmp(tok, "next=", 5) == 0 && number(tok + 5, 0xffff, &v) == 0) {
			op->next = (int32_t)v;
		} else if (!packed && strncmp(tok, "head=", 5) == 0 && number(tok + 5, 0xffff, &v) == 0) {
			op->head = (int32_t)v;
		} else if (tok[0] == 'r' || tok[0] == 'w') {
			if (op->n_segs == FZ_MAX_SEGS)
				return fail(c, "too many segments", at);
			int rc = parse_seg(c, tok, at, &op->seg[op->n_segs++]);
			if (rc < 0)
				return rc;
		} else {
			return fail(c, "unknown add argument", at);
		}
	}
	if (packed) {
		if (!got_at || !got_id || !got_wrap)
			return fail(c, "padd needs at=, id= and wrap=", c->p);
		if (op->n_segs == 0)
			return fail(c, "padd needs a segment", c->p);
		return 0;
	}
	if (op->n_desc == 0)
		return fail(c, "add needs d=", c->p);
	if (!op->ind && op->n_desc != op->n_segs)
		return fail(c, "a direct chain needs one descriptor per segment", c->p);
	if (op->ind && op->n_desc != 1)
		return fail(c, "an indirect buffer has one descriptor", c->p);
	return 0;
}

static int parse_op(const char *text, struct fz_op *op, char *why, size_t why_len)
{
	struct cursor c = { text, why, why_len };
	char tok[16];
	const char *at = c.p;
	if (why_len)
		why[0] = 0;
	if (strlen(text) >= FZ_LINE_MAX)
		return fail(&c, "line too long", text);
	size_t n = next_token(&c, tok, sizeof(tok));
	if (n == 0)
		return fail(&c, "empty op", at);
	unsigned k;
	for (k = 0; k < N_KINDS; k++)
		if (strcmp(tok, kind_names[k]) == 0)
			break;
	if (k == N_KINDS)
		return fail(&c, "unknown op", at);
	fz_op_init(op, (enum fz_kind)k);
	uint64_t q = 0, v = 0;
	int rc = 0;
	switch (k) {
	case FZ_PROG: {
		char what[8];
		if ((rc = arg_number(&c, UINT32_MAX, &op->off)) < 0)
			return rc;
		at = c.p;
		if (next_token(&c, what, sizeof(what)) == SIZE_MAX || (strcmp(what, "valid") && strcmp(what, "bad")))
			return fail(&c, "prog N valid|bad", at);
		op->value = strcmp(what, "valid") == 0;
		break;
	}
	case FZ_RESET:
	case FZ_CHECK:
		break;
	case FZ_CW:
	case FZ_CR:
	case FZ_DW:
	case FZ_DR:
	case FZ_MW:
	case FZ_MR:
		if ((rc = arg_number(&c, 0xfff, &op->off)) < 0 || (rc = arg_number(&c, 8, &v)) < 0)
			return rc;
		if (v != 1 && v != 2 && v != 4 && v != 8)
			return fail(&c, "width must be 1, 2, 4 or 8", text);
		op->width = (uint32_t)v;
		if ((k == FZ_CW || k == FZ_DW || k == FZ_MW) && (rc = arg_number(&c, UINT64_MAX, &op->value)) < 0)
			return rc;
		break;
	case FZ_QADDR:
		if ((rc = arg_number(&c, 0xffff, &q)) < 0)
			return rc;
		op->q = (uint16_t)q;
		for (unsigned i = 0; i < 3; i++) {
			if ((rc = arg_number(&c, 0xffff, &v)) < 0)
				return rc;
			op->qoff[i] = (uint32_t)v;
		}
		break;
	case FZ_PEVENT:
		if ((rc = arg_number(&c, 0xffff, &q)) < 0 || (rc = arg_number(&c, 0xffff, &op->value)) < 0 ||
		    (rc = arg_number(&c, 0xffff, &op->off)) < 0)
			return rc;
		op->q = (uint16_t)q;
		break;
	case FZ_WW:
	case FZ_WR:
		if ((rc = arg_number(&c, 255, &q)) < 0 || (rc = arg_number(&c, UINT32_MAX, &op->off)) < 0 ||
		    (rc = arg_number(&c, UINT32_MAX, &v)) < 0)
			return rc;
		op->q = (uint16_t)q;
		op->width = (uint32_t)v;
		if (k == FZ_WW && (rc = arg_number(&c, UINT32_MAX, &op->value)) < 0)
			return rc;
		break;
	case FZ_QSETUP:
	case FZ_AVAIL:
	case FZ_WAIT:
		if ((rc = arg_number(&c, 0xffff, &q)) < 0 || (rc = arg_number(&c, 0xffff, &op->off)) < 0)
			return rc;
		op->q = (uint16_t)q;
		break;
	case FZ_KICK:
		if ((rc = arg_number(&c, 0xffff, &q)) < 0)
			return rc;
		op->q = (uint16_t)q;
		break;
	case FZ_ADD:
	case FZ_PADD:
		if ((rc = arg_number(&c, 0xffff, &q)) < 0)
			return rc;
		op->q = (uint16_t)q;
		if ((rc = parse_add(&c, op, k == FZ_PADD)) < 0)
			return rc;
		break;
	}
	while (*c.p == ' ')
		c.p++;
	if (*c.p)
		return fail(&c, "unexpected argument", c.p);
	return 0;
}

/* ---------------------------------------------------------------- printing */

struct out {
	char *buf;
	size_t len, at;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->at < o->len ? o->len - o->at : 0;
	int n = vsnprintf(o->buf + (room ? o->at : 0), room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		o->full = true;
	else
		o->at += (size_t)n;
}

static void put_seg(struct out *o, const struct fz_seg *s)
{
	put(o, " %c:%s=", s->writable ? 'w' : 'r', seg_names[s->kind]);
	switch (s->kind) {
	case FZ_SEG_PFNS:
	case FZ_SEG_RANGE:
		for (unsigned i = 0; i < s->n_runs; i++)
			put(o, "%s%c%#llx+%llu", i ? "," : "", s->run[i].arena ? 'a' : 'p',
			    (unsigned long long)s->run[i].start, (unsigned long long)s->run[i].count);
		break;
	case FZ_SEG_ID:
		put(o, "%u/%u", s->value, s->len);
		break;
	default:
		put(o, "%u", s->len);
	}
}

int fz_format(const struct fz_op *op, char *buf, size_t len)
{
	struct out o = { buf, len, 0, false };
	if (op->kind >= N_KINDS)
		return -EINVAL;
	put(&o, "%s", kind_names[op->kind]);
	switch (op->kind) {
	case FZ_PROG:
		put(&o, " %llu %s", (unsigned long long)op->off, op->value ? "valid" : "bad");
		break;
	case FZ_CW:
	case FZ_DW:
	case FZ_MW:
		put(&o, " %#llx %u %#llx", (unsigned long long)op->off, op->width, (unsigned long long)op->value);
		break;
	case FZ_QADDR:
		put(&o, " %u %#x %#x %#x", op->q, op->qoff[0], op->qoff[1], op->qoff[2]);
		break;
	case FZ_PEVENT:
		put(&o, " %u %#llx %#llx", op->q, (unsigned long long)op->value, (unsigned long long)op->off);
		break;
	case FZ_PADD:
		put(&o, " %u at=%u id=%u wrap=%u", op->q, op->slot, op->bid, op->wrap);
		if (op->av != FZ_NONE)
			put(&o, " av=%d", op->av);
		if (op->us != FZ_NONE)
			put(&o, " us=%d", op->us);
		if (op->rev)
			put(&o, " rev");
		if (op->ind)
			put(&o, " ind");
		if (op->indlen != FZ_NONE)
			put(&o, " indlen=%d", op->indlen);
		if (op->nest)
			put(&o, " nest");
		if (op->hide)
			put(&o, " hide");
		for (unsigned i = 0; i < op->n_segs; i++)
			put_seg(&o, &op->seg[i]);
		break;
	case FZ_CR:
	case FZ_DR:
	case FZ_MR:
		put(&o, " %#llx %u", (unsigned long long)op->off, op->width);
		break;
	case FZ_WW:
		put(&o, " %u %#llx %u %#llx", op->q, (unsigned long long)op->off, op->width,
		    (unsigned long long)op->value);
		break;
	case FZ_WR:
		put(&o, " %u %#llx %u", op->q, (unsigned long long)op->off, op->width);
		break;
	case FZ_QSETUP:
	case FZ_AVAIL:
	case FZ_WAIT:
		put(&o, " %u %llu", op->q, (unsigned long long)op->off);
		break;
	case FZ_KICK:
		put(&o, " %u", op->q);
		break;
	case FZ_ADD:
		put(&o, " %u d=", op->q);
		for (unsigned i = 0; i < op->n_desc; i++)
			put(&o, "%s%u", i ? "," : "", op->desc[i]);
		if (op->ind)
			put(&o, " ind");
		if (op->indlen != FZ_NONE)
			put(&o, " indlen=%d", op->indlen);
		if (op->loop)
			put(&o, " loop");
		if (op->next != FZ_NONE)
			put(&o, " next=%d", op->next);
		if (op->head != FZ_NONE)
			put(&o, " head=%d", op->head);
		if (op->hide)
			put(&o, " hide");
		for (unsigned i = 0; i < op->n_segs; i++)
			put_seg(&o, &op->seg[i]);
		break;
	}
	return o.full ? -ENOSPC : (int)o.at;
}

int fz_parse(const char *text, struct fz_op *op, char *why, size_t why_len)
{
	int rc = parse_op(text, op, why, why_len);
	if (rc < 0)
		return rc;
	/* Accepted text prints back in canonical form, which can be longer
	 * (`a5` becomes `a0x5`, a short `d=0` all eight values): an op whose
	 * canonical line would not fit is refused, or a replay log written
	 * from it could not be read back (found by fuzz_fz_op). */
	char line[FZ_LINE_MAX];
	int n = fz_format(op, line, sizeof(line));
	if (n < 0 || n >= FZ_LINE_MAX) {
		snprintf(why, why_len, "line too long once written out in full (over %d characters)", FZ_LINE_MAX - 1);
		return -EINVAL;
	}
	return 0;
}
