"""
Client authentication (auth_type, auth_file, auth_hba_file, auth_query) and
server authentication (trust, cleartext, md5, SCRAM, SCRAM pass-through).

Error facts, from PgBouncer 1.25's src/client.c and src/proto.c:
- a failed cleartext/md5 password check is disconnect_client(client, true,
  "password authentication failed"), a failed SCRAM exchange is "SASL
  authentication failed"; both go out through send_pooler_error() as
  severity FATAL with the default SQLSTATE 08P01.
- trust for a user missing from auth_file: "\"trust\" authentication failed".
- an hba "reject" line: "login rejected".
- auth_query without a row for the user: "no such user".
- a server login error is passed to the waiting clients with the server's own
  SQLSTATE and message (kill_pool_logins_server_error, since PgBouncer 1.19).
"""

import psycopg
import pytest

from helpers import PgError, md5_secret
import expected as X


def login_error(p, user, password=None, dbname="testdb"):
    """Logs in with the raw client (trust/cleartext/md5) and returns the
    ErrorResponse fields it got."""
    raw = p.raw()
    try:
        with pytest.raises(PgError) as ei:
            raw.startup(user, dbname, password)
        # The pooler closes the connection after a login error.
        closed, _, _ = raw.wait_closed(3)
        assert closed, "connection left open after a login error"
        return ei.value.fields
    finally:
        raw.close()


def raw_login_ok(p, user, password=None, dbname="testdb"):
    raw = p.raw()
    try:
        raw.startup(user, dbname, password)
        rows, _, errors, _ = raw.simple_query("select current_user")
        assert errors == []
        return rows[0][0]
    finally:
        raw.close()


def current_user(p, user, password=None, dbname="testdb"):
    with p.connect(dbname=dbname, user=user, password=password) as c:
        return c.execute("select current_user").fetchone()[0]


# ------------------------------------------------------------- client side

def test_trust(pooler):
    p = pooler(settings={"auth_type": "trust"})
    assert raw_login_ok(p, "trustuser") == "trustuser"
    # The server login still uses the auth_file password (SCRAM to PG).
    assert current_user(p, "scramuser") == "scramuser"
    # trust needs the user in auth_file (PgBouncer: mock_auth user).
    f = login_error(p, "ghost")
    assert f["M"] == X.TRUST_FAILED
    assert (f["S"], f["C"]) == ("FATAL", X.POOLER_SQLSTATE)
    p.assert_serves()


def test_any_with_forced_user(pooler, pg):
    p = pooler(settings={"auth_type": "any"},
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb user=trustuser"})
    # Any user name and any password are accepted; the server user is forced.
    assert current_user(p, "nobody-in-particular", "whatever") == "trustuser"
    assert raw_login_ok(p, "someone", "x") == "trustuser"


def test_plain_cleartext(pooler, pg):
    auth = {
        "appuser": "apppw",                                 # plain text
        "md5user": md5_secret("md5user", "md5pw"),          # md5 secret
        "scramuser": pg.scram_secret("scramuser"),          # SCRAM secret
    }
    p = pooler(settings={"auth_type": "plain"}, auth_users=auth,
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb",
                          "forced": f"host=127.0.0.1 port={pg.port} dbname=testdb user=trustuser"})
    assert raw_login_ok(p, "appuser", "apppw") == "appuser"
    assert raw_login_ok(p, "md5user", "md5pw") == "md5user"
    # The cleartext password is checked against the SCRAM secret. (With only
    # a SCRAM secret and no client keys the pooler could not log in to the
    # server as scramuser itself: "wrong password type"; so use a forced user.)
    assert raw_login_ok(p, "scramuser", "scrampw", dbname="forced") == "trustuser"
    f = login_error(p, "scramuser", "wrong", dbname="forced")
    assert f["M"] == X.PASSWORD_FAILED
    f = login_error(p, "appuser", "wrong")
    assert f["M"] == X.PASSWORD_FAILED
    assert (f["S"], f["C"]) == ("FATAL", X.AUTH_FAILED_SQLSTATE)
    f = login_error(p, "md5user", "wrong")
    assert f["M"] == X.PASSWORD_FAILED
    p.assert_serves(user="appuser", password="apppw")


