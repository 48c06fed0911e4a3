/*
 * The approval store: pending requests with their deadlines, the grants
 * answers made, the webhook that announces requests, and the audit
 * records; see approvals.h.
 *
 * Lists, not hash tables: a few hundred requests are looked at by
 * people, and a lookup by id walks them in microseconds. Grants are
 * looked up on each statement that asks for approval (not on every
 * statement), and expired ones are dropped as the walk meets them.
 */
#include "approvals.h"
#include "audit.h"
#include "config.h"
#include "fetch.h"
#include "list.h"
#include "log.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pending {
	struct list_node node;
	struct approval_info info;
	approval_done_fn done;
	void *owner;
	struct event *timer;
};

struct grant {
	struct list_node node;
	struct approval_grant info;
};

static struct event_base *loop;
static struct list_node pending_list = LIST_INIT(pending_list);
static struct list_node grant_list = LIST_INIT(grant_list);
static size_t n_pending, n_grants;
static uint64_t next_id = 1, next_grant_id = 1;

/* Webhook deliveries: at most WEBHOOK_IN_FLIGHT at once, WEBHOOK_QUEUE waiting. */
#define WEBHOOK_IN_FLIGHT     8
#define WEBHOOK_QUEUE         1024
#define WEBHOOK_ATTEMPTS      4
#define WEBHOOK_TIMEOUT       (10 * USEC_PER_SEC)
#define WEBHOOK_FIRST_BACKOFF USEC_PER_SEC

struct delivery {
	struct list_node node; /* queued, or sending */
	uint64_t id;
	char *url;
	char *body;
	int attempts;
	struct fetch *fetch;
	struct event *retry; /* waiting for its next attempt */
};

static struct list_node webhook_queue = LIST_INIT(webhook_queue);
static struct list_node webhook_busy = LIST_INIT(webhook_busy);
static size_t n_queued, n_busy;

/* Audit */

static void audit_request(const char *event, const struct approval_info *a, const char *by,
                          const char *reason, usec_t waited)
{
	struct audit_approval r = {
	    .event = event,
	    .approval_id = a->id,
	    .session = a->session,
	    .client_addr = a->client_addr,
	    .database = a->database,
	    .user = a->user,
	    .identity = a->identity,
	    .fingerprint = a->fingerprint,
	    .statement = a->statement,
	    .reason = reason ? reason : a->reason,
	    .script = a->script,
	    .approver = by,
	    .seconds = waited >= 0 ? (double)waited / USEC_PER_SEC : -1,
	};
	audit_approval(&r);
}

static void audit_grant(const char *event, const struct approval_grant *g, const char *by,
                        uint64_t session, const char *client_addr, const char *user,
                        const char *identity)
{
	struct audit_approval r = {
	    .event = event,
	    .approval_id = g->approval_id,
	    .grant_id = g->id,
	    .session = session,
	    .client_addr = client_addr,
	    .database = g->database,
	    .user = user,
	    .identity = identity,
	    .principal = g->principal,
	    .fingerprint = g->fingerprint,
	    .statement = g->statement,
	    .approver = by,
	    .seconds = -1,
	};
	audit_approval(&r);
}

/* Webhook */

static void webhook_pump(void);

static void delivery_free(struct delivery *d)
{
	list_del(&d->node);
	if (d->retry)
		event_free(d->retry);
	free(d->url);
	free(d->body);
	free(d);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct delivery *d = arg;
	event_free(d->retry);
	d->retry = NULL;
	list_del(&d->node);
	n_busy--;
	list_prepend(&webhook_queue, &d->node); /* a retry goes before new ones */
	n_queued++;
	webhook_pump();
}

static void on_delivered(void *arg, int status, const char *body, size_t len, const char *err)
{
	(void)body;
	(void)len;
	struct delivery *d = arg;
	d->fetch = NULL;
	if (!err && status >= 200 && status < 300) {
		log_debug("approval %llu: webhook answered %d", (unsigned long long)d->id, status);
		n_busy--;
		delivery_free(d);
		webhook_pump();
		return;
	}
	char why[64];
	if (!err) {
		snprintf(why, sizeof(why), "HTTP status %d", status);
		err = why;
	}
	if (d->attempts >= WEBHOOK_ATTEMPTS) {
		log_warning("approval %llu: webhook failed %d times, giving up: %s",
		            (unsigned long long)d->id, d->attempts, err);
		n_busy--;
		delivery_free(d);
		webhook_pump();
		return;
	}
	/* 1 s, 2 s, 4 s...: a receiver that is down for a moment still hears of it. */
	usec_t wait = WEBHOOK_FIRST_BACKOFF << (d->attempts - 1);
	log_info("approval %llu: webhook attempt %d failed (%s), again in %llds",
	         (unsigned long long)d->id, d->attempts, err, (long long)(wait / USEC_PER_SEC));
	d->retry = evtimer_new(loop, on_retry, d);
	struct timeval tv = {(time_t)(wait / USEC_PER_SEC), (suseconds_t)(wait % USEC_PER_SEC)};
	evtimer_add(d->retry, &tv);
	webhook_pump();
}

