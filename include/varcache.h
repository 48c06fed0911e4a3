/*
 * Server parameters the pooler tracks per connection, so that a client
 * keeps the settings it chose (client_encoding, DateStyle, TimeZone,
 * standard_conforming_strings, application_name, IntervalStyle, plus
 * track_extra_parameters) when transaction pooling moves it to another
 * server connection: before linking, the difference is applied with
 * set_config().
 */
#ifndef PGSIEVE_VARCACHE_H
#define PGSIEVE_VARCACHE_H

#include <stdbool.h>

#define VARCACHE_MAX 24

struct varcache {
	char *values[VARCACHE_MAX]; /* NULL = unknown */
};

/* Sets the tracked names: the built-in six and a comma-separated extra list. */
void varcache_setup(const char *extra);
void varcache_teardown(void);
int varcache_count(void);
const char *varcache_name(int i);
/* Index of a tracked parameter (case-insensitive), or -1. */
int varcache_index(const char *name);

/*
 * The setting identity_propagation = guc sets on a server for each client
 * it serves. The server never reports it and a client may change it, so
 * its value on a server is never taken as known: it is set at every link.
 */
#define VARCACHE_IDENTITY "pgsieve.identity"

/* Records a value if name is tracked; returns whether it changed. */
bool varcache_set(struct varcache *vc, const char *name, const char *value);
const char *varcache_get(const struct varcache *vc, int i);
void varcache_free(struct varcache *vc);

/*
 * One SELECT of set_config() calls that turns server's values into want's,
 * or NULL when nothing differs. Unknown wanted values are skipped.
 */
char *varcache_diff_sql(const struct varcache *want, const struct varcache *server);

#endif
