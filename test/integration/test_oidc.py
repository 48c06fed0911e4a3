"""
Token logins: a JWT from the identity provider instead of a password
(auth_type oidc, the token as the password; oauth, SASL OAUTHBEARER as
PostgreSQL 18 speaks it), verified against a JWKS from a file or an HTTPS
URL, mapped to a database role by the ident map; the role's real
credential stays with the pooler. Tokens and keys are made here.
"""

import base64
import http.server
import json
import ssl
import struct
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from conftest import IS_PGBOUNCER, default_auth_users
from helpers import PgError, RawConn, message, startup_packet, wait_for

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's token logins")

jwt = pytest.importorskip("jwt")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

ISSUER = "https://idp.example.test"
AUDIENCE = "pgsieve-test"
IDENT = """
tokens  alice@corp.example          appuser
tokens  /^bot-[0-9]+$               appuser
tokens  +mcp-readers                appuser
"""


def b64(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Keys:
    """Signing keys and the JWKS that publishes their public halves."""

    def __init__(self):
        self.keys = {}

    def add_rsa(self, kid):
        self.keys[kid] = ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return kid

    def add_ec(self, kid):
        self.keys[kid] = ("ES256", ec.generate_private_key(ec.SECP256R1()))
        return kid

    def jwks(self, kids=None):
        out = []
        for kid, (alg, key) in self.keys.items():
            if kids is not None and kid not in kids:
                continue
            pub = key.public_key().public_numbers()
            if alg == "RS256":
                out.append({"kty": "RSA", "kid": kid, "use": "sig", "alg": alg,
                            "n": b64(pub.n), "e": b64(pub.e)})
            else:
                coord = lambda v: base64.urlsafe_b64encode(v.to_bytes(32, "big")).rstrip(b"=").decode()  # noqa: E731
                out.append({"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": "P-256",
                            "x": coord(pub.x), "y": coord(pub.y)})
        return json.dumps({"keys": out})

    def token(self, kid, sub="alice@corp.example", lifetime=300, **claims):
        alg, key = self.keys[kid]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now - 5,
                "exp": now + lifetime, "jti": str(uuid.uuid4())}
        body.update(claims)
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid):
        return self.keys[kid][1].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def keys():
    k = Keys()
    k.add_rsa("rsa-1")
    k.add_ec("ec-1")
    return k


def token_pooler(pooler, tmp_path, keys, method="oidc", jwks_url=None, **settings):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(keys.jwks())
    ident = tmp_path / "ident.conf"
    ident.write_text(IDENT)
    s = {"auth_type": "hba", "oidc_issuer": ISSUER, "oidc_audience": AUDIENCE,
         "auth_ident_file": str(ident), "oidc_ident_map": "tokens",
         "oidc_allow_insecure_transport": "1", "audit_file": str(tmp_path / "audit.jsonl")}
    if jwks_url:
        s["oidc_jwks_url"] = jwks_url
    else:
        s["oidc_jwks_file"] = str(jwks_file)
    s.update(settings)
    hba = f"host all appuser 127.0.0.1/32 {method}\nhost all all 127.0.0.1/32 trust\n"
    return pooler(settings=s, hba=hba, auth_users=default_auth_users())


def login(p, token, user="appuser"):
    return psycopg.connect(host=p.host, port=p.port, dbname="testdb", user=user,
                           password=token, autocommit=True, sslmode="disable")


def refused(p, token, user="appuser", reason=None):
    """The login fails with 28000 and a message that tells the client
    nothing about why; the log says why (reason: a regex)."""
    start = len(p.log())
    c = RawConn(p.host, p.port)
    with pytest.raises(PgError) as e:
        c.startup(user, "testdb", password=token)
    c.close()
    assert e.value.sqlstate == "28000"
    assert e.value.message == f'token authentication failed for user "{user}"'
    p.expect_fatal("token authentication failed")
    if reason:
        p.wait_log(r"login failed: token: .*(" + reason + ")", since=start)


def test_rs256_and_es256_tokens_log_in_as_the_mapped_role(pooler, tmp_path, keys, pg):
    p = token_pooler(pooler, tmp_path, keys)
    for kid in ("rsa-1", "ec-1"):
        with login(p, keys.token(kid)) as c:
            # The server session is the role's, logged in with the pooler's credential.
            assert c.execute("select current_user").fetchone()[0] == "appuser"
    log = p.log()
    assert 'token login: identity "alice@corp.example"' in log
    assert keys.token("rsa-1") not in log   # never the token itself


