"""
The client-visible errors the tests expect, in one place, each with where
the fact comes from.

Deliberate differences from PgBouncer 1.25 (kept in the README too): the
texts are PgBouncer's, so log-based alerts keep matching, but a wrong
password is 28P01 (invalid_password), max_client_conn 53300
(too_many_connections) and an unknown database 3D000
(invalid_catalog_name), as PostgreSQL itself says them, so that drivers
classify them correctly; and a user auth_query does not find fails like
a wrong password instead of PgBouncer's "no such user", which would let
a client probe for user names. They are PgBouncer 1.25's (src/client.c, objects.c,
janitor.c, server.c, proto.c): pgsieve is a drop-in replacement, so a client
or a monitoring rule that matches PgBouncer's text or SQLSTATE must keep
working. Errors PgBouncer raises itself go out through send_pooler_error():
severity FATAL (the connection is then closed) and, unless a SQLSTATE is
given, 08P01. Errors PostgreSQL raises during a server login reach the
waiting clients with PostgreSQL's own SQLSTATE and text (since 1.19).
"""

# Default SQLSTATE of every error PgBouncer raises itself.
POOLER_SQLSTATE = "08P01"

# Client authentication (client.c handle_client_startup): PgBouncer's text,
# no user name in it; SQLSTATE 28P01 (pgsieve's choice, see above).
AUTH_FAILED_SQLSTATE = "28P01"
PASSWORD_FAILED = "password authentication failed"        # cleartext / md5
SASL_FAILED = "SASL authentication failed"                # SCRAM
TRUST_FAILED = '"trust" authentication failed'            # user not in auth_file
HBA_REJECT = "login rejected"                             # hba "reject" line
AUTH_QUERY_NO_USER = PASSWORD_FAILED                      # auth_query found no row (md5)

# Limits and routing (client.c): PgBouncer's text, PostgreSQL's SQLSTATE.
MAX_CLIENT_CONN = "no more connections allowed (max_client_conn)"
MAX_CLIENT_CONN_SQLSTATE = "53300"
NO_SUCH_DATABASE = "no such database: {}"                 # after authentication
NO_SUCH_DATABASE_SQLSTATE = "3D000"
UNSUPPORTED_STARTUP_PARAM = "unsupported startup parameter: {}"

# Pool modes (server.c handle_server_work).
STATEMENT_MODE_TX = "transaction blocks not allowed in statement pooling mode"

# Timeouts (janitor.c).
QUERY_WAIT_TIMEOUT = "query_wait_timeout"
QUERY_TIMEOUT = "query timeout"
CLIENT_IDLE_TIMEOUT = "client_idle_timeout"
CLIENT_LOGIN_TIMEOUT = "client_login_timeout"
IDLE_TRANSACTION_TIMEOUT = "idle transaction timeout"

# Client limits (client.c check_db_connection_count / check_user_connection_count):
# PgBouncer's text, PostgreSQL's SQLSTATE as for max_client_conn.
MAX_DB_CLIENT_CONN = "client connections exceeded (max_db_client_connections)"
MAX_USER_CLIENT_CONN = "client connections exceeded (max_user_client_connections)"
CLIENT_LIMIT_SQLSTATE = "53300"

# query_wait_notify (janitor.c per_loop_activate, 1.25): a NoticeResponse, once.
QUERY_WAIT_NOTICE = "No server connection available in postgres backend, client being queued"

# server_fast_close (janitor.c pool_server_maint): the server is closed with
# this reason and its client with it.
CONFIG_CHANGED = "database configuration changed"
TRANSACTION_TIMEOUT = "transaction timeout"
