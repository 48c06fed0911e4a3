/*
 * Listening sockets, signals, pause and shutdown.
 *
 * Signals are PgBouncer's: HUP reloads, TERM stops accepting and exits
 * once the clients are gone, INT stops accepting and exits once every
 * server connection is released, a second TERM or INT exits at once, QUIT
 * exits at once, USR1 pauses and USR2 resumes. Handlers run from the loop
 * (libevent signal events), never in signal context.
 */
#include "pooler.h"
#include "approvals.h"
#include "auth.h"
#include "cancel.h"
#include "client.h"
#include "config.h"
#include "dns.h"
#include "janitor.h"
#include "log.h"
#include "metrics.h"
#include "audit.h"
#include "fetch.h"
#include "oidc.h"
#include "policy.h"
#include "pool.h"
#include "server.h"
#include "takeover.h"
#include "tls.h"
#include "varcache.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct event_base *pooler_base;

#define MAX_LISTENERS 16

static struct evconnlistener *listeners[MAX_LISTENERS];
static bool listener_is_unix[MAX_LISTENERS];
static int listener_count;
static char unix_socket_path[108];
/* Identity of the socket file we made: a newer process may have replaced it (so_reuseport). */
static dev_t unix_socket_dev;
static ino_t unix_socket_ino;

static enum shutdown_mode shutdown_mode = SHUTDOWN_NONE;
static usec_t shutdown_started;
static struct event *reap_event;
static struct event *signal_events[6];
static struct event *accept_retry;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
	bool is_unix = *(bool *)arg;
	client_accept(fd, sa, (socklen_t)len, is_unix);
}

static void resume_accept(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < listener_count; i++)
		evconnlistener_enable(listeners[i]);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	log_warning("accept() failed: %s", strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Out of descriptors: stop accepting for a moment instead of spinning. */
		for (int i = 0; i < listener_count; i++)
			evconnlistener_disable(listeners[i]);
		struct timeval tv = {1, 0};
		evtimer_add(accept_retry, &tv);
	}
}

static bool add_listener(int fd, bool is_unix, char **err)
{
	if (listener_count == MAX_LISTENERS) {
		close(fd);
		*err = xstrdup("too many listen addresses");
		return false;
	}
	listener_is_unix[listener_count] = is_unix;
	struct evconnlistener *l =
	    evconnlistener_new(pooler_base, on_accept, &listener_is_unix[listener_count],
	                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!l) {
		close(fd);
		*err = xstrdup("could not create listener");
		return false;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	listeners[listener_count++] = l;
	return true;
}

static bool listen_tcp(const char *host, char **err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE},
	                *res;
	char port[16];
	snprintf(port, sizeof(port), "%d", cf->listen_port);
	int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
	if (rc != 0) {
		*err = xasprintf("listen_addr %s: %s", host, gai_strerror(rc));
		return false;
	}
	bool any = false;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int on = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (cf->so_reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (cf->tcp_defer_accept > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &cf->tcp_defer_accept,
			           sizeof(cf->tcp_defer_accept));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, cf->listen_backlog) < 0) {
			int e = errno;
			close(fd);
			/* "*" may offer IPv6 on a host without it; one family is enough. */
			if (strcmp(host, "*") == 0 && e == EADDRNOTAVAIL)
				continue;
			*err = xasprintf("could not listen on %s:%d: %s", host, cf->listen_port,
			                 strerror(e));
			freeaddrinfo(res);
			return false;
		}
		if (!add_listener(fd, false, err)) {
			freeaddrinfo(res);
			return false;
		}
		any = true;
	}
	freeaddrinfo(res);
	if (!any) {
		*err = xasprintf("could not listen on %s:%d", host, cf->listen_port);
		return false;
	}
	log_info("listening on %s:%d", host, cf->listen_port);
	return true;
}