/* Starts queued deliveries while fewer than WEBHOOK_IN_FLIGHT are under way. */
static void webhook_pump(void)
{
	while (n_busy < WEBHOOK_IN_FLIGHT && !list_empty(&webhook_queue)) {
		struct delivery *d =
		    container_of(list_first(&webhook_queue), struct delivery, node);
		list_del(&d->node);
		n_queued--;
		list_append(&webhook_busy, &d->node);
		n_busy++;
		d->attempts++;
		struct fetch_request req = {
		    .method = "POST",
		    .url = d->url,
		    .content_type = "application/json",
		    .body = d->body,
		    .body_len = strlen(d->body),
		    .timeout = WEBHOOK_TIMEOUT,
		    .max_size = 64 * 1024,
		    .ca_file = cf->approval_webhook_ca_file,
		};
		char *err = NULL;
		d->fetch = fetch_start(&req, on_delivered, d, &err);
		if (!d->fetch) {
			log_warning("approval %llu: webhook not sent: %s",
			            (unsigned long long)d->id, err);
			free(err);
			n_busy--;
			delivery_free(d);
		}
	}
}

static char *wall_string(usec_t wall, char *buf, size_t len)
{
	time_t secs = (time_t)(wall / USEC_PER_SEC);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static void webhook_announce(const struct approval_info *a)
{
	if (!cf->approval_webhook_url)
		return;
	if (n_queued >= WEBHOOK_QUEUE) {
		log_warning("approval %llu: webhook queue full (%d), not announced",
		            (unsigned long long)a->id, WEBHOOK_QUEUE);
		return;
	}
	char requested[32], expires[32];
	json_t *o =
	    json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?, s:s, s:s, s:s?, s:s, s:s, s:I}", "id",
	              (json_int_t)a->id, "database", a->database, "user", a->user, "identity",
	              a->identity, "client_addr", a->client_addr, "fingerprint", a->fingerprint,
	              "statement", a->statement, "reason", a->reason, "script", a->script,
	              "requested_at", wall_string(a->requested_at, requested, sizeof(requested)),
	              "expires_at", wall_string(a->expires_at, expires, sizeof(expires)), "session",
	              (json_int_t)a->session);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return;
	struct delivery *d = xcalloc(1, sizeof(*d));
	list_init(&d->node);
	d->id = a->id;
	d->url = xstrdup(cf->approval_webhook_url);
	d->body = body;
	list_append(&webhook_queue, &d->node);
	n_queued++;
	webhook_pump();
}

/* Pending requests */

static void pending_free(struct pending *p)
{
	list_del(&p->node);
	if (p->timer)
		event_free(p->timer);
	struct approval_info *a = &p->info;
	free(a->database);
	free(a->user);
	free(a->identity);
	free(a->client_addr);
	free(a->fingerprint);
	free(a->statement);
	free(a->reason);
	free(a->script);
	free(a->approvers);
	free(p);
}

static struct pending *find_pending(uint64_t id)
{
	struct list_node *it;
	list_for_each(it, &pending_list)
	{
		struct pending *p = container_of(it, struct pending, node);
		if (p->info.id == id)
			return p;
	}
	return NULL;
}

/*
 * Takes the request out of the store, then tells its owner: the callback
 * may withdraw or request again without meeting it.
 */
static void finish(struct pending *p, const struct approval_answer *answer)
{
	approval_done_fn done = p->done;
	void *owner = p->owner;
	list_del(&p->node);
	n_pending--;
	done(owner, answer);
	pending_free(p);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pending *p = arg;
	usec_t waited = now_usec() - p->info.requested_mono;
	log_info("approval %llu timed out after %llds", (unsigned long long)p->info.id,
	         (long long)(waited / USEC_PER_SEC));
	audit_request("approval_timeout", &p->info, NULL, NULL, waited);
	struct approval_answer ans = {.outcome = APPROVAL_TIMED_OUT,
	                              .id = p->info.id,
	                              .reason = p->info.reason,
	                              .waited = waited};
	finish(p, &ans);
}

