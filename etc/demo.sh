#!/usr/bin/env bash
#
# Runs pgsieve for real: builds it, starts a throwaway PostgreSQL 15 with a
# "demo" role (SCRAM password) and a "demo" database, starts pgsieve in
# front of it with etc/pgsieve.ini, and prints the psql command to connect.
# Ctrl-C stops everything and removes the temporary directory.
#
#   bash etc/demo.sh           run until Ctrl-C
#   bash etc/demo.sh --check   run one query through pgsieve, exit 0 or 1
#
# Made for a fresh Debian 12. As root it installs what is missing with
# apt-get and runs PostgreSQL and pgsieve as the "postgres" user (both
# refuse to run as root). As another user it runs them as that user, and
# uses sudo for apt-get if something is missing.
#
# Environment: PGSIEVE_BIN=path uses that binary instead of building;
# PG_BIN (default /usr/lib/postgresql/15/bin).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CHECK=0
case "${1:-}" in
"") ;;
--check) CHECK=1 ;;
-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
*) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

# The packages test/run-tests.sh builds with, plus the server and psql.
BUILD_PKGS="autoconf automake libtool pkg-config gcc make libevent-dev libssl-dev
	libc-ares-dev libpg-query-dev liblua5.4-dev libjwt-dev libjansson-dev"
RUN_PKGS="postgresql-15 postgresql-client-15"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages

missing_pkgs() {
	local p out=()
	for p in $BUILD_PKGS $RUN_PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			out+=("$p")
	done
	echo "${out[*]:-}"
}

install_pkgs() {	# install_pkgs [sudo]
	local missing
	missing=$(missing_pkgs)
	[ -z "$missing" ] && return 0
	say "installing with apt-get: $missing"
	# Installing postgresql-15 would start Debian's own cluster on port
	# 5432; this demo runs its own, so keep package services from starting.
	local policy_added=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		"$@" sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d &&
			chmod +x /usr/sbin/policy-rc.d'
		policy_added=1
	fi
	local rc=0
	"$@" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
	# shellcheck disable=SC2086
	[ $rc = 0 ] && { "$@" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $missing || rc=$?; }
	[ $policy_added = 1 ] && "$@" rm -f /usr/sbin/policy-rc.d
	[ $rc = 0 ] || die "apt-get failed"
}

if [ "$(id -u)" -eq 0 ]; then
	command -v dpkg-query >/dev/null || die "not a Debian system: install $BUILD_PKGS $RUN_PKGS yourself"
	install_pkgs
	id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with postgresql-15)"
	RUN_AS=(runuser -u postgres --)
	RUN_USER=postgres
else
	if command -v dpkg-query >/dev/null && [ -n "$(missing_pkgs)" ]; then
		command -v sudo >/dev/null || die "missing packages: $(missing_pkgs) (install them as root)"
		install_pkgs sudo
	fi
	RUN_AS=()
	RUN_USER=$(id -un)
fi
[ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found (postgresql-15)"

# ------------------------------------------------------------ scratch, trap

SCRATCH=$(mktemp -d /tmp/pgsieve-demo.XXXXXX)
chmod 755 "$SCRATCH"
PG_STARTED=0
POOLER_PID=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$POOLER_PID" ] && kill -0 "$POOLER_PID" 2>/dev/null; then
		# INT: stop once server connections are released; QUIT: at once.
		kill -INT "$POOLER_PID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$POOLER_PID" 2>/dev/null || break
			sleep 0.3
		done
		kill -QUIT "$POOLER_PID" 2>/dev/null || true
		sleep 0.3
		kill -KILL "$POOLER_PID" 2>/dev/null || true
		wait "$POOLER_PID" 2>/dev/null || true
	fi
	if [ $PG_STARTED = 1 ]; then
		"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$SCRATCH/pgdata" -m fast -w stop >/dev/null 2>&1 ||
			"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$SCRATCH/pgdata" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "${KEEP_SCRATCH:-}" ]; then
		echo "kept $SCRATCH" >&2
	else
		rm -rf "$SCRATCH"
	fi
	[ $CHECK = 0 ] && say "stopped pgsieve and PostgreSQL, removed $SCRATCH"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------- build

# Sources as they are in the working tree (tracked and new files).
copy_sources() {	# copy_sources DEST
	local git=(git -c safe.directory="$ROOT" -C "$ROOT")
	if "${git[@]}" rev-parse --git-dir >/dev/null 2>&1; then
		"${git[@]}" ls-files -z -co --exclude-standard |
			(cd "$ROOT" && xargs -0 tar -cf - --no-recursion) | tar -C "$1" -xf -
	else
		# Not a git checkout: everything but build products. Exit status 1
		# only means a file changed while being read (a build next door).
		tar -C "$ROOT" --warning=no-file-changed --exclude=.git --exclude='./build' \
			--exclude='./build-*' --exclude=autom4te.cache --exclude='*.o' \
			--exclude=config.status --exclude=Makefile -cf - . | tar -C "$1" -xf - ||
			[ "${PIPESTATUS[0]}" = 1 ]
	fi
}

