/*
 * Parameter lists are short (PostgreSQL reports about fifteen names), so
 * a linear array is both the simplest and the fastest structure.
 */
#include "params.h"
#include "proto.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct param_list *params_new(void)
{
	return xcalloc(1, sizeof(struct param_list));
}

void params_free(struct param_list *pl)
{
	if (!pl)
		return;
	for (int i = 0; i < pl->count; i++) {
		free(pl->names[i]);
		free(pl->values[i]);
	}
	free(pl);
}

void params_set(struct param_list *pl, const char *name, const char *value)
{
	for (int i = 0; i < pl->count; i++) {
		if (strcasecmp(pl->names[i], name) == 0) {
			free(pl->values[i]);
			pl->values[i] = xstrdup(value);
			return;
		}
	}
	if (pl->count == PARAMS_MAX)
		return;
	pl->names[pl->count] = xstrdup(name);
	pl->values[pl->count] = xstrdup(value);
	pl->count++;
}

const char *params_get(const struct param_list *pl, const char *name)
{
	for (int i = 0; i < pl->count; i++)
		if (strcasecmp(pl->names[i], name) == 0)
			return pl->values[i];
	return NULL;
}

void params_build(const struct param_list *pl, const struct varcache *vars, struct pktbuf *pb)
{
	for (int i = 0; i < pl->count; i++) {
		const char *value = pl->values[i];
		int v = varcache_index(pl->names[i]);
		if (v >= 0 && vars && varcache_get(vars, v))
			value = varcache_get(vars, v);
		proto_build_parameter_status(pb, pl->names[i], value);
	}
}
