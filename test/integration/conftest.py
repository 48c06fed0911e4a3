"""
Integration harness for pgsieve (and, for cross-checking expectations,
PgBouncer itself: PGSIEVE_BIN=/usr/sbin/pgbouncer).

- `pg` (session): a PostgreSQL 15 cluster made with initdb in a temporary
  directory, loopback only, with roles for every authentication method.
- `pooler` (function): a factory; each call writes a pgbouncer.ini (plus
  auth_file and, if asked, an hba file) into the test's tmp dir, starts a
  fresh pooler on its own port, waits until the port accepts, and on
  teardown stops it and fails the test if its log shows a sanitizer report
  or a FATAL the test did not declare with expect_fatal().

Must run as a non-root user: PostgreSQL refuses root.
"""

import contextlib
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psycopg
import pytest

from helpers import RawConn, free_port, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
PG_BIN = pathlib.Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

# Role name -> password. pg_hba.conf gives each the method in its name;
# "appuser" and "authuser" (a superuser for auth_query) use SCRAM.
ROLES = {
    "trustuser": "trustpw",
    "scramuser": "scrampw",
    "md5user": "md5pw",
    "plainuser": "plainpw",
    "appuser": "apppw",
    "authuser": "authpw",
}

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer", "ERROR: AddressSanitizer")
FATAL_RE = re.compile(r"\[\d+\] FATAL\b|^FATAL\b", re.M)


def pooler_binary():
    env = os.environ.get("PGSIEVE_BIN")
    if env:
        return pathlib.Path(env).resolve()
    for cand in (ROOT / "pgsieve", ROOT / "build" / "pgsieve"):
        if cand.exists():
            return cand
    return ROOT / "pgsieve"


POOLER_BIN = pooler_binary()
IS_PGBOUNCER = "pgbouncer" in POOLER_BIN.name.lower()
# PGSIEVE_VALGRIND=1 runs every pooler under valgrind (memcheck); its
# reports fail the test like a sanitizer report. Slow: for a few tests.
VALGRIND = os.environ.get("PGSIEVE_VALGRIND", "") not in ("", "0")


def pytest_report_header(config):
    return [f"pooler binary: {POOLER_BIN} ({'PgBouncer' if IS_PGBOUNCER else 'pgsieve'})",
            f"running as uid {os.geteuid()}"]


# ------------------------------------------------------------- per-test timeout
#
# pytest-timeout (Debian: python3-pytest-timeout) reads `timeout` from
# pytest.ini. Without it, the same ini value drives a SIGALRM fallback.

try:
    import pytest_timeout  # noqa: F401
    HAVE_PYTEST_TIMEOUT = True
except ImportError:
    HAVE_PYTEST_TIMEOUT = False


def pytest_addoption(parser):
    if not HAVE_PYTEST_TIMEOUT:
        parser.addini("timeout", "per-test timeout in seconds (fallback)", default="60")


if not HAVE_PYTEST_TIMEOUT:
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item):
        secs = int(float(item.config.getini("timeout") or 60))
        marker = item.get_closest_marker("timeout")
        if marker and marker.args:
            secs = int(marker.args[0])

        def on_alarm(signum, frame):
            raise TimeoutError(f"test exceeded its {secs}s timeout")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(secs)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test timeout")


# ------------------------------------------------------------------ PostgreSQL

class Postgres:
    def __init__(self, base):
        self.base = pathlib.Path(base)
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "postgres.log"
        self.host = "127.0.0.1"
        self.port = free_port()

    def _run(self, *args, check=True, timeout=120):
        return subprocess.run([str(PG_BIN / args[0]), *args[1:]], check=check,
                              timeout=timeout, capture_output=True, text=True)

    def init(self):
        self.sockdir.mkdir(parents=True)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.sockdir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
password_encryption = 'scram-sha-256'
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
""")
        with open(self.datadir / "pg_hba.conf", "w") as f:
            f.write("""
