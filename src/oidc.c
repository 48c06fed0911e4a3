/*
 * Token logins: the key set from a file or an HTTPS URL, its refreshes,
 * and the logins waiting for one; see oidc.h.
 */
#include "oidc.h"
#include "client.h"
#include "config.h"
#include "fetch.h"
#include "jwks.h"
#include "log.h"
#include "pooler.h"
#include "token.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A key set download gets this long, and this much. */
#define FETCH_TIMEOUT (10 * USEC_PER_SEC)

/* A login whose token waits for the key set. */
struct waiter {
	struct list_node node;
	struct client *client;
	char *token;
	size_t len;
	oidc_verdict_fn done;
};

static struct jwks *keys;
static struct token_rules rules;
static char **scopes;
static size_t n_scopes;
static char *source; /* the file or URL the keys come from */
static bool from_url;

static struct fetch *fetching;
static usec_t last_attempt; /* monotonic: when the last fetch started */
static struct event *refresh_timer;
static struct list_node waiters = LIST_INIT(waiters);

/*
 * Tokens verified lately, by their SHA-256, until they expire: a storm of
 * logins with one token pays for the signature once. Direct-mapped; a new
 * token takes its slot. Emptied when the keys or the rules change.
 */
#define VERIFIED_SLOTS 1024
static struct verified {
	uint8_t hash[SHA256_DIGEST_LENGTH];
	struct token_identity id; /* id.claims NULL: empty */
} verified[VERIFIED_SLOTS];

static struct {
	usec_t loaded_at, fetched_at;
	char result[256];
	uint64_t fetches, accepted, refused;
} st;

static void free_rules(void)
{
	for (size_t i = 0; i < n_scopes; i++)
		free(scopes[i]);
	free(scopes);
	scopes = NULL;
	n_scopes = 0;
}

/* "a b, c" -> {a, b, c} */
static void split_scopes(const char *list)
{
	char *copy = xstrdup(list ? list : ""), *save = NULL;
	for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
		scopes = xrealloc(scopes, (n_scopes + 1) * sizeof(*scopes));
		scopes[n_scopes++] = xstrdup(w);
	}
	free(copy);
}

static void forget_verified(void)
{
	for (size_t i = 0; i < VERIFIED_SLOTS; i++)
		token_identity_clear(&verified[i].id);
}

static struct verified *verified_slot(const uint8_t *hash)
{
	return &verified[(hash[0] | (size_t)hash[1] << 8) % VERIFIED_SLOTS];
}

/* A copy sharing the claims, which nobody changes. */
static void identity_copy(struct token_identity *dst, const struct token_identity *src)
{
	*dst = *src;
	json_incref(dst->claims);
	dst->groups = xcalloc(src->n_groups ? src->n_groups : 1, sizeof(*dst->groups));
	if (src->n_groups)
		memcpy(dst->groups, src->groups, src->n_groups * sizeof(*dst->groups));
}

static void use_keys(struct jwks *fresh)
{
	forget_verified();
	jwks_free(keys);
	keys = fresh;
	st.loaded_at = wall_usec();
	for (size_t i = 0; i < jwks_skipped_count(keys); i++)
		log_warning("oidc: %s: key skipped: %s", source, jwks_skipped(keys, i));
}

static struct jwks *read_key_file(const char *path, char **err)
{
	size_t n;
	char *why = NULL;
	char *text = read_file(path, JWKS_MAX_BYTES, &n, &why);
	if (!text) {
		*err = xasprintf("oidc_jwks_file %s", why); /* why names the file */
		free(why);
		return NULL;
	}
	struct jwks *fresh = jwks_parse(text, n, &why);
	free(text);
	if (!fresh) {
		*err = xasprintf("oidc_jwks_file %s: %s", path, why);
		free(why);
	}
	return fresh;
}

/* One token against the keys in hand; id is filled on TOKEN_OK. */
static enum token_result check(const char *token, size_t len, struct token_identity *id, char **why)
{
	if (!keys) {
		*why = xasprintf("no key set (%s)", st.result[0] ? st.result : "not loaded yet");
		return TOKEN_UNKNOWN_KID;
	}
	rules.now = time(NULL);
	uint8_t hash[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, len, hash);
	struct verified *v = verified_slot(hash);
	if (v->id.claims && memcmp(v->hash, hash, sizeof(hash)) == 0) {
		if (rules.now <= v->id.exp + (time_t)rules.leeway) {
			identity_copy(id, &v->id);
			return TOKEN_OK;
		}
		token_identity_clear(&v->id); /* expired since: verify, and say so, again */
	}
	enum token_result r = token_verify(token, len, keys, &rules, id, why);
	if (r == TOKEN_OK && id->exp) {
		token_identity_clear(&v->id);
		memcpy(v->hash, hash, sizeof(hash));
		identity_copy(&v->id, id);
	}
	return r;
}