def test_group_and_regex_lines_of_the_ident_map(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys)
    with login(p, keys.token("rsa-1", sub="someone", groups=["staff", "mcp-readers"])) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with login(p, keys.token("ec-1", sub="bot-42")) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # No line for this identity, group or pattern: refused, the reason only in the log.
    refused(p, keys.token("rsa-1", sub="mallory", groups=["staff"]),
            reason=r'identity "mallory" .* may not log in as appuser by map tokens')
    refused(p, keys.token("rsa-1", sub="bot-4x"))


BAD_TOKENS = {
    "expired": "exp .* is past",
    "future": "nbf .* is ahead",
    "issuer": "iss",
    "audience": "aud does not include",
    "signature": "signature",
    "kid": "kid",
    "none": "none",
    "hs256-confusion": "HS256",
    "garbage": "segments|malformed|base64",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_bad_tokens_are_refused(pooler, tmp_path, keys, case):
    p = token_pooler(pooler, tmp_path, keys)
    now = int(time.time())
    if case == "expired":
        token = keys.token("rsa-1", exp=now - 120)
    elif case == "future":
        token = keys.token("rsa-1", nbf=now + 600, iat=now + 600)
    elif case == "issuer":
        token = keys.token("rsa-1", iss="https://evil.example")
    elif case == "audience":
        token = keys.token("rsa-1", aud="someone-else")
    elif case == "signature":
        other = Keys()
        other.add_rsa("rsa-1")   # same kid, another key
        token = other.token("rsa-1")
    elif case == "kid":
        other = Keys()
        other.add_rsa("rsa-unknown")
        token = other.token("rsa-unknown")
    elif case == "none":
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@corp.example",
                            "exp": now + 300}, None, algorithm="none",
                           headers={"kid": "rsa-1"})
    elif case == "hs256-confusion":
        # The classic attack: HMAC with the published RSA public key as the secret.
        header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@corp.example", "exp": now + 300}
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=")  # noqa: E731
        signing_input = enc(header) + b"." + enc(body)
        import hashlib
        import hmac
        sig = hmac.new(keys.public_pem("rsa-1"), signing_input, hashlib.sha256).digest()
        token = (signing_input + b"." + base64.urlsafe_b64encode(sig).rstrip(b"=")).decode()
    else:
        token = "not-a-jwt"
    refused(p, token, reason=BAD_TOKENS[case])
    assert token[:40] not in p.log()   # the token itself is never logged


def test_a_megabyte_token_is_cut_off(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys)
    c = RawConn(p.host, p.port)
    try:
        c.startup("appuser", "testdb", password=keys.token("rsa-1", padding="x" * (1 << 20)))
        raise AssertionError("a 1 MB token was accepted")
    except PgError as e:
        assert e.sqlstate == "08P01"
    except (ConnectionError, OSError):
        pass   # closed while the rest of the megabyte was still on its way
    finally:
        c.close()
    p.wait_log(r"message too long during authentication")
    p.expect_fatal("message too long")
    with login(p, keys.token("rsa-1")) as ok:   # the pooler is fine
        assert ok.execute("select 1").fetchone()[0] == 1


def test_tokens_need_tls_or_the_unix_socket(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys, oidc_allow_insecure_transport="0")
    with pytest.raises(psycopg.OperationalError, match="requires TLS or the unix socket"):
        login(p, keys.token("rsa-1")).close()
    p.expect_fatal("requires TLS or the unix socket")