local   all all                      trust
host    all postgres   127.0.0.1/32  trust
host    all trustuser  127.0.0.1/32  trust
host    all limituser  127.0.0.1/32  trust
host    all scramuser  127.0.0.1/32  scram-sha-256
host    all md5user    127.0.0.1/32  md5
host    all plainuser  127.0.0.1/32  password
host    all all        127.0.0.1/32  scram-sha-256
""")

    def start(self):
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                  "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode="fast"):
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                  "-m", mode, "-w", "-t", "60", "restart")

    def connect(self, dbname="testdb", user="postgres", **kw):
        kw.setdefault("autocommit", True)
        return psycopg.connect(host=str(self.sockdir), port=self.port, dbname=dbname,
                               user=user, connect_timeout=5, **kw)

    def sql(self, query, params=None, dbname="testdb"):
        """Runs one statement as superuser over the unix socket; returns rows
        (or None for statements without a result)."""
        with self.connect(dbname=dbname) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def backends(self, usename=None, datname=None):
        """Client backends as (pid, usename, datname, state, application_name)."""
        q = ("select pid, usename, datname, state, application_name from pg_stat_activity "
             "where backend_type = 'client backend' and pid <> pg_backend_pid()")
        args = []
        if usename:
            q += " and usename = %s"
            args.append(usename)
        if datname:
            q += " and datname = %s"
            args.append(datname)
        return self.sql(q, args, dbname="postgres")

    def backend_pids(self, usename=None, datname=None):
        return {r[0] for r in self.backends(usename, datname)}

    def scram_secret(self, role):
        return self.sql("select rolpassword from pg_authid where rolname = %s", [role],
                        dbname="postgres")[0][0]

    def terminate(self, usename):
        self.sql("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s",
                 [usename], dbname="postgres")


@pytest.fixture(scope="session")
def pg():
    if os.geteuid() == 0:
        pytest.exit("the integration suite must run as a non-root user "
                    "(PostgreSQL refuses root); see test/run-tests.sh", returncode=4)
    base = tempfile.mkdtemp(prefix="pgsieve-pg-")
    p = Postgres(base)
    try:
        p.init()
        p.start()
        setup = f"""