void approvals_init(struct event_base *base)
{
	loop = base;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

bool approvals_request(const struct approval_request *req, approval_done_fn done, void *owner,
                       uint64_t *id, char **err, const char **sqlstate)
{
	if (n_pending >= (size_t)cf->approval_max_pending) {
		*err =
		    xasprintf("too many statements wait for approval (approval_max_pending = %d): "
		              "try again later",
		              cf->approval_max_pending);
		*sqlstate = "53300";
		return false;
	}
	struct pending *p = xcalloc(1, sizeof(*p));
	list_init(&p->node);
	struct approval_info *a = &p->info;
	a->id = next_id++;
	a->session = req->session;
	a->database = xstrdup(req->database);
	a->user = xstrdup(req->user);
	a->identity = dup_or_null(req->identity);
	a->client_addr = xstrdup(req->client_addr);
	a->fingerprint = xstrdup(req->fingerprint ? req->fingerprint : "");
	a->statement = xstrdup(req->statement);
	a->reason = xstrdup(req->reason);
	a->script = dup_or_null(req->script);
	a->approvers = req->approvers && *req->approvers ? xstrdup(req->approvers) : NULL;
	a->requested_mono = now_usec();
	a->requested_at = wall_usec();
	a->expires_at = a->requested_at + req->timeout;
	p->done = done;
	p->owner = owner;
	p->timer = evtimer_new(loop, on_timeout, p);
	struct timeval tv = {(time_t)(req->timeout / USEC_PER_SEC),
	                     (suseconds_t)(req->timeout % USEC_PER_SEC)};
	evtimer_add(p->timer, &tv);
	list_append(&pending_list, &p->node);
	n_pending++;
	*id = a->id;
	audit_request("approval_request", a, NULL, NULL, -1);
	webhook_announce(a);
	return true;
}

void approvals_withdraw(uint64_t id, const char *why)
{
	struct pending *p = find_pending(id);
	if (!p)
		return;
	audit_request("approval_withdrawn", &p->info, NULL, why,
	              now_usec() - p->info.requested_mono);
	n_pending--;
	pending_free(p);
}

static bool same_name(const char *a, const char *b)
{
	return a && b && *a && strcmp(a, b) == 0;
}

/* Whoever sent the statement, under either of their names, may not approve it. */
static bool is_self(const struct approval_info *a, const struct approver *who)
{
	return same_name(who->user, a->user) || same_name(who->user, a->identity) ||
	       same_name(who->identity, a->user) || same_name(who->identity, a->identity);
}

/* Grants */

static void grant_free(struct grant *g)
{
	list_del(&g->node);
	free(g->info.database);
	free(g->info.principal);
	free(g->info.fingerprint);
	free(g->info.statement);
	free(g->info.granted_by);
	free(g);
	n_grants--;
}

/* Drops the grants whose time is over. */
static void expire_grants(void)
{
	usec_t now = now_usec();
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &grant_list)
	{
		struct grant *g = container_of(it, struct grant, node);
		if (g->info.expires_mono <= now) {
			audit_grant("grant_expired", &g->info, NULL, 0, NULL, NULL, NULL);
			grant_free(g);
		}
	}
}

static uint64_t add_grant(const struct approval_info *a, const char *by, usec_t duration)
{
	struct grant *g = xcalloc(1, sizeof(*g));
	list_init(&g->node);
	struct approval_grant *i = &g->info;
	i->id = next_grant_id++;
	i->approval_id = a->id;
	i->database = xstrdup(a->database);
	i->principal = xstrdup(a->identity ? a->identity : a->user);
	i->fingerprint = xstrdup(a->fingerprint);
	i->statement = xstrdup(a->statement);
	i->granted_by = xstrdup(by);
	i->granted_at = wall_usec();
	i->expires_at = i->granted_at + duration;
	i->expires_mono = now_usec() + duration;
	list_append(&grant_list, &g->node);
	n_grants++;
	audit_grant("grant_created", i, by, a->session, a->client_addr, a->user, a->identity);
	return i->id;
}

