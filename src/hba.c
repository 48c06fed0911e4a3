/*
 * Parser and matcher for auth_hba_file (see hba.h for what is accepted).
 *
 * Parsing goes in three steps per record: join backslash-continued
 * physical lines into one bounded logical line, split it into fields of
 * comma-separated tokens (remembering which tokens were quoted, since a
 * quoted keyword is a plain name), then interpret the fields by position.
 * @file tokens are expanded at parse time into the same name lists, so
 * matching never touches the disk. Name lists are sorted once and searched
 * by bisection: a generated @file of thousands of users costs the same per
 * login as a short list.
 *
 * Everything is checked before a rule is accepted, and the first error
 * abandons the whole load: half a rule set is worse than the old one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A host record has at most 6 positional fields; the rest are options. */
#define HBA_MAX_FIELDS 32

enum hba_conn {
	HBA_CONN_LOCAL,
	HBA_CONN_HOST,
	HBA_CONN_HOSTSSL,
	HBA_CONN_HOSTNOSSL,
};

/* Keywords of the database and user fields, kept apart from the names. */
#define HBA_NAME_ALL         0x1u
#define HBA_NAME_SAMEUSER    0x2u
#define HBA_NAME_REPLICATION 0x4u

struct hba_names {
	unsigned flags;
	char **names; /* sorted by strcmp once the line is complete */
	size_t n, cap;
};

enum hba_addr_kind {
	HBA_ADDR_NONE, /* local records have no address */
	HBA_ADDR_ALL,
	HBA_ADDR_NET,
};

struct hba_rule {
	int line;
	enum hba_conn conn;
	struct hba_names db, user;
	enum hba_addr_kind addr_kind;
	int family; /* AF_INET or AF_INET6 for HBA_ADDR_NET */
	uint8_t net[16], mask[16];
	enum auth_type method;
	char *map;
};

struct hba {
	struct hba_rule *rules;
	size_t n, cap;
};

/* One token of a logical line: its text with quotes removed. */
struct hba_tok {
	const char *s;
	bool quoted;
};

struct hba_field {
	size_t first, n; /* a range of hba_line.toks */
};

/*
 * A logical line split up. Decoded token text never exceeds the raw line
 * plus one terminator per token, and a token takes at least one raw byte
 * or a separator, hence twice the line length.
 */
struct hba_line {
	char text[2 * HBA_MAX_LINE + 2];
	size_t text_len;
	struct hba_tok *toks;
	size_t ntoks, cap;
	struct hba_field fields[HBA_MAX_FIELDS];
	size_t nfields;
};

struct hba_parser {
	const char *path; /* main file, for messages */
	char *dir;        /* where relative @file names are looked up; NULL = refused */
	int includes;
	char **err;
};

/* Where a record came from, for messages; chained through @file nesting. */
struct hba_where {
	const char *file;
	int line;
	const struct hba_where *parent;
};

static bool hba_fail(struct hba_parser *p, const struct hba_where *w, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

static bool hba_fail(struct hba_parser *p, const struct hba_where *w, const char *fmt, ...)
{
	if (!p->err || *p->err)
		return false;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->parent)
		*p->err = xasprintf("%s:%d: %s (in @file included from %s:%d)", w->file, w->line,
		                    msg, w->parent->file, w->parent->line);
	else
		*p->err = xasprintf("%s:%d: %s", w->file, w->line, msg);
	return false;
}

/* ---- reading ---- */

/* Directory part of path, "." if it has none. */
static char *hba_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* ---- splitting a line into fields and tokens ---- */

static bool hba_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void hba_line_reset(struct hba_line *l)
{
	l->text_len = 0;
	l->ntoks = 0;
	l->nfields = 0;
}

static void hba_push_tok(struct hba_line *l, const char *s, bool quoted)
{
	if (l->ntoks == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->toks = xrealloc(l->toks, l->cap * sizeof(*l->toks));
	}
	l->toks[l->ntoks].s = s;
	l->toks[l->ntoks].quoted = quoted;
	l->ntoks++;
}

