/*
 * The audit log; see audit.h. Records are built on the loop (jansson
 * escapes the strings), queued, and written by one thread that owns the
 * file descriptor.
 */
#include "audit.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "outcome.h"
#include "token.h"
#include "varcache.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Bytes queued for the writer at most; past it records are dropped, and counted. */
#define MAX_PENDING (4 * 1024 * 1024)

struct record {
	struct record *next;
	size_t len;
	char text[]; /* one JSON line, with its newline */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stop;
	struct record *head, **tail;
	size_t pending;
	int fd;      /* the writer's; -1: none */
	int next_fd; /* handed over by audit_configure; -2: no change */
	bool to_syslog;
	uint64_t written, lost;
} q = {PTHREAD_MUTEX_INITIALIZER,
       PTHREAD_COND_INITIALIZER,
       0,
       false,
       false,
       NULL,
       NULL,
       0,
       -1,
       -2,
       false,
       0,
       0};

static bool enabled;
/* Threads may start: after daemonize()'s fork, which would leave them behind. */
static bool may_start;

static void *writer(void *arg);

static bool start_writer(char **err)
{
	q.tail = &q.head;
	if (pthread_create(&q.thread, NULL, writer, NULL) != 0) {
		*err = xstrdup("could not start the audit writer thread");
		return false;
	}
	q.running = true;
	return true;
}

bool audit_enabled(void)
{
	return enabled;
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static void *writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&q.lock);
	for (;;) {
		while (!q.head && !q.stop && q.next_fd == -2)
			pthread_cond_wait(&q.wake, &q.lock);
		if (q.next_fd != -2) {
			if (q.fd >= 0)
				close(q.fd);
			q.fd = q.next_fd;
			q.next_fd = -2;
		}
		struct record *batch = q.head;
		q.head = NULL;
		q.tail = &q.head;
		size_t bytes = q.pending;
		q.pending = 0;
		int fd = q.fd;
		bool to_syslog = q.to_syslog;
		bool stopping = q.stop;
		pthread_mutex_unlock(&q.lock);
		uint64_t ok = 0, failed = 0;
		while (batch) {
			struct record *r = batch;
			batch = r->next;
			bool good = true;
			if (fd >= 0)
				good = write_all(fd, r->text, r->len);
			if (to_syslog)
				syslog(LOG_INFO | LOG_AUTHPRIV, "%.*s", (int)r->len - 1, r->text);
			if (good)
				ok++;
			else
				failed++;
			free(r);
		}
		(void)bytes;
		pthread_mutex_lock(&q.lock);
		q.written += ok;
		q.lost += failed;
		if (stopping && !q.head)
			break;
	}
	if (q.fd >= 0)
		close(q.fd);
	q.fd = -1;
	pthread_mutex_unlock(&q.lock);
	return NULL;
}

bool audit_configure(char **err)
{
	int fd = -1;
	if (cf->audit_file) {
		fd = open(cf->audit_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			*err = xasprintf("audit_file %s: %s", cf->audit_file, strerror(errno));
			return false;
		}
	}
	enabled = fd >= 0 || cf->audit_syslog;
	pthread_mutex_lock(&q.lock);
	if (q.next_fd >= 0)
		close(q.next_fd); /* two reloads before the writer woke */
	q.next_fd = fd;
	q.to_syslog = cf->audit_syslog;
	pthread_cond_signal(&q.wake);
	pthread_mutex_unlock(&q.lock);
	if (enabled && may_start && !q.running && !start_writer(err)) {
		enabled = false;
		return false;
	}
	return true;
}

bool audit_start(char **err)
{
	may_start = true;
	return !enabled || q.running || start_writer(err);
}

void audit_shutdown(void)
{
	if (!q.running) {
		if (q.next_fd >= 0)
			close(q.next_fd);
		q.next_fd = -2;
		return;
	}
	pthread_mutex_lock(&q.lock);
	q.stop = true;
	pthread_cond_signal(&q.wake);
	pthread_mutex_unlock(&q.lock);
	pthread_join(q.thread, NULL);
	if (q.next_fd >= 0)
		close(q.next_fd);
	q.next_fd = -2;
	q.running = false;
	q.stop = false;
	enabled = false;
}