def test_md5(pooler):
    auth = {"appuser": "apppw", "md5user": md5_secret("md5user", "md5pw")}
    p = pooler(settings={"auth_type": "md5"}, auth_users=auth)
    assert raw_login_ok(p, "md5user", "md5pw") == "md5user"
    assert raw_login_ok(p, "appuser", "apppw") == "appuser"   # plain secret, md5 exchange
    assert current_user(p, "md5user", "md5pw") == "md5user"
    f = login_error(p, "md5user", "wrong")
    assert f["M"] == X.PASSWORD_FAILED
    assert (f["S"], f["C"]) == ("FATAL", X.AUTH_FAILED_SQLSTATE)
    # A user that is not in auth_file fails the same way (no user probing).
    f = login_error(p, "ghost", "whatever")
    assert f["M"] == X.PASSWORD_FAILED


def test_md5_auth_type_upgrades_scram_secret(pooler, pg):
    # auth_type=md5 with a SCRAM secret in auth_file: the client is asked
    # for SCRAM (PgBouncer finish_set_pool).
    p = pooler(settings={"auth_type": "md5"},
               auth_users={"scramuser": pg.scram_secret("scramuser")})
    assert current_user(p, "scramuser", "scrampw") == "scramuser"
    with pytest.raises(psycopg.OperationalError, match=X.SASL_FAILED):
        current_user(p, "scramuser", "wrong")


def test_scram(pooler, pg):
    auth = {"appuser": "apppw", "scramuser": pg.scram_secret("scramuser"),
            "md5user": md5_secret("md5user", "md5pw")}
    p = pooler(settings={"auth_type": "scram-sha-256"}, auth_users=auth)
    assert current_user(p, "appuser", "apppw") == "appuser"
    assert current_user(p, "scramuser", "scrampw") == "scramuser"
    with pytest.raises(psycopg.OperationalError, match=X.SASL_FAILED):
        current_user(p, "scramuser", "wrong")
    with pytest.raises(psycopg.OperationalError, match=X.SASL_FAILED):
        current_user(p, "appuser", "wrong")
    # An md5 secret cannot verify a SCRAM exchange.
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        current_user(p, "md5user", "md5pw")
    p.assert_serves(user="appuser", password="apppw")


def test_hba(pooler):
    hba = """
# pgbouncer hba: trust one user, reject one, md5 for one, SCRAM for the rest
host  all  trustuser  127.0.0.1/32  trust
host  all  appuser    127.0.0.1/32  reject
host  all  md5user    127.0.0.1/32  md5
host  all  all        127.0.0.1/32  scram-sha-256
"""
    auth = {"trustuser": "trustpw", "appuser": "apppw", "scramuser": "scrampw",
            "md5user": md5_secret("md5user", "md5pw")}
    p = pooler(settings={"auth_type": "hba"}, auth_users=auth, hba=hba)
    assert raw_login_ok(p, "trustuser") == "trustuser"          # no password asked
    assert raw_login_ok(p, "md5user", "md5pw") == "md5user"
    assert current_user(p, "scramuser", "scrampw") == "scramuser"
    with pytest.raises(psycopg.OperationalError, match=X.SASL_FAILED):
        current_user(p, "scramuser", "nope")
    f = login_error(p, "appuser", "apppw")
    assert f["M"] == X.HBA_REJECT
    assert (f["S"], f["C"]) == ("FATAL", X.POOLER_SQLSTATE)
    p.assert_serves()


@pytest.mark.parametrize("where", ["global", "database"])
def test_auth_query(pooler, pg, where):
    # Users that are not in auth_file are looked up with auth_query (the
    # default: SELECT usename, passwd FROM pg_shadow WHERE usename=$1) over a
    # connection as auth_user, a superuser whose password is in auth_file.
    settings = {"auth_type": "md5"}
    dbs = {"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb"}
    if where == "global":
        settings["auth_user"] = "authuser"
    else:
        dbs["testdb"] += " auth_user=authuser"
    p = pooler(settings=settings, databases=dbs, auth_users={"authuser": "authpw"})
    # appuser has a SCRAM secret in PostgreSQL: the client does SCRAM with
    # the pooler, and the pooler reuses the client's keys for the server.
    assert current_user(p, "appuser", "apppw") == "appuser"
    # md5user has an md5 secret: plain md5 exchange, md5 pass-through.
    assert raw_login_ok(p, "md5user", "md5pw") == "md5user"
    with pytest.raises(psycopg.OperationalError, match=X.SASL_FAILED):
        current_user(p, "appuser", "wrong")
    f = login_error(p, "md5user", "wrong")
    assert f["M"] == X.PASSWORD_FAILED
    # No row for the user: it fails like a wrong password (PgBouncer would
    # say "no such user", which lets clients probe for names).
    f = login_error(p, "ghost", "x")
    assert f["M"] == X.AUTH_QUERY_NO_USER
    assert (f["S"], f["C"]) == ("FATAL", X.AUTH_FAILED_SQLSTATE)
    p.assert_serves(user="appuser", password="apppw")