/*
 * Splits src[0..len) into fields. Outside double quotes, blanks end a
 * field, a comma joins the next token to the same field (blanks may follow
 * it) and '#' ends the line. Inside quotes every byte is literal.
 */
static bool hba_split(struct hba_parser *p, const struct hba_where *w, const char *src, size_t len,
                      struct hba_line *l)
{
	size_t i = 0;
	hba_line_reset(l);
	for (;;) {
		while (i < len && hba_is_space(src[i]))
			i++;
		if (i == len || src[i] == '#')
			return true;
		if (l->nfields == HBA_MAX_FIELDS)
			return hba_fail(p, w, "more than %d fields", HBA_MAX_FIELDS);
		struct hba_field *f = &l->fields[l->nfields];
		f->first = l->ntoks;
		f->n = 0;
		for (;;) {
			char *start = l->text + l->text_len;
			bool quoted = false, in_quote = false;
			size_t n = 0;
			while (i < len) {
				char c = src[i];
				if (in_quote) {
					if (c == '"')
						in_quote = false;
					else
						start[n++] = c;
				} else if (c == '"') {
					in_quote = quoted = true;
				} else if (hba_is_space(c) || c == ',' || c == '#') {
					break;
				} else {
					start[n++] = c;
				}
				i++;
			}
			if (in_quote)
				return hba_fail(p, w, "unterminated quoted string");
			if (n == 0 && !quoted)
				return hba_fail(p, w, "empty element in a comma-separated list");
			start[n] = '\0';
			l->text_len += n + 1;
			hba_push_tok(l, start, quoted);
			f->n++;
			if (i < len && src[i] == ',') {
				i++;
				while (i < len && hba_is_space(src[i]))
					i++;
				if (i == len || src[i] == '#')
					return hba_fail(p, w, "list ends with a comma");
				continue;
			}
			break;
		}
		l->nfields++;
	}
}

/*
 * Walks buf one logical line at a time: physical lines ending in a
 * backslash are joined with the next. Calls fn with each logical line and
 * the number of its first physical line.
 */
typedef bool (*hba_line_fn)(struct hba_parser *p, const struct hba_where *w, const char *line,
                            size_t len, void *arg);

static bool hba_each_line(struct hba_parser *p, const char *file, const struct hba_where *parent,
                          const char *buf, size_t len, hba_line_fn fn, void *arg)
{
	char *acc = xmalloc(HBA_MAX_LINE + 1);
	size_t acc_len = 0;
	int lineno = 0, first = 1;
	size_t pos = 0;
	bool ok = true;
	while (ok && pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		size_t plen = end - pos;
		lineno++;
		if (acc_len == 0)
			first = lineno;
		struct hba_where w = {file, first, parent};
		if (memchr(buf + pos, '\0', plen)) {
			ok = hba_fail(p, &w, "NUL byte in line");
			break;
		}
		if (plen && buf[pos + plen - 1] == '\r')
			plen--;
		bool cont = plen && buf[pos + plen - 1] == '\\';
		if (cont)
			plen--;
		if (acc_len + plen > HBA_MAX_LINE) {
			ok = hba_fail(p, &w, "line longer than %d bytes", HBA_MAX_LINE);
			break;
		}
		memcpy(acc + acc_len, buf + pos, plen);
		acc_len += plen;
		pos = nl ? end + 1 : len;
		if (cont && pos < len)
			continue;
		ok = fn(p, &w, acc, acc_len, arg);
		acc_len = 0;
	}
	free(acc);
	return ok;
}

/* ---- name lists and @file ---- */

static void hba_names_push(struct hba_names *n, const char *s)
{
	if (n->n == n->cap) {
		n->cap = n->cap ? n->cap * 2 : 4;
		n->names = xrealloc(n->names, n->cap * sizeof(*n->names));
	}
	n->names[n->n++] = xstrdup(s);
}