void audit_get_stats(struct audit_stats *out)
{
	pthread_mutex_lock(&q.lock);
	out->written = q.written;
	out->lost = q.lost;
	out->pending = q.pending;
	pthread_mutex_unlock(&q.lock);
}

static void enqueue(json_t *obj)
{
	char *text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!text)
		return;
	size_t len = strlen(text);
	struct record *r = malloc(sizeof(*r) + len + 2);
	if (r) {
		memcpy(r->text, text, len);
		r->text[len] = '\n';
		r->text[len + 1] = '\0';
		r->len = len + 1;
		r->next = NULL;
	}
	free(text);
	pthread_mutex_lock(&q.lock);
	if (!r || q.pending + (r ? r->len : 0) > MAX_PENDING) {
		q.lost++;
		free(r);
	} else {
		*q.tail = r;
		q.tail = &r->next;
		q.pending += r->len;
		pthread_cond_signal(&q.wake);
	}
	pthread_mutex_unlock(&q.lock);
}

/* Now, as a record's "time": UTC, milliseconds. */
static void timestamp(char when[40])
{
	usec_t now = wall_usec();
	time_t secs = (time_t)(now / USEC_PER_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, 40 - n, ".%03dZ", (int)(now % USEC_PER_SEC / 1000));
}

/* The fields every record has: when, what, and whose session. */
static json_t *record(const char *event, const struct client *c)
{
	char when[40];
	timestamp(when);
	int app = varcache_index("application_name");
	const char *name = app >= 0 ? varcache_get(&c->vars, app) : NULL;
	json_t *r =
	    json_pack("{s:s, s:s, s:I, s:s, s:i, s:s?, s:s?, s:s?}", "time", when, "event", event,
	              "session", (json_int_t)c->id, "client_addr", c->addr_str, "client_port",
	              c->port, "database", c->dbname, "user", c->user, "application_name", name);
	if (r && c->identity) {
		json_object_set_new(r, "identity", json_string(c->identity->identity));
		/* An agent acting for a person (RFC 8693): both are who acted. */
		json_t *act =
		    c->identity->claims ? json_object_get(c->identity->claims, "act") : NULL;
		if (act)
			json_object_set(r, "act", act);
	}
	return r;
}

void audit_connect(const struct client *c)
{
	if (!enabled)
		return;
	json_t *r = record("connect", c);
	const struct token_identity *id = c->identity;
	if (id) {
		/* Which token: its issuer and id, never the token itself. */
		json_object_set_new(r, "issuer", json_string(id->issuer));
		if (id->jti)
			json_object_set_new(r, "jti", json_string(id->jti));
		json_t *groups = json_array();
		for (size_t i = 0; i < id->n_groups; i++)
			json_array_append_new(groups, json_string(id->groups[i]));
		json_object_set_new(r, "groups", groups);
	}
	enqueue(r);
}

void audit_login_failed(const struct client *c, const char *reason)
{
	if (!enabled)
		return;
	json_t *r = record("login_failed", c);
	json_object_set_new(r, "reason", json_string(reason));
	enqueue(r);
}

void audit_disconnect(const struct client *c)
{
	if (!enabled)
		return;
	json_t *r = record("disconnect", c);
	json_object_set_new(
	    r, "seconds",
	    json_integer((json_int_t)((now_usec() - c->connect_time) / USEC_PER_SEC)));
	enqueue(r);
}

/* libpg_query's fingerprint of text, or NULL. */
static char *fingerprint_of(const char *text)
{
	PgQueryFingerprintResult fp = pg_query_fingerprint(text);
	char *s = !fp.error && fp.fingerprint_str ? xstrdup(fp.fingerprint_str) : NULL;
	pg_query_free_fingerprint_result(fp);
	return s;
}

/* text with its constants replaced by $n: the log shows what ran, not the data it carried. */
static char *normalized_of(const char *text)
{
	PgQueryNormalizeResult nr = pg_query_normalize(text);
	char *s = xstrdup(nr.error ? "(not parsed)" : nr.normalized_query);
	pg_query_free_normalize_result(nr);
	return s;
}