def test_identity_reaches_lua_audit_and_show_clients(pooler, tmp_path, keys):
    from test_admin import ADMIN, console, show
    script = tmp_path / "who.lua"
    script.write_text("""
return {
  connect = function(session)
    local id = session.identity
    if not id then return sieve.deny('no identity') end
    if id.claims.act and id.claims.act.sub ~= 'agent-7' then return sieve.deny('unknown actor') end
    session.tags.groups = table.concat(id.groups, ',')
  end,
  statement = function(stmt, session)
    if stmt.sql == 'select 42' then
      sieve.log('identity ' .. session.identity.name .. ' groups ' .. session.tags.groups
                .. ' actor ' .. session.identity.claims.act.sub)
    end
  end,
}""")
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = token_pooler(pooler, tmp_path, keys, policy_scripts=str(script), admin_users=ADMIN)
    p.write_config(auth_users=auth)
    p.reload()
    tok = keys.token("rsa-1", groups=["mcp-readers"], act={"sub": "agent-7"})
    with login(p, tok) as c:
        c.execute("select 42")
        p.wait_log(r"identity alice@corp.example groups mcp-readers actor agent-7")
        with console(p) as adm:
            rows = [r for r in show(adm, "CLIENTS") if r["user"] == "appuser"]
        assert rows and rows[0]["identity"] == "alice@corp.example"
    recs = wait_for(lambda: [json.loads(line) for line in
                             (tmp_path / "audit.jsonl").read_text().splitlines()
                             if '"statement"' in line], 5, what="audit statement record")
    connect = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
               if '"connect"' in line][0]
    assert connect["identity"] == "alice@corp.example" and connect["issuer"] == ISSUER
    assert connect["groups"] == ["mcp-readers"] and connect["jti"]
    assert recs[0]["identity"] == "alice@corp.example"
    assert recs[0]["act"] == {"sub": "agent-7"}
    assert tok not in (tmp_path / "audit.jsonl").read_text()


def test_identity_propagation_guc_reaches_the_server(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys, identity_propagation="guc",
                     pool_mode="transaction", default_pool_size="1")
    with login(p, keys.token("rsa-1")) as a:
        assert a.execute("select current_setting('pgsieve.identity', true)").fetchone()[0] \
            == "alice@corp.example"
    with login(p, keys.token("ec-1", sub="bot-7")) as b:
        # The same server connection (pool of one), now with the other identity.
        assert b.execute("select current_setting('pgsieve.identity', true)").fetchone()[0] \
            == "bot-7"
    # What a client sets there itself is not taken for the next one's identity.
    with login(p, keys.token("rsa-1")) as a:
        a.execute("select set_config('pgsieve.identity', 'bob', false)")
    with login(p, keys.token("rsa-1")) as a2:
        assert a2.execute("select current_setting('pgsieve.identity', true)").fetchone()[0] \
            == "alice@corp.example"
    # A client without a token clears it.
    with psycopg.connect(**p.conninfo(), autocommit=True) as c:
        assert c.execute("select current_setting('pgsieve.identity', true)").fetchone()[0] == ""


# ------------------------------------------------------------ OAUTHBEARER, byte for byte

def sasl_initial(mech, data):
    body = mech.encode() + b"\0"
    body += struct.pack("!i", -1) if data is None else struct.pack("!i", len(data)) + data
    return message(b"p", body)


def auth_code(payload):
    return struct.unpack("!I", payload[:4])[0]


def oauth_start(p):
    c = RawConn(p.host, p.port)
    c.send(startup_packet({"user": "appuser", "database": "testdb"}))
    mtype, payload = c.read_msg()
    assert mtype == b"R" and auth_code(payload) == 10
    assert payload[4:] == b"OAUTHBEARER\0\0"
    return c


def test_oauthbearer_accepts_a_bearer_token(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys, method="oauth")
    c = oauth_start(p)
    tok = keys.token("ec-1")
    c.send(sasl_initial("OAUTHBEARER", b"n,,\x01auth=Bearer " + tok.encode() + b"\x01\x01"))
    mtype, payload = c.read_msg()
    assert (mtype, auth_code(payload)) == (b"R", 0)   # AuthenticationOk, no SASLFinal
    while mtype != b"Z":
        mtype, payload = c.read_msg()
    rows, _, errors, _ = c.simple_query("select current_user")
    assert not errors and rows == [["appuser"]]
    c.close()