static void hba_names_free(struct hba_names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->names[i]);
	FREE_AND_NULL(n->names);
	n->n = n->cap = 0;
}

static int hba_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool hba_names_has(const struct hba_names *n, const char *s)
{
	return n->n && bsearch(&s, n->names, n->n, sizeof(*n->names), hba_cmp_str) != NULL;
}

struct hba_item_ctx {
	struct hba_names *names;
	bool is_db;
	const char *dir; /* where the file being read lives */
	int depth;
};

static bool hba_add_item(struct hba_parser *p, const struct hba_where *w, struct hba_item_ctx *c,
                         const struct hba_tok *t);

struct hba_include_ctx {
	struct hba_item_ctx item;
	struct hba_line *line;
};

/* In an @file, every token of every field is one more list element. */
static bool hba_include_line(struct hba_parser *p, const struct hba_where *w, const char *s,
                             size_t len, void *arg)
{
	struct hba_include_ctx *ic = arg;
	if (!hba_split(p, w, s, len, ic->line))
		return false;
	for (size_t i = 0; i < ic->line->ntoks; i++)
		if (!hba_add_item(p, w, &ic->item, &ic->line->toks[i]))
			return false;
	return true;
}

static bool hba_include(struct hba_parser *p, const struct hba_where *w, struct hba_item_ctx *c,
                        const char *name)
{
	if (!p->dir)
		return hba_fail(p, w, "@file includes are not allowed here");
	if (!*name)
		return hba_fail(p, w, "@ without a file name");
	if (c->depth >= HBA_MAX_INCLUDE_DEPTH)
		return hba_fail(p, w, "@%s: @file nested more than %d deep", name,
		                HBA_MAX_INCLUDE_DEPTH);
	if (++p->includes > HBA_MAX_INCLUDES)
		return hba_fail(p, w, "@%s: more than %d @file includes", name, HBA_MAX_INCLUDES);

	char *path = name[0] == '/' ? xstrdup(name) : xasprintf("%s/%s", c->dir, name);
	char *rerr = NULL;
	size_t len = 0;
	char *buf = read_file(path, HBA_MAX_FILE_SIZE, &len, &rerr);
	if (!buf) {
		hba_fail(p, w, "@%s: %s", name, rerr);
		free(rerr);
		free(path);
		return false;
	}
	char *dir = hba_dirname(path);
	/* A fresh line buffer: the caller's tokens still point into its own. */
	struct hba_line *line = xcalloc(1, sizeof(*line));
	struct hba_include_ctx ic = {
	    .item = {.names = c->names, .is_db = c->is_db, .dir = dir, .depth = c->depth + 1},
	    .line = line,
	};
	bool ok = hba_each_line(p, path, w, buf, len, hba_include_line, &ic);
	free(line->toks);
	free(line);
	free(dir);
	free(buf);
	free(path);
	return ok;
}

static bool hba_add_item(struct hba_parser *p, const struct hba_where *w, struct hba_item_ctx *c,
                         const struct hba_tok *t)
{
	const char *s = t->s;
	if (t->quoted) {
		hba_names_push(c->names, s);
		return true;
	}
	if (strcmp(s, "all") == 0) {
		c->names->flags |= HBA_NAME_ALL;
		return true;
	}
	if (s[0] == '@')
		return hba_include(p, w, c, s + 1);
	if (s[0] == '/')
		return hba_fail(p, w, "regular expression \"%s\" is not supported", s);
	if (c->is_db) {
		if (strcmp(s, "sameuser") == 0) {
			c->names->flags |= HBA_NAME_SAMEUSER;
			return true;
		}
		if (strcmp(s, "replication") == 0) {
			c->names->flags |= HBA_NAME_REPLICATION;
			return true;
		}
		if (strcmp(s, "samerole") == 0 || strcmp(s, "samegroup") == 0)
			return hba_fail(p, w, "database keyword \"%s\" is not supported", s);
	} else if (s[0] == '+') {
		return hba_fail(p, w, "group membership \"%s\" is not supported", s);
	}
	hba_names_push(c->names, s);
	return true;
}

