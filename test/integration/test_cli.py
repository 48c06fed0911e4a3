"""Command line: -V, -h, -u, -q, -v, config errors at start-up, root refusal."""

import os
import re
import subprocess

import pytest

from conftest import IS_PGBOUNCER, POOLER_BIN, ROOT


def run(*args, timeout=10):
    r = subprocess.run([str(POOLER_BIN), *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def expected_version_line():
    if IS_PGBOUNCER:
        return re.compile(r"^PgBouncer \d+\.\d+\.\d+$")
    m = re.search(r"AC_INIT\(\[pgsieve\],\s*\[([^\]]+)\]", (ROOT / "configure.ac").read_text())
    return re.compile("^" + re.escape(f"pgsieve {m.group(1)}") + "$")


def test_version():
    rc, out = run("-V")
    assert rc == 0
    assert expected_version_line().match(out.splitlines()[0]), out


def test_help():
    rc, out = run("-h")
    assert rc == 0
    assert "Usage" in out or "usage" in out
    for opt in ("-d", "-q", "-v", "-u", "-V", "-h"):
        assert re.search(rf"(^|\s){re.escape(opt)}\b", out), f"{opt} missing from -h:\n{out}"


def test_unknown_user_for_u_fails_clearly(pooler):
    p = pooler(start=False)
    rc, out = run("-u", "no_such_user_xyz", str(p.ini_path))
    assert rc != 0
    assert "no_such_user_xyz" in out
    assert "FATAL" in out


def test_missing_config_file_fails(tmp_path):
    missing = tmp_path / "nope.ini"
    rc, out = run(str(missing))
    assert rc != 0
    assert str(missing) in out


def test_config_error_at_start_names_file_and_line(pooler):
    p = pooler(start=False)
    lines = p.ini_path.read_text().splitlines()
    lines.append("default_pool_size = many")
    p.ini_path.write_text("\n".join(lines) + "\n")
    rc, out = run(str(p.ini_path))
    assert rc != 0
    assert f"pgbouncer.ini:{len(lines)}" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when the suite runs as root")
def test_refuses_root_without_u(pooler):
    p = pooler(start=False)
    rc, out = run(str(p.ini_path))
    assert rc != 0 and "FATAL" in out


def test_quiet_logs_only_to_logfile(pooler):
    p = pooler(start=False)
    p.write_config(settings={"logfile": str(p.logfile)})
    p.start(args=("-q",))
    p.assert_serves()
    p.stop()
    stderr = p.stderr_path.read_text()
    assert " LOG " not in stderr, stderr
    assert " LOG " in p.logfile.read_text()


def test_verbose_adds_debug_lines(pooler):
    quiet = pooler()
    quiet.assert_serves()
    verbose = pooler(args=("-v", "-v"))
    verbose.assert_serves()
    assert "DEBUG" in verbose.log()
    assert "DEBUG" not in quiet.log()


@pytest.mark.skipif(IS_PGBOUNCER, reason="[pgsieve] section alias is a pgsieve extension")
def test_pgsieve_section_alias(pooler):
    p = pooler(section="pgsieve")
    p.assert_serves()