static bool listen_unix(char **err)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", cf->unix_socket_dir,
	                 cf->listen_port);
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		*err = xasprintf("unix_socket_dir %s: path too long", cf->unix_socket_dir);
		return false;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = xasprintf("socket: %s", strerror(errno));
		return false;
	}
	/* A socket file left by a crashed process would make bind() fail. */
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0 && !cf->so_reuseport) {
		close(fd);
		*err = xasprintf("%s: another process is listening there", un.sun_path);
		return false;
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(un.sun_path);
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(fd, cf->listen_backlog) < 0) {
		*err = xasprintf("could not listen on %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return false;
	}
	chmod(un.sun_path, (mode_t)cf->unix_socket_mode);
	if (cf->unix_socket_group && *cf->unix_socket_group) {
		struct group *g = getgrnam(cf->unix_socket_group);
		if (!g || chown(un.sun_path, (uid_t)-1, g->gr_gid) < 0)
			log_warning("unix_socket_group %s: could not set group of %s",
			            cf->unix_socket_group, un.sun_path);
	}
	strlcpy_s(unix_socket_path, un.sun_path, sizeof(unix_socket_path));
	struct stat st;
	if (stat(un.sun_path, &st) == 0) {
		unix_socket_dev = st.st_dev;
		unix_socket_ino = st.st_ino;
	}
	log_info("listening on unix:%s", un.sun_path);
	return add_listener(fd, true, err);
}

static bool open_listeners(char **err)
{
	if (cf->listen_addr && *cf->listen_addr) {
		const char *p = cf->listen_addr;
		while (*p) {
			p += strspn(p, ", \t");
			size_t len = strcspn(p, ", \t");
			if (!len)
				break;
			char *host = xstrndup(p, len);
			bool ok = listen_tcp(host, err);
			free(host);
			if (!ok)
				return false;
			p += len;
		}
	}
	if (cf->unix_socket_dir && *cf->unix_socket_dir && !listen_unix(err))
		return false;
	if (listener_count == 0) {
		*err = xstrdup("nothing to listen on: set listen_addr or unix_socket_dir");
		return false;
	}
	return true;
}

bool pooler_listen(char **err)
{
	/* After an online restart the handed-over sockets are already listening. */
	if (listener_count == 0 && !open_listeners(err))
		return false;
	if (cf->metrics_listen && !metrics_start(pooler_base, cf->metrics_listen, err))
		return false;
	return true;
}

int pooler_listener_fds(int *fds, int max)
{
	int n = 0;
	for (int i = 0; i < listener_count && n < max; i++)
		fds[n++] = evconnlistener_get_fd(listeners[i]);
	return n;
}

bool pooler_adopt_listener(int fd, char **err)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		*err = xasprintf("handed-over listening socket: %s", strerror(errno));
		close(fd);
		return false;
	}
	bool is_unix = ss.ss_family == AF_UNIX;
	if (is_unix) {
		/* The file is ours to remove at exit now, as if we had made it. */
		const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
		strlcpy_s(unix_socket_path, un->sun_path, sizeof(unix_socket_path));
		struct stat st;
		if (stat(unix_socket_path, &st) == 0) {
			unix_socket_dev = st.st_dev;
			unix_socket_ino = st.st_ino;
		}
		log_info("took over listening socket unix:%s", unix_socket_path);
	} else {
		log_info("took over listening socket on port %d",
		         ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                        : ((struct sockaddr_in *)&ss)->sin_port));
	}
	return add_listener(fd, is_unix, err);
}

void pooler_set_accepting(bool on)
{
	for (int i = 0; i < listener_count; i++) {
		if (on)
			evconnlistener_enable(listeners[i]);
		else
			evconnlistener_disable(listeners[i]);
	}
}

void pooler_let_go_listeners(void)
{
	unix_socket_path[0] = '\0';
	pooler_close_listeners();
}

void pooler_close_listeners(void)
{
	for (int i = 0; i < listener_count; i++)
		evconnlistener_free(listeners[i]);
	listener_count = 0;
	if (unix_socket_path[0]) {
		struct stat st;
		if (stat(unix_socket_path, &st) == 0 && st.st_dev == unix_socket_dev &&
		    st.st_ino == unix_socket_ino)
			unlink(unix_socket_path);
		unix_socket_path[0] = '\0';
	}
}

/* Reaping */

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
	client_reap();
	server_reap();
}

void pooler_schedule_reap(void)
{
	if (reap_event)
		event_active(reap_event, 0, 0);
}

/* Pause and shutdown */

static bool servers_busy(void)
{
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		if (!list_empty(&p->active_servers))
			return true;
	}
	return false;
}

/*
 * A client already connected to a session pool is a session in progress:
 * a SIGINT shutdown lets it finish (a rolling restart with so_reuseport
 * must not fail clients that reached the old process). Elsewhere new
 * transactions wait, and the waiting clients are dropped at exit.
 */