def test_auth_dbname(pooler, pg):
    # auth_dbname (PgBouncer >= 1.20): the auth_query runs in another database.
    p = pooler(settings={"auth_type": "md5", "auth_user": "authuser", "auth_dbname": "authdb"},
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb",
                          "authdb": f"host=127.0.0.1 port={pg.port} dbname=testdb2"},
               auth_users={"authuser": "authpw"})
    assert current_user(p, "appuser", "apppw") == "appuser"
    # The lookup connection is on the auth database, not on testdb.
    assert any(r[2] == "testdb2" for r in pg.backends(usename="authuser"))


# ------------------------------------------------------------- server side

@pytest.mark.parametrize("role,secret", [
    ("trustuser", None),            # pg_hba trust
    ("plainuser", "plainpw"),       # pg_hba password (cleartext)
    ("md5user", "md5pw"),           # pg_hba md5
    ("scramuser", "scrampw"),       # pg_hba scram-sha-256
])
def test_server_auth_password_in_databases(pooler, pg, role, secret):
    conn = f"host=127.0.0.1 port={pg.port} dbname=testdb user={role}"
    if secret:
        conn += f" password={secret}"
    p = pooler(settings={"auth_type": "trust"}, databases={"testdb": conn},
               auth_users={"trustuser": "x"})
    assert current_user(p, "trustuser") == role


@pytest.mark.parametrize("role,secret", [
    ("plainuser", "plainpw"),
    ("md5user", "md5pw"),
    ("md5user", md5_secret("md5user", "md5pw")),   # md5 secret reused as is
    ("scramuser", "scrampw"),
])
def test_server_auth_password_from_auth_file(pooler, role, secret):
    p = pooler(settings={"auth_type": "trust"}, auth_users={role: secret})
    assert current_user(p, role) == role


def test_server_auth_scram_pass_through(pooler, pg):
    # auth_file holds only the SCRAM secret (as in pg_authid): the pooler
    # cannot know the password and logs in to PostgreSQL with the keys the
    # client proved during its own SCRAM exchange.
    p = pooler(settings={"auth_type": "scram-sha-256"},
               auth_users={"scramuser": pg.scram_secret("scramuser"),
                           "appuser": pg.scram_secret("appuser")})
    assert current_user(p, "scramuser", "scrampw") == "scramuser"
    assert current_user(p, "appuser", "apppw") == "appuser"
    # Several clients, several server connections, all with the same keys.
    with p.connect(user="scramuser", password="scrampw") as a, \
            p.connect(user="scramuser", password="scrampw") as b:
        assert a.execute("select pg_backend_pid()").fetchone() != \
            b.execute("select pg_backend_pid()").fetchone()


def test_server_auth_wrong_password_is_forwarded(pooler, pg):
    # PgBouncer >= 1.19 hands the server's error to the waiting client with
    # the server's SQLSTATE: FATAL 28P01 'password authentication failed for
    # user "scramuser"'.
    p = pooler(settings={"auth_type": "trust"},
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb "
                                    "user=scramuser password=wrong"},
               auth_users={"trustuser": "x"})
    f = login_error(p, "trustuser")
    assert f["M"] == 'password authentication failed for user "scramuser"'
    assert (f["S"], f["C"]) == ("FATAL", "28P01")
    p.wait_log(r"password authentication failed for user", timeout=3)


def test_server_too_many_connections_forwarded(pooler, pg):
    # limituser has CONNECTION LIMIT 0: PostgreSQL answers FATAL 53300
    # 'too many connections for role "limituser"', which reaches the client.
    p = pooler(settings={"auth_type": "trust"},
               databases={"testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb user=limituser"},
               auth_users={"trustuser": "x"})
    f = login_error(p, "trustuser")
    assert f["M"] == 'too many connections for role "limituser"'
    assert f["C"] == "53300"
