/*
 * HTTP(S) requests on evhttp: resolve with c-ares, connect to the address,
 * verify the certificate against the name; see fetch.h.
 */
#include "fetch.h"
#include "dns.h"
#include "list.h"
#include "log.h"
#include "pooler.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

struct fetch {
	struct list_node node; /* in_flight */
	fetch_callback cb;     /* NULL: cancelled */
	void *arg;
	char *method, *host, *path, *content_type, *body;
	size_t body_len, max_size;
	int port;
	bool https;
	usec_t timeout;
	SSL_CTX *ctx;
	struct dns_request *dns;
	struct evhttp_connection *conn;
	enum evhttp_request_error error;
	bool failed;
	char tls_error[160]; /* what TLS said when the request failed */
};

static struct list_node in_flight = LIST_INIT(in_flight);

/*
 * Connections whose request is over, freed on the next loop turn: evhttp
 * cannot free one inside its request's callback, and its free-on-completion
 * flag misses a connection that never connected.
 */
#define MAX_DONE 64
static struct evhttp_connection *done_conns[MAX_DONE];
static size_t n_done;
static struct event *reaper;

static void free_done(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	while (n_done > 0)
		evhttp_connection_free(done_conns[--n_done]);
}

static void retire(struct evhttp_connection *conn)
{
	if (!reaper)
		reaper = evtimer_new(pooler_base, free_done, NULL);
	if (n_done == MAX_DONE)
		free_done(-1, 0, NULL); /* all finished: safe even from a callback */
	done_conns[n_done++] = conn;
	static const struct timeval now = {0, 0};
	evtimer_add(reaper, &now);
}

static void fetch_free(struct fetch *f)
{
	list_del(&f->node);
	if (f->ctx)
		SSL_CTX_free(f->ctx);
	free(f->method);
	free(f->host);
	free(f->path);
	free(f->content_type);
	free(f->body);
	free(f);
}

static void finish(struct fetch *f, int status, const char *body, size_t len, const char *err)
{
	if (f->cb)
		f->cb(f->arg, status, body, len, err);
	fetch_free(f);
}

static const char *request_error(enum evhttp_request_error e)
{
	switch (e) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "connection closed before the answer";
	case EVREQ_HTTP_INVALID_HEADER:
		return "invalid answer";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "answer too large";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	case EVREQ_HTTP_BUFFER_ERROR:
		break;
	}
	return "connection or TLS failure";
}

static void on_error(enum evhttp_request_error e, void *arg)
{
	struct fetch *f = arg;
	f->failed = true;
	f->error = e;
	struct bufferevent *bev = f->conn ? evhttp_connection_get_bufferevent(f->conn) : NULL;
	SSL *ssl = f->https && bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (!ssl)
		return;
	/* An untrusted certificate shows up as an early EOF: say what it was. */
	long verify = SSL_get_verify_result(ssl);
	unsigned long err = bufferevent_get_openssl_error(bev);
	if (verify != X509_V_OK)
		snprintf(f->tls_error, sizeof(f->tls_error), "TLS: certificate: %s",
		         X509_verify_cert_error_string(verify));
	else if (err)
		snprintf(f->tls_error, sizeof(f->tls_error), "TLS: %s",
		         ERR_reason_error_string(err));
}

static void on_done(struct evhttp_request *req, void *arg)
{
	struct fetch *f = arg;
	retire(f->conn);
	f->conn = NULL;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	if (!req || f->failed || status == 0) {
		ERR_clear_error();
		finish(f, status, NULL, 0,
		       f->tls_error[0] ? f->tls_error : request_error(f->error));
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > f->max_size) {
		finish(f, status, NULL, 0, "answer too large");
		return;
	}
	char *body = xmalloc(len + 1);
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	finish(f, status, body, len, NULL);
	free(body);
}