enum approvals_status approvals_answer(uint64_t id, bool approve, const struct approver *who,
                                       const char *reason, usec_t grant_for, uint64_t *grant_id)
{
	struct pending *p = find_pending(id);
	if (!p)
		return APPROVALS_UNKNOWN;
	struct approval_info *a = &p->info;
	if (is_self(a, who))
		return APPROVALS_SELF;
	if (a->approvers && !config_list_contains(a->approvers, who->user) &&
	    !config_list_contains(a->approvers, who->identity))
		return APPROVALS_NOT_APPROVER;
	if (approve && grant_for > 0) {
		expire_grants();
		if (n_grants >= APPROVALS_MAX_GRANTS)
			return APPROVALS_FULL;
		if (!*a->fingerprint)
			return APPROVALS_UNKNOWN; /* nothing to grant by; cannot happen in practice
			                           */
		*grant_id = add_grant(a, who->user, grant_for);
	}
	usec_t waited = now_usec() - a->requested_mono;
	log_info("approval %llu %s by %s%s%s", (unsigned long long)id,
	         approve ? "approved" : "denied", who->user, reason ? ": " : "",
	         reason ? reason : "");
	audit_request(approve ? "approval_approved" : "approval_denied", a, who->user,
	              approve ? NULL : (reason ? reason : ""), waited);
	struct approval_answer ans = {
	    .outcome = approve ? APPROVAL_APPROVED : APPROVAL_DENIED,
	    .id = id,
	    .approver = who->user,
	    .reason = reason,
	    .waited = waited,
	};
	finish(p, &ans);
	return APPROVALS_OK;
}

bool approvals_grant_use(const char *database, const char *user, const char *identity,
                         uint64_t session, const char *client_addr, const char *fingerprint,
                         uint64_t *grant_id)
{
	if (!fingerprint || !*fingerprint || list_empty(&grant_list))
		return false;
	expire_grants();
	const char *principal = identity ? identity : user;
	struct list_node *it;
	list_for_each(it, &grant_list)
	{
		struct grant *g = container_of(it, struct grant, node);
		if (strcmp(g->info.fingerprint, fingerprint) == 0 &&
		    strcmp(g->info.principal, principal) == 0 &&
		    strcmp(g->info.database, database) == 0) {
			g->info.uses++;
			*grant_id = g->info.id;
			audit_grant("grant_used", &g->info, NULL, session, client_addr, user,
			            identity);
			return true;
		}
	}
	return false;
}

bool approvals_revoke(uint64_t grant_id, const char *by)
{
	expire_grants();
	struct list_node *it;
	list_for_each(it, &grant_list)
	{
		struct grant *g = container_of(it, struct grant, node);
		if (g->info.id == grant_id) {
			log_info("grant %llu revoked by %s", (unsigned long long)grant_id, by);
			audit_grant("grant_revoked", &g->info, by, 0, NULL, NULL, NULL);
			grant_free(g);
			return true;
		}
	}
	return false;
}

void approvals_foreach(void (*fn)(void *arg, const struct approval_info *a), void *arg)
{
	struct list_node *it;
	list_for_each(it, &pending_list)
	{
		fn(arg, &container_of(it, struct pending, node)->info);
	}
}

void approvals_foreach_grant(void (*fn)(void *arg, const struct approval_grant *g), void *arg)
{
	expire_grants();
	struct list_node *it;
	list_for_each(it, &grant_list)
	{
		fn(arg, &container_of(it, struct grant, node)->info);
	}
}

void approvals_cancel_all(const char *why)
{
	struct list_node *it;
	while ((it = list_first(&pending_list))) {
		struct pending *p = container_of(it, struct pending, node);
		usec_t waited = now_usec() - p->info.requested_mono;
		audit_request("approval_cancelled", &p->info, NULL, why, waited);
		struct approval_answer ans = {.outcome = APPROVAL_CANCELLED,
		                              .id = p->info.id,
		                              .reason = why,
		                              .waited = waited};
		finish(p, &ans);
	}
}

void approvals_shutdown(void)
{
	struct list_node *it;
	while ((it = list_first(&pending_list))) {
		n_pending--;
		pending_free(container_of(it, struct pending, node));
	}
	while ((it = list_first(&grant_list)))
		grant_free(container_of(it, struct grant, node));
	while ((it = list_first(&webhook_busy))) {
		struct delivery *d = container_of(it, struct delivery, node);
		fetch_cancel(d->fetch);
		delivery_free(d);
	}
	while ((it = list_first(&webhook_queue)))
		delivery_free(container_of(it, struct delivery, node));
	n_busy = n_queued = 0;
}