def test_oauthbearer_discovery_reply_and_failure(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys, method="oauth",
                     oidc_required_scopes="openid db")
    # An empty auth value asks where to get a token (libpq 18's device flow starts so).
    c = oauth_start(p)
    c.send(sasl_initial("OAUTHBEARER", b"n,,\x01auth=\x01\x01"))
    mtype, payload = c.read_msg()
    assert (mtype, auth_code(payload)) == (b"R", 11)
    reply = json.loads(payload[4:])
    assert reply == {"status": "invalid_token",
                     "openid-configuration": ISSUER + "/.well-known/openid-configuration",
                     "scope": "openid db"}
    c.send(message(b"p", b"\x01"))   # the client's kvsep ends the exchange
    mtype, payload = c.read_msg()
    assert mtype == b"E" and b"28000" in payload
    c.close()
    # A bad token gets the same reply, then the failure.
    c = oauth_start(p)
    c.send(sasl_initial("OAUTHBEARER", b"n,,\x01auth=Bearer nope.nope.nope\x01\x01"))
    mtype, payload = c.read_msg()
    assert (mtype, auth_code(payload)) == (b"R", 11)
    c.send(message(b"p", b"\x01"))
    mtype, payload = c.read_msg()
    assert mtype == b"E" and b"28000" in payload
    c.close()
    # No initial response: an empty challenge asks for it.
    c = oauth_start(p)
    c.send(sasl_initial("OAUTHBEARER", None))
    mtype, payload = c.read_msg()
    assert (mtype, auth_code(payload), payload[4:]) == (b"R", 11, b"")
    c.send(message(b"p", b"n,,\x01auth=Bearer " + keys.token("rsa-1", scope="openid db").encode()
                   + b"\x01\x01"))
    mtype, payload = c.read_msg()
    assert (mtype, auth_code(payload)) == (b"R", 0)
    c.close()
    # Malformed: no gs2 header.
    c = oauth_start(p)
    c.send(sasl_initial("OAUTHBEARER", b"auth=Bearer x\x01\x01"))
    mtype, payload = c.read_msg()
    assert mtype == b"E" and b"malformed OAUTHBEARER message" in payload
    c.close()
    p.expect_fatal("token authentication failed")
    p.expect_fatal("malformed OAUTHBEARER")


# ------------------------------------------------------------ JWKS over HTTPS

class JwksServer:
    """An HTTPS server on loopback that serves whatever JWKS the test sets."""

    def __init__(self, tmp_path):
        self.body = b'{"keys": []}'
        self.hits = 0
        from helpers import loopback_tls_certs
        d = tmp_path / "https"
        self.ca, crt, key = loopback_tls_certs(d)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server(tmp_path):
    s = JwksServer(tmp_path)
    yield s
    s.stop()


def test_jwks_url_with_key_rotation(pooler, tmp_path, keys, jwks_server):
    from test_admin import ADMIN, console, show
    jwks_server.body = keys.jwks(["rsa-1"]).encode()
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = token_pooler(pooler, tmp_path, keys, jwks_url=jwks_server.url,
                     oidc_jwks_ca_file=jwks_server.ca, oidc_jwks_min_refresh="0",
                     admin_users=ADMIN)
    p.write_config(auth_users=auth)
    p.reload()
    old = keys.token("rsa-1")
    with login(p, old) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    # A new key appears: the first token signed with it makes the pooler fetch again.
    keys.add_rsa("rsa-2")
    jwks_server.body = keys.jwks(["rsa-1", "rsa-2"]).encode()
    with login(p, keys.token("rsa-2")) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with login(p, old) as c:   # the old key is still in the set
        assert c.execute("select 1").fetchone()[0] == 1
    with console(p) as adm:
        row = show(adm, "OIDC")[0]
    assert row["source"] == jwks_server.url and row["keys"] == "2" and row["result"] == "ok"
    assert int(row["fetches"]) >= 2 and int(row["accepted"]) >= 3
    # The old key leaves the set: after the next fetch its tokens no longer verify.
    jwks_server.body = keys.jwks(["rsa-2"]).encode()
    keys.add_rsa("rsa-3")   # a token with an unknown kid triggers that fetch
    refused(p, keys.token("rsa-3"))
    refused(p, old)


def test_unreachable_issuer_serves_the_keys_it_had(pooler, tmp_path, keys, jwks_server):
    jwks_server.body = keys.jwks().encode()
    p = token_pooler(pooler, tmp_path, keys, jwks_url=jwks_server.url,
                     oidc_jwks_ca_file=jwks_server.ca, oidc_jwks_min_refresh="0")
    with login(p, keys.token("ec-1")) as c:
        assert c.execute("select 1").fetchone()[0] == 1
    jwks_server.stop()
    other = Keys()
    other.add_rsa("rsa-9")
    refused(p, other.token("rsa-9"))          # unknown kid: a fetch, which fails
    p.wait_log(r"oidc: fetching .* failed: .*the keys fetched before stay in use")
    with login(p, keys.token("ec-1")) as c:   # stale keys still verify
        assert c.execute("select 1").fetchone()[0] == 1