static void deliver(struct client *c, enum token_result r, struct token_identity *id, char *why,
                    oidc_verdict_fn done)
{
	if (r == TOKEN_OK) {
		st.accepted++;
		done(c, id, NULL);
	} else {
		st.refused++;
		token_identity_clear(id);
		free(id);
		done(c, NULL, why ? why : token_result_name(r));
	}
	free(why);
}

static void verify_now(struct client *c, const char *token, size_t len, oidc_verdict_fn done)
{
	struct token_identity *id = xcalloc(1, sizeof(*id));
	char *why = NULL;
	enum token_result r = check(token, len, id, &why);
	deliver(c, r, id, why, done);
}

static void settle_waiters(void)
{
	struct list_node *it;
	while ((it = list_pop(&waiters))) {
		struct waiter *w = container_of(it, struct waiter, node);
		verify_now(w->client, w->token, w->len, w->done);
		OPENSSL_cleanse(w->token, w->len);
		free(w->token);
		free(w);
	}
}

static void on_fetched(void *arg, int status, const char *body, size_t len, const char *err)
{
	(void)arg;
	fetching = NULL;
	st.fetched_at = wall_usec();
	char *why = NULL;
	struct jwks *fresh = NULL;
	if (err)
		why = xstrdup(err);
	else if (status != 200)
		why = xasprintf("HTTP status %d", status);
	else
		fresh = jwks_parse(body, len, &why);
	if (fresh) {
		use_keys(fresh);
		snprintf(st.result, sizeof(st.result), "ok");
		log_info("oidc: %zu key%s from %s", jwks_count(keys),
		         jwks_count(keys) == 1 ? "" : "s", source);
	} else {
		snprintf(st.result, sizeof(st.result), "%s", why);
		log_warning("oidc: fetching %s failed: %s%s", source, why,
		            keys ? "; the keys fetched before stay in use" : "");
	}
	free(why);
	settle_waiters();
}

static void start_fetch(void)
{
	if (fetching || !from_url)
		return;
	struct fetch_request req = {
	    .method = "GET",
	    .url = source,
	    .ca_file = cf->oidc_jwks_ca_file,
	    .timeout = FETCH_TIMEOUT,
	    .max_size = JWKS_MAX_BYTES,
	};
	char *err = NULL;
	st.fetches++;
	last_attempt = now_usec();
	fetching = fetch_start(&req, on_fetched, NULL, &err);
	if (!fetching) {
		snprintf(st.result, sizeof(st.result), "%s", err);
		log_warning("oidc: cannot fetch %s: %s", source, err);
		free(err);
		settle_waiters();
	}
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	start_fetch();
}

/* What can be wrong with the settings, before anything changes. */
static bool validate(unsigned *algorithms, struct jwks **from_file, char **err)
{
	if (!token_parse_algorithms(cf->oidc_algorithms, algorithms, err))
		return false;
	if (cf->oidc_jwks_file && cf->oidc_jwks_url) {
		*err = xstrdup("oidc_jwks_file and oidc_jwks_url: set one of them, not both");
		return false;
	}
	*from_file = NULL;
	return !cf->oidc_jwks_file || (*from_file = read_key_file(cf->oidc_jwks_file, err));
}

bool oidc_check(char **err)
{
	unsigned algorithms;
	struct jwks *from_file;
	if (!validate(&algorithms, &from_file, err))
		return false;
	jwks_free(from_file);
	return true;
}