# Out of tree, as test/run-tests.sh does: in build/ with the same configure
# options, so the two share one build. A source dir configured in place
# cannot host a VPATH build: then build a copy in the scratch dir.
build_pgsieve() {
	local src=$ROOT dir=$ROOT/build
	if [ -f "$ROOT/config.status" ]; then
		src=$SCRATCH/src
		dir=$SCRATCH/build
		mkdir -p "$src"
		copy_sources "$src" || die "could not copy the sources to $src"
	fi
	say "building pgsieve in $dir"
	(cd "$src" && autoreconf -fi) >"$SCRATCH/build.log" 2>&1 &&
		mkdir -p "$dir" &&
		(cd "$dir" && "$src/configure" --enable-werror --enable-cassert) >>"$SCRATCH/build.log" 2>&1 &&
		make -C "$dir" -j"$(nproc)" >>"$SCRATCH/build.log" 2>&1 || {
		tail -30 "$SCRATCH/build.log" >&2
		die "build failed"
	}
	BIN=$dir/pgsieve
}

if [ -n "${PGSIEVE_BIN:-}" ]; then
	BIN=$PGSIEVE_BIN
	[ -x "$BIN" ] || die "PGSIEVE_BIN=$BIN is not executable"
else
	build_pgsieve
fi
# The checkout may not be readable by the user the servers run as.
mkdir "$SCRATCH/bin"
cp "$BIN" "$SCRATCH/bin/pgsieve"
[ "$RUN_USER" != "$(id -un)" ] && chown -R "$RUN_USER" "$SCRATCH"
cd "$SCRATCH"

# ------------------------------------------------------------ ports

# A port nobody listens on, below the ephemeral range (32768-60999), where
# outgoing connections would take ports at random.
port_free() {
	if command -v ss >/dev/null; then
		[ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
	else
		! (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}
pick_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		port_free $p && { echo $p; return 0; }
	done
	die "no free port found"
}

# ------------------------------------------------------------ PostgreSQL

as_run_user() { "${RUN_AS[@]}" "$@"; }
psql_admin() {	# psql_admin DB SQL...: as superuser over the unix socket
	local db=$1
	shift
	as_run_user "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SCRATCH" -p "$PG_PORT" \
		-U postgres -d "$db" "$@"
}

say "creating a PostgreSQL 15 cluster in $SCRATCH/pgdata"
as_run_user "$PG_BIN/initdb" -D "$SCRATCH/pgdata" -U postgres -A trust -E UTF8 \
	--locale=C --no-sync >"$SCRATCH/initdb.log" 2>&1 || {
	cat "$SCRATCH/initdb.log" >&2
	die "initdb failed"
}
cat >"$SCRATCH/pgdata/pg_hba.conf" <<'EOF'
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
EOF
for attempt in 1 2 3 4 5; do
	PG_PORT=$(pick_port)
	cat >>"$SCRATCH/pgdata/postgresql.conf" <<EOF

# etc/demo.sh (attempt $attempt)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SCRATCH'
password_encryption = 'scram-sha-256'
fsync = off
EOF
	if as_run_user "$PG_BIN/pg_ctl" -D "$SCRATCH/pgdata" -l "$SCRATCH/postgres.log" \
		-w -t 60 start >/dev/null 2>&1; then
		PG_STARTED=1
		break
	fi
done
[ $PG_STARTED = 1 ] || { tail -20 "$SCRATCH/postgres.log" >&2; die "PostgreSQL did not start"; }
say "PostgreSQL 15 is listening on 127.0.0.1:$PG_PORT"

PASSWORD=demo-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 10)
psql_admin postgres <<EOF
CREATE ROLE demo LOGIN PASSWORD '$PASSWORD';
CREATE DATABASE demo OWNER demo;
EOF
psql_admin demo <<'EOF'
SET ROLE demo;
CREATE TABLE customers (
	id    int PRIMARY KEY,
	name  text NOT NULL,
	email text NOT NULL,
	city  text NOT NULL
);
INSERT INTO customers VALUES
	(1, 'Ada Lovelace',     'ada@example.com',     'London'),
	(2, 'Grace Hopper',     'grace@example.com',   'New York'),
	(3, 'Edsger Dijkstra',  'edsger@example.com',  'Eindhoven'),
	(4, 'Barbara Liskov',   'barbara@example.com', 'Boston'),
	(5, 'Donald Knuth',     'don@example.com',     'Stanford');
EOF
SECRET=$(psql_admin postgres -Atc "SELECT rolpassword FROM pg_authid WHERE rolname = 'demo'")
case "$SECRET" in SCRAM-SHA-256\$*) ;; *) die "no SCRAM secret for role demo" ;; esac

# --------------------------------------------------------------- pgsieve

