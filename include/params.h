/*
 * An ordered list of (name, value) pairs: the ParameterStatus messages a
 * server sent at login. A pool keeps the first one as its welcome, which
 * every client receives at login (with its own tracked values on top).
 */
#ifndef PGSIEVE_PARAMS_H
#define PGSIEVE_PARAMS_H

#include "pktbuf.h"
#include "varcache.h"

#define PARAMS_MAX 64

struct param_list {
	int count;
	char *names[PARAMS_MAX];
	char *values[PARAMS_MAX];
};

struct param_list *params_new(void);
void params_free(struct param_list *pl);
/* Adds or replaces; silently keeps the first PARAMS_MAX names. */
void params_set(struct param_list *pl, const char *name, const char *value);
const char *params_get(const struct param_list *pl, const char *name);
/* Appends ParameterStatus messages: pl's values, overridden by vars where known. */
void params_build(const struct param_list *pl, const struct varcache *vars, struct pktbuf *pb);

#endif