def test_jwks_url_with_an_untrusted_certificate_is_refused(pooler, tmp_path, keys, jwks_server):
    jwks_server.body = keys.jwks().encode()
    p = token_pooler(pooler, tmp_path, keys, jwks_url=jwks_server.url)   # system CAs only
    refused(p, keys.token("rsa-1"))
    p.wait_log(r"oidc: fetching https://127.0.0.1:\d+/jwks failed: TLS")


def test_expired_token_ends_the_session_between_transactions(pooler, tmp_path, keys):
    p = token_pooler(pooler, tmp_path, keys, oidc_enforce_expiry="1", oidc_leeway="0",
                     pool_mode="transaction")
    c = login(p, keys.token("rsa-1", lifetime=3))
    c.autocommit = False
    c.execute("select 1")           # a transaction is open across the expiry...
    time.sleep(4.2)
    assert c.execute("select 2").fetchone()[0] == 2
    c.commit()                      # ...and ends normally
    with pytest.raises(psycopg.OperationalError, match="token of this session has expired"):
        c.execute("select 3")
    c.close()
    p.expect_fatal("token of this session has expired")
    # Without the setting the session goes on.
    q = token_pooler(pooler, tmp_path / "q" if (tmp_path / "q").mkdir() is None else None,
                     keys)
    with login(q, keys.token("rsa-1", lifetime=2)) as d:
        time.sleep(3.2)
        assert d.execute("select 1").fetchone()[0] == 1


def test_psql_and_asyncpg_with_tokens_in_transaction_mode(pooler, tmp_path, keys):
    import asyncio
    import os

    import asyncpg
    from test_admin import ADMIN, console, show
    auth = default_auth_users()
    auth[ADMIN] = ""
    p = token_pooler(pooler, tmp_path, keys, pool_mode="transaction", admin_users=ADMIN)
    p.write_config(auth_users=auth)
    p.reload()
    tok = keys.token("ec-1", sub="bot-99")
    out = subprocess.run(["psql", "-X", "-At", "-h", p.host, "-p", str(p.port), "-U", "appuser",
                          "-d", "testdb", "-c", "select current_user, 40 + 2"],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PGPASSWORD=tok, PGSSLMODE="disable"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "appuser|42"

    async def run():
        conn = await asyncpg.connect(host=p.host, port=p.port, user="appuser",
                                     database="testdb", password=tok, ssl=False)
        try:
            async with conn.transaction():
                assert await conn.fetchval("select $1::int + 1", 41) == 42
            with console(p) as adm:
                rows = [r for r in show(adm, "CLIENTS") if r["user"] == "appuser"]
            assert [r["identity"] for r in rows] == ["bot-99"]
        finally:
            await conn.close()
    asyncio.run(run())
    recs = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {r.get("identity") for r in recs if r["event"] == "statement"} == {"bot-99"}


def test_bad_oidc_settings_stop_the_start_and_the_check(pooler, tmp_path, keys):
    from conftest import POOLER_BIN
    (tmp_path / "broken.json").write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    for settings, message in (
            ({"oidc_jwks_file": str(tmp_path / "broken.json")}, "no usable key"),
            ({"oidc_jwks_file": str(tmp_path / "missing.json")}, "No such file"),
            ({"oidc_algorithms": "HS256"}, "HS256"),
            ({"oidc_jwks_url": "https://127.0.0.1:1/jwks",
              "oidc_jwks_file": str(tmp_path / "broken.json")}, "not both")):
        p = pooler(settings=dict({"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE}, **settings),
                   start=False)
        out = subprocess.run([str(POOLER_BIN), "--check", str(p.ini_path)],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and message in out.stderr, (settings, out.stderr)
        p.start(wait=False)
        p.expect_exit = True
        assert p.proc.wait(10) != 0
        assert message in p.log()
        p.expect_fatal(".")


def test_unknown_kids_do_not_flood_the_issuer(pooler, tmp_path, keys, jwks_server):
    jwks_server.body = keys.jwks().encode()
    p = token_pooler(pooler, tmp_path, keys, jwks_url=jwks_server.url,
                     oidc_jwks_ca_file=jwks_server.ca, oidc_jwks_min_refresh="60")
    with login(p, keys.token("rsa-1")) as c:   # the first fetch
        assert c.execute("select 1").fetchone()[0] == 1
    fetched = jwks_server.hits
    assert fetched >= 1
    other = Keys()
    for i in range(5):
        other.add_rsa(f"random-{i}")
        refused(p, other.token(f"random-{i}"), reason="kid")
    assert jwks_server.hits == fetched   # no fetch within oidc_jwks_min_refresh