static bool sessions_open(void)
{
	struct list_node *it;
	list_for_each(it, &all_clients)
	{
		const struct client *c = container_of(it, struct client, all_node);
		if (c->state == CL_CLOSED || c->admin)
			continue;
		if (c->state == CL_LOGIN || c->state == CL_WELCOME ||
		    (c->pool && pool_mode_of(c->pool) == POOL_MODE_SESSION))
			return true;
	}
	return false;
}

void pooler_pause(void)
{
	if (pooler_paused)
		return;
	pooler_paused = true;
	log_info("pausing: new queries wait until resume");
}

void pooler_resume(void)
{
	if (!pooler_paused)
		return;
	pooler_paused = false;
	log_info("resuming");
	struct list_node *it;
	list_for_each(it, &all_pools)
	{
		struct pool *p = container_of(it, struct pool, node);
		pool_dispatch(p);
		pool_maintain(p);
	}
}

enum shutdown_mode pooler_shutdown_mode(void)
{
	return shutdown_mode;
}

bool pooler_shutting_down(void)
{
	return shutdown_mode != SHUTDOWN_NONE;
}

void pooler_check_shutdown(void)
{
	bool done = false;
	if (shutdown_mode != SHUTDOWN_NONE && cf->shutdown_wait_timeout > 0 &&
	    now_usec() - shutdown_started > cf->shutdown_wait_timeout) {
		log_info("shutdown_wait_timeout reached: exiting with connections still open");
		shutdown_mode = SHUTDOWN_IMMEDIATE;
	}
	switch (shutdown_mode) {
	case SHUTDOWN_NONE:
		return;
	case SHUTDOWN_WAIT_CLIENTS:
		done = client_count == 0;
		break;
	case SHUTDOWN_WAIT_SERVERS:
		done = !servers_busy() && !sessions_open();
		break;
	case SHUTDOWN_IMMEDIATE:
		done = true;
		break;
	}
	if (done)
		event_base_loopbreak(pooler_base);
}

void pooler_begin_shutdown(enum shutdown_mode mode)
{
	if (shutdown_mode != SHUTDOWN_NONE && mode != SHUTDOWN_IMMEDIATE) {
		log_info("second shutdown signal: exiting now");
		mode = SHUTDOWN_IMMEDIATE;
	}
	shutdown_mode = mode;
	if (!shutdown_started)
		shutdown_started = now_usec();
	/* Nobody could answer a held statement after this: its client hears so now. */
	approvals_cancel_all("pgsieve is shutting down");
	switch (mode) {
	case SHUTDOWN_WAIT_CLIENTS:
		log_info("shutdown requested: waiting for clients to disconnect");
		break;
	case SHUTDOWN_WAIT_SERVERS:
		log_info("shutdown requested: waiting for server connections to be released");
		break;
	default:
		log_info("shutting down now");
		break;
	}
	if (takeover_handed_over())
		pooler_let_go_listeners();
	else
		pooler_close_listeners();
	pooler_check_shutdown();
}

