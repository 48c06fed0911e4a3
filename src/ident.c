/*
 * pg_ident.conf-style user name maps; see ident.h.
 */
#include "ident.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A line longer than this is not a name map. */
#define MAX_LINE 4096
/* A file larger than this is not one either. */
#define MAX_FILE (4 * 1024 * 1024)

struct ident_line {
	char *map;
	char *system; /* exact name, or the regex source without its "/" */
	char *role;
	bool is_regex;
	regex_t re;
	struct ident_line *next;
};

struct ident_map {
	struct ident_line *lines; /* in file order: the first match wins */
};

/* Next whitespace-separated token, "double quotes" allowed; NULL at end of line. */
static char *next_token(char **p, bool *bad)
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
		if (l->is_regex)
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
		int n = 0;
		for (char *t; n < 4 && (t = next_token(&cur, &bad));)
			tok[n++] = t;
		if (n == 0 && !bad)
			continue;
		if (bad || n != 3) {
			*err = xasprintf("%s:%d: expected MAPNAME SYSTEM-NAME ROLE", name, lineno);
			ident_free(m);
			return NULL;
		}
		struct ident_line *l = xcalloc(1, sizeof(*l));
		l->map = xstrdup(tok[0]);
		l->is_regex = tok[1][0] == '/';
		l->system = xstrdup(l->is_regex ? tok[1] + 1 : tok[1]);
		l->role = xstrdup(tok[2]);
		*tail = l;
		tail = &l->next;
		if (l->is_regex) {
			int rc = regcomp(&l->re, l->system, REG_EXTENDED);
			if (rc != 0) {
				char why[128];
				regerror(rc, &l->re, why, sizeof(why));
				l->is_regex = false; /* nothing compiled to free */
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
	FILE *f = fopen(path, "r");
	if (!f) {
		*err = xasprintf("auth_ident_file %s: %s", path, strerror(errno));
		return NULL;
	}
	char *text = xmalloc(MAX_FILE + 1);
	size_t n = fread(text, 1, MAX_FILE + 1, f);
	bool failed = ferror(f);
	fclose(f);
	if (failed || n > MAX_FILE) {
		*err = xasprintf("auth_ident_file %s: %s", path,
		                 failed ? "read error" : "larger than 4 MB");
		free(text);
		return NULL;
	}
	text[n] = '\0';
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

bool ident_allows(const struct ident_map *m, const char *map_name, const char *who,
                  const char *role)
{
	for (const struct ident_line *l = m ? m->lines : NULL; l; l = l->next) {
		if (strcmp(l->map, map_name) != 0)
			continue;
		if (!l->is_regex) {
			if (strcmp(l->system, who) == 0 && strcmp(l->role, role) == 0)
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
