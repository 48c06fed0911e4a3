"""
auth_ident_file with hba map=: which outside identity (the OS user of a
unix-socket peer login, a client certificate's CN) may log in as which
role. The suite runs as the OS user "postgres".
"""

import getpass

import psycopg
import pytest

from conftest import IS_PGBOUNCER, default_auth_users
from test_tls import cert_kw, certs, client_tls  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(IS_PGBOUNCER, reason="pgsieve's ident maps")

ME = getpass.getuser()


def unix_connect(p, user):
    return psycopg.connect(host=str(p.sockdir), port=p.port, dbname="testdb", user=user,
                           autocommit=True, connect_timeout=5)


def test_peer_without_map_needs_the_same_name(pooler):
    auth = default_auth_users()
    auth[ME] = ""
    hba = f"local all {ME} peer\nlocal all all peer\nhost all all 127.0.0.1/32 reject\n"
    p = pooler(settings={"auth_type": "hba"}, hba=hba, auth_users=auth)
    with unix_connect(p, ME) as c:
        assert c.execute("select current_user").fetchone()[0] == ME
    with pytest.raises(psycopg.OperationalError, match='peer authentication failed for user '
                                                       '"trustuser"'):
        unix_connect(p, "trustuser")
    # Over TCP the same rule set says no: peer is for the unix socket.
    with pytest.raises(psycopg.OperationalError, match="login rejected"):
        p.connect(user="trustuser")


def test_peer_with_map_maps_os_user_to_roles(pooler, tmp_path):
    ident = tmp_path / "ident.conf"
    ident.write_text(f"# os user -> roles\n"
                     f"osmap {ME} trustuser\n"
                     f"osmap /^{ME[:3]}(.*)$ md5user\n")
    hba = "local all all peer map=osmap\n"
    p = pooler(settings={"auth_type": "hba", "auth_ident_file": str(ident)}, hba=hba)
    with unix_connect(p, "trustuser") as c:
        assert c.execute("select current_user").fetchone()[0] == "trustuser"
    with unix_connect(p, "md5user") as c:      # by the regular expression
        assert c.execute("select current_user").fetchone()[0] == "md5user"
    with pytest.raises(psycopg.OperationalError, match="peer authentication failed"):
        unix_connect(p, "scramuser")
    p.wait_log(r'OS user "%s" not allowed by map osmap' % ME)
    # RELOAD picks up a changed map; a broken one keeps the old one.
    ident.write_text(f"osmap {ME} scramuser\n")
    p.reload()
    with unix_connect(p, "scramuser") as c:
        assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        unix_connect(p, "trustuser")
    ident.write_text("osmap only-two-fields\n")
    p.reload()
    p.wait_log(r"ident.conf:1: expected MAPNAME SYSTEM-NAME ROLE")
    with unix_connect(p, "scramuser") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_map_without_ident_file_refuses(pooler):
    p = pooler(settings={"auth_type": "hba"}, hba="local all all peer map=osmap\n")
    with pytest.raises(psycopg.OperationalError, match="login rejected"):
        unix_connect(p, "trustuser")
    p.wait_log(r"map=osmap but no auth_ident_file")


def test_cert_with_map(pooler, certs, tmp_path):  # noqa: F811
    ident = tmp_path / "ident.conf"
    # The certificate says "trustuser"; the map lets it be md5user too.
    ident.write_text("certs trustuser md5user\ncerts trustuser trustuser\n")
    hba = "hostssl all all 127.0.0.1/32 cert map=certs\n"
    p = pooler(settings=client_tls(certs, "require", auth_type="hba",
                                   auth_ident_file=str(ident)), hba=hba)
    for role in ("md5user", "trustuser"):
        with p.connect(user=role, sslmode="require", **cert_kw(certs, "trustuser")) as c:
            assert c.execute("select current_user").fetchone()[0] == role
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        p.connect(user="scramuser", sslmode="require", **cert_kw(certs, "trustuser"))
    # md5user's own certificate is not in the map at all.
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        p.connect(user="md5user", sslmode="require", **cert_kw(certs, "md5user"))


def test_bad_ident_file_stops_the_start(pooler, tmp_path):
    ident = tmp_path / "ident.conf"
    ident.write_text("m /(unclosed x\n")
    p = pooler(settings={"auth_ident_file": str(ident)}, start=False)
    p.start(wait=False)
    p.expect_exit = True
    assert p.proc.wait(10) != 0
    assert "ident.conf:1: bad regular expression" in p.log()
    p.expect_fatal("bad regular expression")