bool pooler_reload(char **err)
{
	struct config *fresh = config_load(cf->config_file, err);
	if (!fresh) {
		log_error("reload failed, keeping the running configuration: %s", *err);
		return false;
	}
	/* Certificates are read before anything changes: a bad one keeps the old set whole. */
	struct tls_contexts *tls = tls_load(fresh, err);
	if (!tls) {
		log_error("reload failed, keeping the running configuration: %s", *err);
		config_free(fresh);
		return false;
	}
	struct config *old = cf;
	cf = fresh;
	if (!auth_load_files(err)) {
		log_error("reload failed, keeping the running configuration: %s", *err);
		cf = old;
		config_free(fresh);
		tls_free(tls);
		return false;
	}
	/* Scripts compile into a new state, swapped in only if all of them load. */
	if (!policy_configure(err)) {
		log_error("reload failed, keeping the running configuration: %s", *err);
		cf = old;
		config_free(fresh);
		tls_free(tls);
		char *again = NULL;
		if (!auth_load_files(&again)) { /* the old files may have changed meanwhile */
			log_error("%s", again);
			free(again);
		}
		return false;
	}
	/* Token rules and keys: a key file that cannot be read keeps the keys in use. */
	char *oidc_err = NULL;
	if (!oidc_configure(&oidc_err)) {
		log_error("%s", oidc_err);
		free(oidc_err);
	}
	/* The audit file is opened again (log rotation); if it cannot be, the old one stays. */
	char *audit_err = NULL;
	if (!audit_configure(&audit_err)) {
		log_error("%s", audit_err);
		free(audit_err);
	}
	/* New connections use the new certificates; open sessions keep theirs. */
	tls_install(tls);
	if (!fresh->verbose && old->verbose == log_verbose)
		log_verbose = 0;
	else if (fresh->verbose > log_verbose)
		log_verbose = fresh->verbose;
	char *log_err = NULL;
	if (!log_setup(cf->logfile, cf->syslog, cf->syslog_ident, cf->syslog_facility, &log_err)) {
		log_error("%s", log_err);
		free(log_err);
	}
	dns_configure(cf->dns_max_ttl, cf->dns_nxdomain_ttl);
	dns_set_zone_check_period(cf->dns_zone_check_period);
	/* Settings read at start only keep their old values. */
	cf->peer_id = old->peer_id; /* the keys handed out carry it */
	free(cf->track_extra_parameters);
	cf->track_extra_parameters =
	    old->track_extra_parameters ? xstrdup(old->track_extra_parameters) : NULL;
	config_free(old);
	pool_apply_config();
	log_info("configuration reloaded");
	return true;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP: {
		log_info("got SIGHUP, re-reading config");
		char *err = NULL;
		if (!pooler_reload(&err))
			free(err);
		break;
	}
	case SIGTERM:
		pooler_begin_shutdown(SHUTDOWN_WAIT_CLIENTS);
		break;
	case SIGINT:
		pooler_begin_shutdown(SHUTDOWN_WAIT_SERVERS);
		break;
	case SIGQUIT:
		pooler_begin_shutdown(SHUTDOWN_IMMEDIATE);
		break;
	case SIGUSR1:
		log_info("got SIGUSR1, pausing all activity");
		pooler_pause();
		break;
	case SIGUSR2:
		log_info("got SIGUSR2, resuming");
		pooler_resume();
		break;
	}
}

bool pooler_init(char **err)
{
	pooler_base = event_base_new();
	if (!pooler_base) {
		*err = xstrdup("could not create the event loop");
		return false;
	}
	reap_event = event_new(pooler_base, -1, 0, on_reap, NULL);
	accept_retry = evtimer_new(pooler_base, resume_accept, NULL);
	static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		signal_events[i] = evsignal_new(pooler_base, sigs[i], on_signal, NULL);
		event_add(signal_events[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	sbuf_setup(pooler_base, cf->pkt_buf);
	if (strcmp(cf->identity_propagation, "guc") == 0) {
		/* Tracked like any parameter: a server gets a client's identity when it differs. */
		char *names = xasprintf(
		    "%s, %s", cf->track_extra_parameters ? cf->track_extra_parameters : "",
		    VARCACHE_IDENTITY);
		varcache_setup(names);
		free(names);
	} else {
		varcache_setup(cf->track_extra_parameters);
	}
	if (!dns_init(pooler_base, cf->dns_max_ttl, cf->dns_nxdomain_ttl,
	              cf->resolv_conf && *cf->resolv_conf ? cf->resolv_conf : NULL, err))
		return false;
	dns_set_zone_check_period(cf->dns_zone_check_period);
	approvals_init(pooler_base);
	if (!janitor_start(pooler_base)) {
		*err = xstrdup("could not start the maintenance timer");
		return false;
	}
	return true;
}

void pooler_run(void)
{
	event_base_dispatch(pooler_base);
}

void pooler_cleanup(void)
{
	struct list_node *it, *tmp;
	/* Our connections live on in the new process: close them without a word. */
	if (takeover_handed_over()) {
		metrics_stop();
		takeover_let_go();
	}
	list_for_each_safe(it, tmp, &all_clients)
	{
		client_close(container_of(it, struct client, all_node), "pooler shutdown");
	}
	metrics_stop();
	pool_close_all_servers("pooler shutdown");
	cancel_cleanup();
	client_reap();
	server_reap();
	pooler_close_listeners();
	janitor_stop();
	oidc_shutdown();
	approvals_shutdown();
	fetch_shutdown();
	dns_shutdown();
	for (size_t i = 0; i < ARRAY_SIZE(signal_events); i++)
		if (signal_events[i])
			event_free(signal_events[i]);
	event_free(reap_event);
	event_free(accept_retry);
	pool_free_all();
	auth_free_files();
	policy_shutdown();
	audit_shutdown();
	tls_install(NULL);
	varcache_teardown();
	event_base_free(pooler_base);
	pooler_base = NULL;
}