static bool send_request(struct fetch *f, const char *ip, char **err)
{
	struct bufferevent *bev;
	if (f->https) {
		SSL *ssl = SSL_new(f->ctx);
		if (!ssl || !SSL_set_tlsext_host_name(ssl, f->host) ||
		    !SSL_set1_host(ssl, f->host)) {
			SSL_free(ssl);
			*err = xstrdup("TLS setup failed");
			return false;
		}
		bev =
		    bufferevent_openssl_socket_new(pooler_base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
		else
			SSL_free(ssl);
	} else {
		bev = bufferevent_socket_new(pooler_base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!bev) {
		*err = xstrdup("out of memory");
		return false;
	}
	/* ip is numeric: libevent's own lookup of it does not block. */
	f->conn =
	    evhttp_connection_base_bufferevent_new(pooler_base, NULL, bev, ip, (uint16_t)f->port);
	if (!f->conn) {
		bufferevent_free(bev);
		*err = xstrdup("out of memory");
		return false;
	}
	struct timeval tv = {(time_t)(f->timeout / USEC_PER_SEC),
	                     (suseconds_t)(f->timeout % USEC_PER_SEC)};
	evhttp_connection_set_timeout_tv(f->conn, &tv);
	evhttp_connection_set_retries(f->conn, 0);
	evhttp_connection_set_max_body_size(f->conn, (ev_ssize_t)f->max_size);
	struct evhttp_request *req = evhttp_request_new(on_done, f);
	evhttp_request_set_error_cb(req, on_error);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	evhttp_add_header(headers, "Host", f->host);
	evhttp_add_header(headers, "User-Agent", "pgsieve");
	evhttp_add_header(headers, "Connection", "close");
	if (f->body) {
		evhttp_add_header(headers, "Content-Type",
		                  f->content_type ? f->content_type : "application/json");
		evbuffer_add(evhttp_request_get_output_buffer(req), f->body, f->body_len);
	}
	enum evhttp_cmd_type cmd =
	    strcmp(f->method, "POST") == 0 ? EVHTTP_REQ_POST : EVHTTP_REQ_GET;
	if (evhttp_make_request(f->conn, req, cmd, f->path) != 0) {
		/* evhttp has freed the request */
		evhttp_connection_free(f->conn);
		f->conn = NULL;
		*err = xstrdup("cannot send the request");
		return false;
	}
	return true;
}

static void on_resolved(void *arg, const struct sockaddr_storage *addrs, int n, const char *err)
{
	struct fetch *f = arg;
	f->dns = NULL;
	if (err || n == 0) {
		char why[300];
		snprintf(why, sizeof(why), "cannot resolve %s: %s", f->host,
		         err ? err : "no address");
		finish(f, 0, NULL, 0, why);
		return;
	}
	char ip[INET6_ADDRSTRLEN];
	const void *a = addrs[0].ss_family == AF_INET6
	                    ? (const void *)&((const struct sockaddr_in6 *)&addrs[0])->sin6_addr
	                    : (const void *)&((const struct sockaddr_in *)&addrs[0])->sin_addr;
	inet_ntop(addrs[0].ss_family, a, ip, sizeof(ip));
	char *why = NULL;
	if (!send_request(f, ip, &why)) {
		finish(f, 0, NULL, 0, why);
		free(why);
	}
}

static SSL_CTX *client_ctx(const char *ca_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		*err = xstrdup("cannot make a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		*err = xasprintf("cannot load the trusted CAs%s%s", ca_file ? " from " : "",
		                 ca_file ? ca_file : "");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	return ctx;
}

struct fetch *fetch_start(const struct fetch_request *r, fetch_callback cb, void *arg, char **err)
{
	struct evhttp_uri *uri = evhttp_uri_parse(r->url);
	const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
	const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
	if (!scheme || !host || !*host ||
	    (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0)) {
		*err = xasprintf("%s: not an http:// or https:// URL", r->url);
		if (uri)
			evhttp_uri_free(uri);
		return NULL;
	}
	struct fetch *f = xcalloc(1, sizeof(*f));
	list_init(&f->node);
	f->https = strcasecmp(scheme, "https") == 0;
	if (f->https && !(f->ctx = client_ctx(r->ca_file, err))) {
		evhttp_uri_free(uri);
		free(f);
		return NULL;
	}
	f->cb = cb;
	f->arg = arg;
	f->method = xstrdup(r->method);
	f->host = xstrdup(host);
	int port = evhttp_uri_get_port(uri);
	f->port = port > 0 ? port : f->https ? 443 : 80;
	const char *path = evhttp_uri_get_path(uri);
	const char *query = evhttp_uri_get_query(uri);
	f->path =
	    xasprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
	f->content_type = r->content_type ? xstrdup(r->content_type) : NULL;
	if (r->body) {
		f->body = xmalloc(r->body_len + 1);
		memcpy(f->body, r->body, r->body_len);
		f->body_len = r->body_len;
	}
	f->timeout = r->timeout;
	f->max_size = r->max_size;
	evhttp_uri_free(uri);
	list_append(&in_flight, &f->node);
	f->dns = dns_resolve(f->host, f->port, on_resolved, f);
	if (!f->dns) {
		*err = xstrdup("name resolution is not available");
		fetch_free(f);
		return NULL;
	}
	return f;
}

void fetch_cancel(struct fetch *f)
{
	if (!f)
		return;
	f->cb = NULL;
	if (f->dns) {
		dns_cancel(f->dns);
		fetch_free(f);
	}
}

void fetch_shutdown(void)
{
	free_done(-1, 0, NULL);
	if (reaper)
		event_free(reaper);
	reaper = NULL;
	struct list_node *it;
	while ((it = list_pop(&in_flight))) {
		struct fetch *f = container_of(it, struct fetch, node);
		list_init(&f->node);
		f->cb = NULL;
		if (f->dns) {
			dns_cancel(f->dns);
		} else if (f->conn) {
			evhttp_connection_free(f->conn); /* frees its request, no callback */
		}
		fetch_free(f);
	}
}