bool oidc_configure(char **err)
{
	/* Everything that can fail comes first: a bad value keeps what runs. */
	unsigned algorithms;
	struct jwks *from_file;
	if (!validate(&algorithms, &from_file, err))
		return false;
	const char *new_source = cf->oidc_jwks_file ? cf->oidc_jwks_file : cf->oidc_jwks_url;
	bool same_source = source && new_source && strcmp(source, new_source) == 0;
	free(source);
	source = new_source ? xstrdup(new_source) : NULL;
	from_url = cf->oidc_jwks_url != NULL;
	if (!same_source || from_file) {
		jwks_free(keys);
		keys = NULL;
		st.loaded_at = 0;
		st.result[0] = '\0';
		fetch_cancel(fetching);
		fetching = NULL;
	}
	if (from_file) {
		use_keys(from_file);
		snprintf(st.result, sizeof(st.result), "ok");
	}
	forget_verified();
	free_rules();
	split_scopes(cf->oidc_required_scopes);
	rules = (struct token_rules){
	    .issuer = cf->oidc_issuer,
	    .audience = cf->oidc_audience,
	    .algorithms = algorithms,
	    .leeway = (unsigned)(cf->oidc_leeway / USEC_PER_SEC),
	    .required_scopes = (const char *const *)scopes,
	    .n_required_scopes = n_scopes,
	    .user_claim = cf->oidc_user_claim,
	    .groups_claim = cf->oidc_groups_claim,
	};
	if (refresh_timer) {
		event_free(refresh_timer);
		refresh_timer = NULL;
	}
	if (from_url) {
		if (!keys)
			start_fetch();
		usec_t every =
		    cf->oidc_jwks_refresh > 0 ? cf->oidc_jwks_refresh : 300 * USEC_PER_SEC;
		struct timeval tv = {(time_t)(every / USEC_PER_SEC),
		                     (suseconds_t)(every % USEC_PER_SEC)};
		refresh_timer = event_new(pooler_base, -1, EV_PERSIST, on_refresh_timer, NULL);
		event_add(refresh_timer, &tv);
	}
	/* Logins that waited for a source that is gone get their answer now. */
	if (!from_url)
		settle_waiters();
	return true;
}

void oidc_shutdown(void)
{
	if (refresh_timer)
		event_free(refresh_timer);
	refresh_timer = NULL;
	fetch_cancel(fetching);
	fetching = NULL;
	struct list_node *it;
	while ((it = list_pop(&waiters))) {
		struct waiter *w = container_of(it, struct waiter, node);
		OPENSSL_cleanse(w->token, w->len);
		free(w->token);
		free(w);
	}
	jwks_free(keys);
	keys = NULL;
	forget_verified();
	free_rules();
	free(source);
	source = NULL;
}

const char *oidc_not_ready(void)
{
	if (!cf->oidc_issuer)
		return "oidc_issuer is not set";
	if (!cf->oidc_audience)
		return "oidc_audience is not set";
	if (!source)
		return "neither oidc_jwks_file nor oidc_jwks_url is set";
	return NULL;
}

void oidc_verify(struct client *c, const char *token, size_t len, oidc_verdict_fn done)
{
	struct token_identity *id = xcalloc(1, sizeof(*id));
	char *why = NULL;
	enum token_result r = check(token, len, id, &why);
	/* A key the set lacks may be a new one: fetch again, but not on every login. */
	bool may_fetch = from_url && (fetching || !keys ||
	                              now_usec() - last_attempt >= cf->oidc_jwks_min_refresh);
	if (r != TOKEN_UNKNOWN_KID || !may_fetch) {
		deliver(c, r, id, why, done);
		return;
	}
	token_identity_clear(id);
	free(id);
	free(why);
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->client = c;
	w->token = xmalloc(len + 1);
	memcpy(w->token, token, len);
	w->token[len] = '\0';
	w->len = len;
	w->done = done;
	list_append(&waiters, &w->node);
	start_fetch();
}

void oidc_forget(struct client *c)
{
	struct list_node *it, *tmp;
	list_for_each_safe(it, tmp, &waiters)
	{
		struct waiter *w = container_of(it, struct waiter, node);
		if (w->client != c)
			continue;
		list_del(&w->node);
		OPENSSL_cleanse(w->token, w->len);
		free(w->token);
		free(w);
	}
}

char *oidc_discovery_reply(void)
{
	const char *issuer = cf->oidc_issuer ? cf->oidc_issuer : "";
	char *config_url = strstr(issuer, "/.well-known/")
	                       ? xstrdup(issuer)
	                       : xasprintf("%s/.well-known/openid-configuration", issuer);
	json_t *reply = json_pack("{s:s, s:s, s:s}", "status", "invalid_token",
	                          "openid-configuration", config_url, "scope",
	                          cf->oidc_required_scopes ? cf->oidc_required_scopes : "openid");
	char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	free(config_url);
	return text ? text : xstrdup("{\"status\":\"invalid_token\"}");
}

void oidc_get_status(struct oidc_status *out)
{
	out->source = source;
	out->keys = keys ? jwks_count(keys) : 0;
	out->loaded_at = keys ? st.loaded_at : 0;
	out->fetched_at = st.fetched_at;
	out->result = st.result[0] ? st.result : (fetching ? "fetching" : "not loaded");
	out->fetches = st.fetches;
	out->accepted = st.accepted;
	out->refused = st.refused;
	out->waiting = list_count(&waiters);
}