POOLER_PORT=$(pick_port)
while [ "$POOLER_PORT" = "$PG_PORT" ]; do POOLER_PORT=$(pick_port); done

# The sample config with this run's ports and paths.
sed -e "s|^demo = host=127.0.0.1 port=5432 |demo = host=127.0.0.1 port=$PG_PORT |" \
	-e "s|^listen_port = .*|listen_port = $POOLER_PORT|" \
	-e "s|^unix_socket_dir = .*|unix_socket_dir = $SCRATCH|" \
	-e "s|^auth_file = .*|auth_file = $SCRATCH/userlist.txt|" \
	-e "s|^logfile = .*|logfile = $SCRATCH/pgsieve.log|" \
	-e "s|^pidfile = .*|pidfile = $SCRATCH/pgsieve.pid|" \
	-e "s|^policy_scripts = .*|policy_scripts = $SCRATCH/plugins/guard_ddl.lua|" \
	"$ROOT/etc/pgsieve.ini" >"$SCRATCH/pgsieve.ini"
mkdir -p "$SCRATCH/plugins"
cp "$ROOT/plugins/guard_ddl.lua" "$SCRATCH/plugins/"
for want in "port=$PG_PORT " "listen_port = $POOLER_PORT" "auth_file = $SCRATCH/" \
	"logfile = $SCRATCH/" "pidfile = $SCRATCH/" "unix_socket_dir = $SCRATCH" \
	"policy_scripts = $SCRATCH/plugins/"; do
	grep -qF "$want" "$SCRATCH/pgsieve.ini" || die "etc/pgsieve.ini changed shape: could not set '$want'"
done
printf '"demo" "%s"\n' "$SECRET" >"$SCRATCH/userlist.txt"
chmod 600 "$SCRATCH/userlist.txt"
[ "$RUN_USER" != "$(id -un)" ] && chown -R "$RUN_USER" "$SCRATCH/pgsieve.ini" "$SCRATCH/userlist.txt" \
	"$SCRATCH/plugins"

# As root, pgsieve itself drops to the postgres user (-u), as a service would.
POOLER_ARGS=()
[ "$(id -u)" -eq 0 ] && POOLER_ARGS+=(-u postgres)
say "starting pgsieve on 127.0.0.1:$POOLER_PORT"
if [ $CHECK = 1 ]; then
	"$SCRATCH/bin/pgsieve" -q "${POOLER_ARGS[@]}" "$SCRATCH/pgsieve.ini" 2>"$SCRATCH/pgsieve.stderr" &
else
	"$SCRATCH/bin/pgsieve" "${POOLER_ARGS[@]}" "$SCRATCH/pgsieve.ini" &
fi
POOLER_PID=$!

CONNINFO="host=127.0.0.1 port=$POOLER_PORT dbname=demo user=demo password=$PASSWORD"
query() { "$PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 "$CONNINFO connect_timeout=3" -c "$1"; }

ready=0
for _ in $(seq 50); do
	kill -0 "$POOLER_PID" 2>/dev/null || break
	if query "SELECT 1" >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.2
done
if [ $ready = 0 ]; then
	cat "$SCRATCH/pgsieve.stderr" "$SCRATCH/pgsieve.log" 2>/dev/null | tail -20 >&2 || true
	die "pgsieve did not answer on port $POOLER_PORT"
fi

if [ $CHECK = 1 ]; then
	got=$(query "SELECT count(*) || ' customers, first: ' || min(name) FROM customers" 2>&1) || got="error: $got"
	want="5 customers, first: Ada Lovelace"
	denied=$(query "DROP TABLE customers" 2>&1) && denied="(it ran)"
	if [ "$got" = "$want" ] && [[ "$denied" == *"DROP TABLE is not allowed through this gateway"* ]]; then
		echo "demo.sh --check: ok: query through pgsieve returned '$got'; the policy refused DROP TABLE"
		exit 0
	fi
	echo "demo.sh --check: DROP TABLE answered: $denied" >&2
	echo "demo.sh --check: FAILED: expected '$want', got '$got'" >&2
	tail -20 "$SCRATCH/pgsieve.log" >&2 || true
	exit 1
fi

cat <<EOF

pgsieve is running on 127.0.0.1:$POOLER_PORT in front of PostgreSQL 15 on port $PG_PORT.
Connect with:

    psql "$CONNINFO"

and try:  SELECT * FROM customers;
     and:  DELETE FROM customers;     (the sample policy, plugins/guard_ddl.lua, refuses it)

Config: $SCRATCH/pgsieve.ini    auth_file: $SCRATCH/userlist.txt
Log:    $SCRATCH/pgsieve.log (also printed below)
Reload the config after editing it:  kill -HUP $POOLER_PID

Press Ctrl-C to stop pgsieve and PostgreSQL and delete $SCRATCH.

EOF
set +e
wait "$POOLER_PID"
rc=$?
POOLER_PID=""
echo "pgsieve exited with status $rc" >&2
exit $rc