/* The statement's text as audit_query_text says; normalized is made when needed. */
static void add_text(json_t *r, const char *key, const char *text, char **normalized)
{
	if (strcmp(cf->audit_query_text, "full") == 0) {
		json_object_set_new(r, key, json_string(text));
	} else if (strcmp(cf->audit_query_text, "normalized") == 0) {
		if (!*normalized)
			*normalized = normalized_of(text);
		json_object_set_new(r, key, json_string(*normalized));
	}
}

void audit_statement(const struct client *c, struct checked_stmt *st, const struct outcome *o)
{
	if (!enabled)
		return;
	json_t *r = record("statement", c);
	json_object_set_new(r, "protocol", json_string(st->extended ? "extended" : "simple"));
	json_object_set_new(r, "verdict", json_string(st->rewritten ? "rewrite" : "allow"));
	if (st->script)
		json_object_set_new(r, "script", json_string(st->script));
	if (!st->fingerprint)
		st->fingerprint = fingerprint_of(st->text);
	if (st->fingerprint)
		json_object_set_new(r, "fingerprint", json_string(st->fingerprint));
	add_text(r, "query", st->text, &st->normalized);
	if (st->rewritten) {
		char *normalized = NULL;
		add_text(r, "rewritten", st->sent, &normalized);
		free(normalized);
	}
	json_object_set_new(r, "result", json_string(outcome_status_name(o->status)));
	if (o->command)
		json_object_set_new(r, "command", json_string(o->command));
	json_object_set_new(r, "rows", json_integer((json_int_t)o->rows));
	json_object_set_new(r, "duration_ms", json_real((double)o->duration / 1000.0));
	if (o->sqlstate[0])
		json_object_set_new(r, "sqlstate", json_string(o->sqlstate));
	if (o->masked_columns || o->masked_values) {
		json_t *cols = json_array();
		char *copy = xstrdup(o->masked_columns ? o->masked_columns : ""), *save = NULL;
		for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save))
			json_array_append_new(cols, json_string(n));
		free(copy);
		json_object_set_new(r, "masked",
		                    json_pack("{s:o, s:I}", "columns", cols, "values",
		                              (json_int_t)o->masked_values));
	}
	enqueue(r);
}

void audit_denied(const struct client *c, const char *sql, size_t len, bool extended,
                  const char *phase, const char *script, const char *sqlstate)
{
	if (!enabled)
		return;
	char *text = xstrndup(sql, len);
	json_t *r = record("statement", c);
	json_object_set_new(r, "protocol", json_string(extended ? "extended" : "simple"));
	json_object_set_new(r, "verdict", json_string("deny"));
	json_object_set_new(r, "phase", json_string(phase));
	if (script)
		json_object_set_new(r, "script", json_string(script));
	json_object_set_new(r, "sqlstate", json_string(sqlstate));
	char *fingerprint = fingerprint_of(text), *normalized = NULL;
	if (fingerprint)
		json_object_set_new(r, "fingerprint", json_string(fingerprint));
	add_text(r, "query", text, &normalized);
	free(fingerprint);
	free(normalized);
	free(text);
	enqueue(r);
}

void audit_approval(const struct audit_approval *a)
{
	if (!enabled)
		return;
	char when[40];
	timestamp(when);
	json_t *r = json_pack("{s:s, s:s, s:I}", "time", when, "event", a->event, "approval",
	                      (json_int_t)a->approval_id);
	if (!r)
		return;
	if (a->grant_id)
		json_object_set_new(r, "grant", json_integer((json_int_t)a->grant_id));
	if (a->session)
		json_object_set_new(r, "session", json_integer((json_int_t)a->session));
	const struct {
		const char *key, *value;
	} fields[] = {
	    {"client_addr", a->client_addr},
	    {"database", a->database},
	    {"user", a->user},
	    {"identity", a->identity},
	    {"principal", a->principal},
	    {"fingerprint", a->fingerprint},
	    {"reason", a->reason},
	    {"script", a->script},
	    {"approver", a->approver},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i].value)
			json_object_set_new(r, fields[i].key, json_string(fields[i].value));
	if (a->statement) {
		char *normalized = NULL;
		add_text(r, "query", a->statement, &normalized);
		free(normalized);
	}
	if (a->seconds >= 0)
		json_object_set_new(r, "seconds", json_real(a->seconds));
	enqueue(r);
}
