/*
 * pg_ident.conf-style user name maps; see ident.h.
 */
#include "ident.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

/* A line longer than this is not a name map. */
#define MAX_LINE 4096
/* A file larger than this is not one either. */
#define MAX_FILE (4 * 1024 * 1024)

enum ident_kind {
	IDENT_EXACT,
	IDENT_REGEX,
	IDENT_GROUP,
};

struct ident_line {
	char *map;
	char *system; /* exact name, regex source without its "/", or group without its "+" */
	char *role;
	enum ident_kind kind;
	regex_t re;
	struct ident_line *next;
};

struct ident_map {
	struct ident_line *lines; /* in file order: the first match wins */
};

/*
 * Next whitespace-separated token, "double quotes" allowed; NULL at end of
 * line. Sets *quoted_out if it had quotes: as in PostgreSQL, "+name" in
 * quotes is a literal name, not a group.
 */
static char *next_token(char **p, bool *bad, bool *quoted_out)
{
	char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '#')
		return NULL;
	char *out = s, *w = s;
	bool quoted = false;
	while (*s && (quoted || (*s != ' ' && *s != '\t' && *s != '#'))) {
		if (*s == '"') {
			if (quoted && s[1] == '"') { /* "" inside quotes is one quote */
				*w++ = '"';
				s += 2;
				continue;
			}
			quoted = !quoted;
			*quoted_out = true;
			s++;
			continue;
		}
		*w++ = *s++;
	}
	if (quoted)
		*bad = true;
	if (*s && *s != '#')
		s++;
	else if (*s == '#')
		*s = '\0';
	*p = s;
	*w = '\0';
	return out;
}

void ident_free(struct ident_map *m)
{
	if (!m)
		return;
	while (m->lines) {
		struct ident_line *l = m->lines;
		m->lines = l->next;
		if (l->kind == IDENT_REGEX)
			regfree(&l->re);
		free(l->map);
		free(l->system);
		free(l->role);
		free(l);
	}
	free(m);
}

struct ident_map *ident_parse(const char *text, const char *name, char **err)
{
	struct ident_map *m = xcalloc(1, sizeof(*m));
	struct ident_line **tail = &m->lines;
	const char *p = text;
	for (int lineno = 1; *p; lineno++) {
		size_t len = strcspn(p, "\n");
		if (len >= MAX_LINE) {
			*err = xasprintf("%s:%d: line too long", name, lineno);
			ident_free(m);
			return NULL;
		}
		char buf[MAX_LINE];
		memcpy(buf, p, len);
		buf[len] = '\0';
		if (len && buf[len - 1] == '\r')
			buf[len - 1] = '\0';
		p += len + (p[len] == '\n');
		char *cur = buf;
		bool bad = false;
		char *tok[4];
		bool quoted[4] = {false};
		int n = 0;
		for (char *t; n < 4 && (t = next_token(&cur, &bad, &quoted[n]));)
			tok[n++] = t;
		if (n == 0 && !bad)
			continue;
		if (bad || n != 3) {
			*err = xasprintf("%s:%d: expected MAPNAME SYSTEM-NAME ROLE", name, lineno);
			ident_free(m);
			return NULL;
		}
		enum ident_kind kind = tok[1][0] == '/'                 ? IDENT_REGEX
		                       : tok[1][0] == '+' && !quoted[1] ? IDENT_GROUP
		                                                        : IDENT_EXACT;
		if (kind == IDENT_GROUP && (!tok[1][1] || strstr(tok[2], "\\1"))) {
			*err = xasprintf("%s:%d: %s", name, lineno,
			                 tok[1][1] ? "a +group line's ROLE cannot use \\1"
			                           : "empty group name after +");
			ident_free(m);
			return NULL;
		}
		struct ident_line *l = xcalloc(1, sizeof(*l));
		l->map = xstrdup(tok[0]);
		l->kind = kind;
		l->system = xstrdup(kind == IDENT_EXACT ? tok[1] : tok[1] + 1);
		l->role = xstrdup(tok[2]);
		*tail = l;
		tail = &l->next;
		if (kind == IDENT_REGEX) {
			int rc = regcomp(&l->re, l->system, REG_EXTENDED);
			if (rc != 0) {
				char why[128];
				regerror(rc, &l->re, why, sizeof(why));
				l->kind = IDENT_EXACT; /* nothing compiled to free */
				*err = xasprintf("%s:%d: bad regular expression /%s: %s", name,
				                 lineno, l->system, why);
				ident_free(m);
				return NULL;
			}
		}
	}
	return m;
}

struct ident_map *ident_load(const char *path, char **err)
{
	size_t n;
	char *why = NULL;
	char *text = read_file(path, MAX_FILE, &n, &why);
	if (!text) {
		*err = xasprintf("auth_ident_file %s", why);
		free(why);
		return NULL;
	}
	struct ident_map *m = ident_parse(text, path, err);
	free(text);
	return m;
}

/* ROLE with \1 replaced by the first group of the match. */
static bool role_matches(const char *pattern, const char *who, const regmatch_t *group,
                         const char *role)
{
	const char *sub = strstr(pattern, "\\1");
	if (!sub || !group || group->rm_so < 0)
		return strcmp(pattern, role) == 0;
	size_t prefix = (size_t)(sub - pattern);
	size_t glen = (size_t)(group->rm_eo - group->rm_so);
	const char *rest = sub + 2;
	return strlen(role) == prefix + glen + strlen(rest) &&
	       strncmp(role, pattern, prefix) == 0 &&
	       strncmp(role + prefix, who + group->rm_so, glen) == 0 &&
	       strcmp(role + prefix + glen, rest) == 0;
}

static bool has_group(const char *group, const char *const *groups, size_t n_groups)
{
	for (size_t i = 0; i < n_groups; i++)
		if (strcmp(groups[i], group) == 0)
			return true;
	return false;
}

bool ident_allows_groups(const struct ident_map *m, const char *map_name, const char *who,
                         const char *const *groups_of_who, size_t n_groups, const char *role)
{
	for (const struct ident_line *l = m ? m->lines : NULL; l; l = l->next) {
		if (strcmp(l->map, map_name) != 0)
			continue;
		if (l->kind == IDENT_EXACT) {
			if (strcmp(l->system, who) == 0 && strcmp(l->role, role) == 0)
				return true;
			continue;
		}
		if (l->kind == IDENT_GROUP) {
			if (strcmp(l->role, role) == 0 &&
			    has_group(l->system, groups_of_who, n_groups))
				return true;
			continue;
		}
		regmatch_t groups[2];
		if (regexec(&l->re, who, 2, groups, 0) != 0)
			continue;
		if (role_matches(l->role, who, l->re.re_nsub >= 1 ? &groups[1] : NULL, role))
			return true;
	}
	return false;
}

bool ident_allows(const struct ident_map *m, const char *map_name, const char *who,
                  const char *role)
{
	return ident_allows_groups(m, map_name, who, NULL, 0, role);
}
