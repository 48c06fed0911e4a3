/*
 * Parameter tracking. Names are compared case-insensitively, as the
 * server does; values exactly, because the server reports its canonical
 * spelling and we adopt that as soon as it is reported.
 */
#include "varcache.h"
#include "log.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const builtin_names[] = {
    "client_encoding",  "DateStyle", "TimeZone", "IntervalStyle", "standard_conforming_strings",
    "application_name",
};

static char *names[VARCACHE_MAX];
static int name_count;

void varcache_teardown(void)
{
	for (int i = 0; i < name_count; i++)
		FREE_AND_NULL(names[i]);
	name_count = 0;
}

void varcache_setup(const char *extra)
{
	varcache_teardown();
	for (size_t i = 0; i < ARRAY_SIZE(builtin_names); i++)
		names[name_count++] = xstrdup(builtin_names[i]);
	if (!extra)
		return;
	const char *p = extra;
	while (*p) {
		p += strspn(p, ", \t");
		size_t len = strcspn(p, ", \t");
		if (len == 0)
			break;
		char *name = xstrndup(p, len);
		p += len;
		if (varcache_index(name) >= 0) {
			free(name);
			continue;
		}
		if (name_count == VARCACHE_MAX) {
			log_warning("track_extra_parameters: too many parameters, ignoring \"%s\"",
			            name);
			free(name);
			continue;
		}
		names[name_count++] = name;
	}
}

int varcache_count(void)
{
	return name_count;
}

const char *varcache_name(int i)
{
	return names[i];
}

int varcache_index(const char *name)
{
	for (int i = 0; i < name_count; i++)
		if (strcasecmp(names[i], name) == 0)
			return i;
	return -1;
}

bool varcache_set(struct varcache *vc, const char *name, const char *value)
{
	int i = varcache_index(name);
	if (i < 0)
		return false;
	if (vc->values[i] && strcmp(vc->values[i], value) == 0)
		return false;
	free(vc->values[i]);
	vc->values[i] = xstrdup(value);
	return true;
}

const char *varcache_get(const struct varcache *vc, int i)
{
	return vc->values[i];
}

void varcache_free(struct varcache *vc)
{
	for (int i = 0; i < VARCACHE_MAX; i++)
		FREE_AND_NULL(vc->values[i]);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap = *cap ? *cap * 2 : 128;
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/*
 * One statement of set_config() calls. set_config() parses the value as
 * the configuration file would, so list settings such as search_path
 * keep their elements; the E'' literal with quotes and backslashes
 * doubled means the same whatever standard_conforming_strings is.
 */
static void append_literal(char **buf, size_t *len, size_t *cap, const char *v)
{
	append(buf, len, cap, "E'", 2);
	for (const char *p = v; *p; p++) {
		if (*p == '\'' || *p == '\\')
			append(buf, len, cap, p, 1);
		append(buf, len, cap, p, 1);
	}
	append(buf, len, cap, "'", 1);
}

char *varcache_diff_sql(const struct varcache *want, const struct varcache *server)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (int i = 0; i < name_count; i++) {
		const char *w = want->values[i], *s = server->values[i];
		if (!w || (s && strcmp(w, s) == 0))
			continue;
		append(&buf, &len, &cap, len ? ", " : "SELECT ", len ? 2 : 7);
		append(&buf, &len, &cap, "pg_catalog.set_config(", 22);
		append_literal(&buf, &len, &cap, names[i]);
		append(&buf, &len, &cap, ", ", 2);
		append_literal(&buf, &len, &cap, w);
		append(&buf, &len, &cap, ", false)", 8);
	}
	return buf;
}