static bool hba_parse_names(struct hba_parser *p, const struct hba_where *w,
                            const struct hba_line *l, const struct hba_field *f, bool is_db,
                            struct hba_names *out)
{
	struct hba_item_ctx c = {.names = out, .is_db = is_db, .dir = p->dir, .depth = 0};
	for (size_t i = 0; i < f->n; i++)
		if (!hba_add_item(p, w, &c, &l->toks[f->first + i]))
			return false;
	if (out->n > 1)
		qsort(out->names, out->n, sizeof(*out->names), hba_cmp_str);
	return true;
}

/* ---- addresses ---- */

/* Parses a numeric IPv4 or IPv6 address into 4 or 16 bytes. */
static bool hba_parse_ip(const char *s, int *family, uint8_t out[16])
{
	memset(out, 0, 16);
	if (inet_pton(AF_INET, s, out) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, out) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

static void hba_prefix_mask(int bits, uint8_t mask[16])
{
	memset(mask, 0, 16);
	for (int i = 0; i < 16 && bits > 0; i++, bits -= 8)
		mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
}

static const struct hba_tok *hba_single(struct hba_parser *p, const struct hba_where *w,
                                        const struct hba_line *l, size_t field, const char *what)
{
	const struct hba_field *f = &l->fields[field];
	if (f->n != 1) {
		hba_fail(p, w, "%s cannot be a list", what);
		return NULL;
	}
	return &l->toks[f->first];
}

/*
 * Parses the address of a host record starting at field *fi, advancing it
 * past the address and, for the address-and-mask form, the mask.
 */
static bool hba_parse_address(struct hba_parser *p, const struct hba_where *w,
                              const struct hba_line *l, size_t *fi, struct hba_rule *r)
{
	const struct hba_tok *t = hba_single(p, w, l, *fi, "the address");
	if (!t)
		return false;
	(*fi)++;
	const char *s = t->s;
	if (!t->quoted) {
		if (strcmp(s, "all") == 0) {
			r->addr_kind = HBA_ADDR_ALL;
			return true;
		}
		if (strcmp(s, "samehost") == 0 || strcmp(s, "samenet") == 0)
			return hba_fail(p, w, "address keyword \"%s\" is not supported", s);
	}
	r->addr_kind = HBA_ADDR_NET;

	const char *slash = strchr(s, '/');
	if (slash) {
		char ip[INET6_ADDRSTRLEN + 1];
		size_t iplen = (size_t)(slash - s);
		if (iplen >= sizeof(ip))
			return hba_fail(p, w, "invalid address \"%s\"", s);
		memcpy(ip, s, iplen);
		ip[iplen] = '\0';
		if (!hba_parse_ip(ip, &r->family, r->net))
			return hba_fail(p, w, "invalid address \"%s\"", s);
		int maxbits = r->family == AF_INET ? 32 : 128, bits = 0;
		const char *d = slash + 1;
		if (!*d || strlen(d) > 3)
			return hba_fail(p, w, "invalid prefix length in \"%s\"", s);
		for (; *d; d++) {
			if (*d < '0' || *d > '9')
				return hba_fail(p, w, "invalid prefix length in \"%s\"", s);
			bits = bits * 10 + (*d - '0');
		}
		if (bits > maxbits)
			return hba_fail(p, w, "prefix length in \"%s\" exceeds %d", s, maxbits);
		hba_prefix_mask(bits, r->mask);
		return true;
	}

	if (!hba_parse_ip(s, &r->family, r->net)) {
		if (s[0] == '.')
			return hba_fail(p, w, "domain suffix \"%s\" is not supported", s);
		return hba_fail(p, w,
		                "invalid address \"%s\" (host names are not supported; "
		                "use an IP address with a /prefix or a mask column)",
		                s);
	}
	if (*fi >= l->nfields)
		return hba_fail(p, w, "address \"%s\" needs a /prefix or a mask column", s);
	const struct hba_tok *m = hba_single(p, w, l, *fi, "the mask");
	if (!m)
		return false;
	int mfam;
	if (!hba_parse_ip(m->s, &mfam, r->mask))
		return hba_fail(p, w, "address \"%s\" needs a /prefix or a mask column, not \"%s\"",
		                s, m->s);
	if (mfam != r->family)
		return hba_fail(p, w, "address \"%s\" and mask \"%s\" are of different families", s,
		                m->s);
	(*fi)++;
	return true;
}

/* ---- methods and options ---- */

static const struct {
	const char *name;
	enum auth_type type;
} hba_methods[] = {
    {"trust", AUTH_TYPE_TRUST},
    {"reject", AUTH_TYPE_REJECT},
    {"md5", AUTH_TYPE_MD5},
    {"password", AUTH_TYPE_PLAIN},
    {"scram-sha-256", AUTH_TYPE_SCRAM_SHA_256},
    {"cert", AUTH_TYPE_CERT},
    {"peer", AUTH_TYPE_PEER},
    {"oidc", AUTH_TYPE_OIDC},
    {"oauth", AUTH_TYPE_OAUTH},
};

/* Methods PostgreSQL knows that pgsieve cannot perform: named, so the error is clear. */
static const char *const hba_unsupported_methods[] = {
    "ident", "gss", "sspi", "ldap", "radius", "pam", "bsd", "any", "hba", "plain",
};

static bool hba_parse_method(struct hba_parser *p, const struct hba_where *w, const char *s,
                             struct hba_rule *r)
{
	/* PostgreSQL runs ident on a unix socket as peer; do the same. */
	if (r->conn == HBA_CONN_LOCAL && strcmp(s, "ident") == 0)
		s = "peer";
	for (size_t i = 0; i < ARRAY_SIZE(hba_methods); i++) {
		if (strcmp(s, hba_methods[i].name) == 0) {
			r->method = hba_methods[i].type;
			goto found;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(hba_unsupported_methods); i++)
		if (strcmp(s, hba_unsupported_methods[i]) == 0)
			return hba_fail(p, w, "authentication method \"%s\" is not supported here",
			                s);
	return hba_fail(p, w, "unknown authentication method \"%s\"", s);
found:
	if (r->method == AUTH_TYPE_PEER && r->conn != HBA_CONN_LOCAL)
		return hba_fail(p, w, "peer authentication is only possible on local lines");
	if (r->method == AUTH_TYPE_CERT && r->conn != HBA_CONN_HOSTSSL)
		return hba_fail(p, w, "cert authentication is only possible on hostssl lines");
	return true;
}

static bool hba_parse_option(struct hba_parser *p, const struct hba_where *w,
                             const struct hba_tok *t, struct hba_rule *r)
{
	const char *eq = strchr(t->s, '=');
	if (!eq || eq == t->s)
		return hba_fail(p, w, "option \"%s\" is not of the form name=value", t->s);
	size_t nlen = (size_t)(eq - t->s);
	if (nlen == 3 && memcmp(t->s, "map", 3) == 0) {
		if (r->method != AUTH_TYPE_CERT && r->method != AUTH_TYPE_PEER &&
		    r->method != AUTH_TYPE_OIDC && r->method != AUTH_TYPE_OAUTH)
			return hba_fail(p, w, "map= is only valid with cert, peer, oidc and oauth");
		if (r->map)
			return hba_fail(p, w, "map= given twice");
		if (!eq[1])
			return hba_fail(p, w, "map= needs a value");
		r->map = xstrdup(eq + 1);
		return true;
	}
	return hba_fail(p, w, "option \"%.*s\" is not supported", (int)nlen, t->s);
}

/* ---- records ---- */

static void hba_rule_clear(struct hba_rule *r)
{
	hba_names_free(&r->db);
	hba_names_free(&r->user);
	FREE_AND_NULL(r->map);
}

static bool hba_parse_record(struct hba_parser *p, const struct hba_where *w,
                             const struct hba_line *l, struct hba_rule *r)
{
	static const char *const field_names[] = {"connection type", "database", "user"};
	memset(r, 0, sizeof(*r));
	r->line = w->line;

	const struct hba_tok *t = hba_single(p, w, l, 0, "the connection type");
	if (!t)
		return false;
	if (strcmp(t->s, "local") == 0)
		r->conn = HBA_CONN_LOCAL;
	else if (strcmp(t->s, "host") == 0)
		r->conn = HBA_CONN_HOST;
	else if (strcmp(t->s, "hostssl") == 0)
		r->conn = HBA_CONN_HOSTSSL;
	else if (strcmp(t->s, "hostnossl") == 0)
		r->conn = HBA_CONN_HOSTNOSSL;
	else if (strcmp(t->s, "hostgssenc") == 0 || strcmp(t->s, "hostnogssenc") == 0)
		return hba_fail(p, w, "connection type \"%s\" is not supported", t->s);
	else
		return hba_fail(p, w, "unknown connection type \"%s\"", t->s);

	for (size_t i = 1; i < ARRAY_SIZE(field_names); i++)
		if (l->nfields <= i)
			return hba_fail(p, w, "end of line before the %s field", field_names[i]);
	if (!hba_parse_names(p, w, l, &l->fields[1], true, &r->db))
		return false;
	if (!hba_parse_names(p, w, l, &l->fields[2], false, &r->user))
		return false;

	size_t fi = 3;
	if (r->conn != HBA_CONN_LOCAL) {
		if (fi >= l->nfields)
			return hba_fail(p, w, "end of line before the address field");
		if (!hba_parse_address(p, w, l, &fi, r))
			return false;
	}
	if (fi >= l->nfields)
		return hba_fail(p, w, "end of line before the authentication method");
	t = hba_single(p, w, l, fi, "the authentication method");
	if (!t || !hba_parse_method(p, w, t->s, r))
		return false;
	for (fi++; fi < l->nfields; fi++) {
		t = hba_single(p, w, l, fi, "an option");
		if (!t || !hba_parse_option(p, w, t, r))
			return false;
	}
	return true;
}

struct hba_main_ctx {
	struct hba *hba;
	struct hba_line *line;
};

static bool hba_main_line(struct hba_parser *p, const struct hba_where *w, const char *s,
                          size_t len, void *arg)
{
	struct hba_main_ctx *mc = arg;
	if (!hba_split(p, w, s, len, mc->line))
		return false;
	if (mc->line->nfields == 0)
		return true;
	struct hba *h = mc->hba;
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->rules = xrealloc(h->rules, h->cap * sizeof(*h->rules));
	}
	struct hba_rule *r = &h->rules[h->n];
	if (!hba_parse_record(p, w, mc->line, r)) {
		hba_rule_clear(r);
		return false;
	}
	h->n++;
	return true;
}

struct hba *hba_parse_buffer(const char *buf, size_t len, const char *path, char **err)
{
	char *dummy = NULL;
	if (!err)
		err = &dummy;
	*err = NULL;
	struct hba_parser p = {
	    .path = path ? path : "<buffer>",
	    .dir = path ? hba_dirname(path) : NULL,
	    .err = err,
	};
	struct hba *h = xcalloc(1, sizeof(*h));
	struct hba_line *line = xcalloc(1, sizeof(*line));
	struct hba_main_ctx mc = {.hba = h, .line = line};
	bool ok =
	    hba_each_line(&p, p.path, NULL, buf ? buf : "", buf ? len : 0, hba_main_line, &mc);
	free(line->toks);
	free(line);
	free(p.dir);
	if (!ok) {
		if (!*err)
			*err = xasprintf("%s: cannot parse", p.path);
		free(dummy);
		hba_free(h);
		return NULL;
	}
	return h;
}

struct hba *hba_load(const char *path, char **err)
{
	char *dummy = NULL;
	if (!err)
		err = &dummy;
	*err = NULL;
	if (!path || !*path) {
		*err = xstrdup("auth_hba_file is not set");
		free(dummy);
		return NULL;
	}
	size_t len = 0;
	char *buf = read_file(path, HBA_MAX_FILE_SIZE, &len, err);
	if (!buf) {
		free(dummy);
		return NULL;
	}
	struct hba *h = hba_parse_buffer(buf, len, path, err);
	free(buf);
	free(dummy);
	return h;
}

void hba_free(struct hba *hba)
{
	if (!hba)
		return;
	for (size_t i = 0; i < hba->n; i++)
		hba_rule_clear(&hba->rules[i]);
	free(hba->rules);
	free(hba);
}

size_t hba_rule_count(const struct hba *hba)
{
	return hba ? hba->n : 0;
}

/* ---- matching ---- */

static bool hba_conn_matches(const struct hba_rule *r, const struct hba_request *req)
{
	if (req->is_unix)
		return r->conn == HBA_CONN_LOCAL;
	switch (r->conn) {
	case HBA_CONN_HOST:
		return true;
	case HBA_CONN_HOSTSSL:
		return req->is_tls;
	case HBA_CONN_HOSTNOSSL:
		return !req->is_tls;
	case HBA_CONN_LOCAL:
		break;
	}
	return false;
}

static bool hba_addr_matches(const struct hba_rule *r, const struct sockaddr *sa)
{
	if (r->addr_kind == HBA_ADDR_ALL)
		return true;
	if (r->addr_kind != HBA_ADDR_NET || !sa)
		return false;
	const uint8_t *a;
	size_t n;
	if (sa->sa_family == AF_INET && r->family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		n = 4;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		a = in6->s6_addr;
		n = 16;
		/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d. */
		if (r->family == AF_INET) {
			if (!IN6_IS_ADDR_V4MAPPED(in6))
				return false;
			a += 12;
			n = 4;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if ((a[i] & r->mask[i]) != (r->net[i] & r->mask[i]))
			return false;
	return true;
}

static bool hba_db_matches(const struct hba_rule *r, const struct hba_request *req)
{
	/* Replication connections name no database: only the keyword matches them. */
	if (req->replication)
		return (r->db.flags & HBA_NAME_REPLICATION) != 0;
	if (r->db.flags & HBA_NAME_ALL)
		return true;
	if ((r->db.flags & HBA_NAME_SAMEUSER) && strcmp(req->database, req->user) == 0)
		return true;
	return hba_names_has(&r->db, req->database);
}

static bool hba_user_matches(const struct hba_rule *r, const struct hba_request *req)
{
	return (r->user.flags & HBA_NAME_ALL) || hba_names_has(&r->user, req->user);
}

/* A replication request may leave database NULL; nothing else may be. */
static const struct hba_rule *hba_find(const struct hba *hba, const struct hba_request *req)
{
	if (!hba || !req || !req->user || (!req->database && !req->replication))
		return NULL;
	for (size_t i = 0; i < hba->n; i++) {
		const struct hba_rule *r = &hba->rules[i];
		if (!hba_conn_matches(r, req))
			continue;
		if (r->conn != HBA_CONN_LOCAL && !hba_addr_matches(r, req->addr))
			continue;
		if (hba_db_matches(r, req) && hba_user_matches(r, req))
			return r;
	}
	return NULL;
}

enum auth_type hba_match(const struct hba *hba, const struct hba_request *req, const char **map_out)
{
	const struct hba_rule *r = hba_find(hba, req);
	if (map_out)
		*map_out = r ? r->map : NULL;
	return r ? r->method : AUTH_TYPE_REJECT;
}

int hba_match_line(const struct hba *hba, const struct hba_request *req)
{
	const struct hba_rule *r = hba_find(hba, req);
	return r ? r->line : 0;
}