SET password_encryption = 'scram-sha-256';
CREATE ROLE trustuser LOGIN PASSWORD '{ROLES["trustuser"]}';
CREATE ROLE scramuser LOGIN PASSWORD '{ROLES["scramuser"]}';
CREATE ROLE plainuser LOGIN PASSWORD '{ROLES["plainuser"]}';
CREATE ROLE appuser LOGIN PASSWORD '{ROLES["appuser"]}';
CREATE ROLE authuser LOGIN SUPERUSER PASSWORD '{ROLES["authuser"]}';
CREATE ROLE limituser LOGIN CONNECTION LIMIT 0;
CREATE ROLE retryuser LOGIN PASSWORD 'not-the-right-one';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD '{ROLES["md5user"]}';
"""
        with p.connect(dbname="postgres") as conn:
            for stmt in filter(str.strip, setup.split(";")):
                conn.execute(stmt)
            for db in ("testdb", "testdb2", "benchdb", "benchdb2"):
                conn.execute(f"CREATE DATABASE {db}")
        for db in ("testdb", "testdb2", "benchdb", "benchdb2"):
            with p.connect(dbname=db) as conn:
                conn.execute("GRANT ALL ON SCHEMA public TO PUBLIC")
        yield p
    finally:
        p.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _quiet_postgres(pg):
    """Each test starts with no client backend left on PostgreSQL: counts of
    backends per user or database must not see a previous test's server
    connections that are still going away (or still in a pg_sleep)."""
    if not wait_quiet(pg, 6):
        pg.sql("select pg_terminate_backend(pid) from pg_stat_activity "
               "where backend_type = 'client backend' and pid <> pg_backend_pid()",
               dbname="postgres")
        wait_quiet(pg, 5)
    yield


def wait_quiet(pg, timeout):
    deadline = time.monotonic() + timeout
    while pg.backends():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="session")
def bench(pg):
    """benchdb initialised for pgbench (scale 1) directly on PostgreSQL, with
    every role allowed to run TPC-B on it."""
    subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", str(pg.sockdir), "-p", str(pg.port),
                    "-U", "postgres", "benchdb"], check=True, capture_output=True, timeout=120)
    pg.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC", dbname="benchdb")
    return "benchdb"


_table_seq = [0]


@pytest.fixture
def table(pg):
    """A fresh table t_N(v int) in testdb, writable by every role."""
    _table_seq[0] += 1
    name = f"t_{os.getpid()}_{_table_seq[0]}"
    pg.sql(f"CREATE TABLE {name} (v int)")
    pg.sql(f"GRANT ALL ON {name} TO PUBLIC")
    yield name
    pg.sql(f"DROP TABLE IF EXISTS {name}")


# --------------------------------------------------------------------- pooler

class Pooler:
    def __init__(self, pg, workdir, name):
        self.pg = pg
        self.dir = pathlib.Path(workdir)
        self.name = name
        self.host = "127.0.0.1"
        self.port = free_port()
        self.sockdir = self.dir
        self.ini_path = self.dir / "pgbouncer.ini"
        self.auth_path = self.dir / "userlist.txt"
        self.hba_path = self.dir / "hba.conf"
        self.stderr_path = self.dir / "stderr.log"
        self.logfile = self.dir / "pooler.log"
        self.san_prefix = self.dir / "sanitizer"
        self.proc = None
        self.expected_fatals = []
        self.expect_exit = False
        self.settings = {}
        self.databases = {}
        self.users = {}
        self.section = "pgbouncer"
        self.extra_ini = ""
        self.stopped = False

    # -- configuration
    def default_databases(self):
        pg = self.pg
        return {
            "testdb": f"host=127.0.0.1 port={pg.port} dbname=testdb",
            "testdb2": f"host=127.0.0.1 port={pg.port} dbname=testdb2",
        }

    def default_settings(self):
        return {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": str(self.sockdir),
            "auth_type": "trust",
            "auth_file": str(self.auth_path),
            "pool_mode": "session",
            "default_pool_size": "5",
            "max_client_conn": "100",
            "server_login_retry": "1",
            "ignore_startup_parameters": "extra_float_digits",
        }

    def render_ini(self):
        lines = ["[databases]"]
        for k, v in self.databases.items():
            lines.append(f"{k} = {v}")
        lines.append("")
        if self.users:
            lines.append("[users]")
            for k, v in self.users.items():
                lines.append(f"{k} = {v}")
            lines.append("")
        lines.append(f"[{self.section}]")
        for k, v in self.settings.items():
            if v is not None:
                lines.append(f"{k} = {v}")
        lines.append(self.extra_ini)
        return "\n".join(lines) + "\n"

    def write_config(self, settings=None, databases=None, users=None, auth_users=None,
                     hba=None, extra_ini=None, section=None):
        """(Re)writes the ini (and auth/hba files when given). settings
        values of None remove a default."""
        if databases is not None:
            self.databases = dict(databases)
        if settings:
            self.settings.update(settings)
        if users is not None:
            self.users = dict(users)
        if extra_ini is not None:
            self.extra_ini = extra_ini
        if section is not None:
            self.section = section
        if auth_users is not None:
            with open(self.auth_path, "w") as f:
                for u, secret in auth_users.items():
                    f.write(f'"{u}" "{secret}"\n')
        if hba is not None:
            self.hba_path.write_text(hba)
            self.settings["auth_hba_file"] = str(self.hba_path)
        self.ini_path.write_text(self.render_ini())

    # -- process
    def env(self):
        env = dict(os.environ)
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if var in env:
                # Reports also go to files: a daemonized pooler has no stderr.
                env[var] = env[var] + f":log_path={self.san_prefix}"
        return env

    def command(self, *args):
        return [str(POOLER_BIN), *args, str(self.ini_path)]

    def launch_command(self, *args):
        if VALGRIND:
            return ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite",
                    "--error-exitcode=99", f"--log-file={self.dir}/valgrind.%p"] + \
                self.command(*args)
        return self.command(*args)

    def start(self, args=(), wait=True):
        self.err_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.launch_command(*args), stdout=self.err_file,
                                     stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=str(self.dir), start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=30 if VALGRIND else 10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"pooler exited with {self.proc.returncode} during start-up:\n"
                            + self.log_tail())
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"pooler did not accept on port {self.port} within {timeout}s:\n"
                    + self.log_tail())

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self):
        """SIGHUP; returns once the pooler says it applied or refused the file."""
        before = self.log_size()
        self.signal(signal.SIGHUP)
        if IS_PGBOUNCER:
            time.sleep(0.5)   # PgBouncer logs nothing after applying a reload
        else:
            self.wait_log(r"configuration reloaded|reload failed", timeout=10, since=before)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(3) is None:
                self.proc.send_signal(signal.SIGINT)
                if self.wait_exit(2) is None:
                    self.proc.kill()
                    self.proc.wait(5)
        self.err_file.close()

    # -- logs
    def log(self):
        text = ""
        for p in (self.stderr_path, self.logfile):
            if p.exists():
                text += p.read_text(errors="replace")
        for p in self.dir.glob(self.san_prefix.name + "*"):
            text += p.read_text(errors="replace")
        for p in self.dir.glob("valgrind.*"):
            text += p.read_text(errors="replace")
        return text

    def log_tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def log_size(self):
        return len(self.log())

    def wait_log(self, pattern, timeout=5, since=0):
        """Waits until a log line after offset `since` matches regex."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()[since:]), timeout,
                        what=f"log line /{pattern}/ in pooler log")

    def expect_fatal(self, pattern):
        """Declares that a FATAL log line matching pattern is expected."""
        self.expected_fatals.append(re.compile(pattern))

    def problems(self):
        text = self.log()
        found = []
        for marker in SANITIZER_MARKERS:
            if marker in text:
                found.append(f"sanitizer report ({marker!r})")
                break
        if re.search(r"==\d+== (Invalid|Conditional jump|Syscall param|Mismatched free|"
                     r"\d+ bytes in \d+ blocks are definitely lost)", text):
            found.append("valgrind report")
        for line in text.splitlines():
            if FATAL_RE.search(line) and not any(rx.search(line) for rx in self.expected_fatals):
                found.append(f"unexpected FATAL: {line}")
        return found

    # -- clients
    def conninfo(self, dbname="testdb", user="trustuser", password=None, **kw):
        args = dict(host=self.host, port=self.port, dbname=dbname, user=user,
                    sslmode="disable", connect_timeout=5)
        if password is not None:
            args["password"] = password
        args.update(kw)
        return args

    def connect(self, dbname="testdb", user="trustuser", password=None, autocommit=True, **kw):
        # No server-side prepared statements: psycopg would prepare a query
        # after 5 runs, which transaction pooling does not support (yet).
        return psycopg.connect(autocommit=autocommit, prepare_threshold=None,
                               **self.conninfo(dbname, user, password, **kw))

    def raw(self, timeout=5.0):
        return RawConn(self.host, self.port, timeout=timeout)

    def unix_path(self):
        return str(self.sockdir / f".s.PGSQL.{self.port}")

    def assert_serves(self, dbname="testdb", user="trustuser", password=None):
        """A normal client still gets an answer."""
        with self.connect(dbname, user, password) as c:
            assert c.execute("select 41 + 1").fetchone()[0] == 42


def default_auth_users():
    return dict(ROLES)


@pytest.fixture
def pooler(pg, tmp_path, request):
    """Factory: pooler(settings=..., databases=..., users=..., auth_users=...,
    hba=..., extra_ini=..., args=(), wait=True) -> started Pooler."""
    started = []

    def make(settings=None, databases=None, users=None, auth_users=None, hba=None,
             extra_ini="", args=(), wait=True, section="pgbouncer", start=True):
        d = tmp_path / f"pooler{len(started)}"
        d.mkdir()
        p = Pooler(pg, d, request.node.name)
        p.settings = p.default_settings()
        p.write_config(settings=settings,
                       databases=databases if databases is not None else p.default_databases(),
                       users=users or {},
                       auth_users=auth_users if auth_users is not None else default_auth_users(),
                       hba=hba, extra_ini=extra_ini, section=section)
        started.append(p)
        if start:
            p.start(args=args, wait=wait)
        return p

    yield make

    problems = []
    for p in started:
        if p.proc is None:
            continue
        died = p.proc.poll() is not None and not p.stopped and not p.expect_exit
        p.stop()
        if died:
            problems.append(f"pooler {p.dir.name} died during the test "
                            f"(exit {p.proc.returncode})")
        problems += [f"{p.dir.name}: {x}" for x in p.problems()]
        if problems:
            problems.append("log tail:\n" + p.log_tail())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---------------------------------------------------------------- small tools

@contextlib.contextmanager
def closing_all():
    """Collects connections and closes them all at exit, ignoring errors."""
    conns = []
    try:
        yield conns
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()


@pytest.fixture
def conns(pooler):
    """A list to put client connections in; all closed before the poolers
    stop (it depends on `pooler`, so it is torn down first)."""
    with closing_all() as c:
        yield c


def pg_bin(name):
    return str(PG_BIN / name) if (PG_BIN / name).exists() else name
