#!/usr/bin/env bash
#
# Builds pgsieve and runs every test: C unit tests (make check), then the
# pytest integration suite against a PostgreSQL 15 it starts itself.
#
#   bash test/run-tests.sh           normal build in build/, unit + integration
#   bash test/run-tests.sh --asan    also an ASan/UBSan build in build-asan/ and
#                                    the integration suite again against it
#                                    (implied when CI=true)
#   bash test/run-tests.sh --no-build
#                                    no build, no unit tests: the integration
#                                    suite against $PGSIEVE_BIN (e.g. PgBouncer)
#   extra arguments after --         passed to pytest (e.g. -- -k timeouts)
#
# As root (CI, a fresh Debian 12), it installs what it needs with apt-get and
# runs PostgreSQL and the suite as the "postgres" user: PostgreSQL refuses to
# run as root. As another user it installs nothing and says what is missing.
#
# The last line printed is a pytest-style summary of all integration runs,
# the unit-test summary just before it. The exit status is non-zero if
# anything failed, including a pytest run that collected no test.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ASAN=0
[ "${CI:-}" = "true" ] && ASAN=1
NO_BUILD=0
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
	case "$1" in
	--asan) ASAN=1 ;;
	--no-asan) ASAN=0 ;;
	--no-build) NO_BUILD=1; ASAN=0 ;;
	--) shift; PYTEST_EXTRA=("$@"); break ;;
	-h|--help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "run-tests.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

PG_BIN=/usr/lib/postgresql/15/bin
BUILD_PKGS="autoconf automake libtool pkg-config gcc make libevent-dev libssl-dev
	libc-ares-dev libpg-query-dev liblua5.4-dev libjwt-dev libjansson-dev"
TEST_PKGS="postgresql-15 postgresql-client-15 python3-pytest python3-psycopg
	python3-asyncpg python3-pytest-timeout python3-jwt python3-cryptography pgbouncer valgrind
	git iproute2"

SCRATCH=""
CHILD=""
FAILED=0
declare -a SUMMARIES=()

say() { printf '\n=== %s\n' "$*"; }

cleanup() {
	local rc=$?
	if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
		kill -TERM "$CHILD" 2>/dev/null
	fi
	if [ -n "$SCRATCH" ] && [ -d "$SCRATCH" ]; then
		# Everything the suite started (PostgreSQL, poolers) runs with
		# paths under the unique scratch dir.
		local pids
		pids=$(pgrep -f -- "$SCRATCH" 2>/dev/null | grep -vx "$$" || true)
		if [ -n "$pids" ]; then
			kill -TERM $pids 2>/dev/null
			sleep 1
			kill -KILL $pids 2>/dev/null
		fi
		if [ -z "${KEEP_SCRATCH:-}" ]; then
			rm -rf "$SCRATCH"
		else
			echo "scratch kept in $SCRATCH" >&2
		fi
	fi
	if [ -n "${MIGRATE_REQ_WAS:-}" ]; then
		echo "$MIGRATE_REQ_WAS" > /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || true
	fi
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- packages

if [ "$(id -u)" -eq 0 ]; then
	say "installing packages (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	# Services of installed packages (postgresql's "main" cluster,
	# pgbouncer) must not start: the suite runs its own.
	POLICY_ADDED=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		POLICY_ADDED=1
	fi
	apt-get update -qq >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $BUILD_PKGS $TEST_PKGS >/tmp/pgsieve-apt.log 2>&1; then
		tail -30 /tmp/pgsieve-apt.log >&2
		echo "apt-get install failed" >&2
		[ $POLICY_ADDED = 1 ] && rm -f /usr/sbin/policy-rc.d
		exit 1
	fi
	[ $POLICY_ADDED = 1 ] && rm -f /usr/sbin/policy-rc.d
	id postgres >/dev/null 2>&1 || { echo "user postgres missing after install" >&2; exit 1; }
	RUN_AS=(runuser -u postgres --)
	# so_reuseport restarts: connections queued on the listener that closes
	# move to the new process instead of being reset (Linux 5.14+). The
	# previous value comes back at exit.
	if [ -w /proc/sys/net/ipv4/tcp_migrate_req ]; then
		MIGRATE_REQ_WAS=$(cat /proc/sys/net/ipv4/tcp_migrate_req)
		echo 1 > /proc/sys/net/ipv4/tcp_migrate_req
	fi
else
	missing=()
	for t in autoreconf pkg-config gcc make psql pgbench; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ -x "$PG_BIN/initdb" ] || missing+=("$PG_BIN/initdb (postgresql-15)")
	for m in pytest psycopg asyncpg; do
		/usr/bin/python3 -c "import $m" 2>/dev/null || missing+=("python3 module $m")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "run-tests.sh: missing: ${missing[*]}" >&2
		echo "install (as root): apt-get install $BUILD_PKGS $TEST_PKGS" | tr -s '\t\n ' ' ' >&2
		echo >&2
		exit 1
	fi
	RUN_AS=()
fi

# ------------------------------------------------------------------- build

build() {	# build DIR CONFIGURE-ARGS...
	local dir=$1
	shift
	say "configure $dir: $*"
	# A build dir configured from another source dir (a previous run's
	# copy) has stale dependencies: start it afresh.
	if [ -f "$dir/config.status" ] && ! grep -qF "srcdir='$SRC'" "$dir/config.status"; then
		rm -rf "$dir"
	fi
	mkdir -p "$dir"
	(cd "$dir" && "$SRC/configure" "$@" >configure.out 2>&1) || {
		tail -40 "$dir/configure.out"
		return 1
	}
	say "make $dir"
	make -C "$dir" -j2 >"$dir/make.out" 2>&1 || {
		grep -E 'error|warning' "$dir/make.out" | head -60
		tail -20 "$dir/make.out"
		return 1
	}
}

SCRATCH=$(mktemp -d /tmp/pgsieve-tests.XXXXXX)
chmod 755 "$SCRATCH"

UNIT_LINE="unit tests: not run (--no-build)"
if [ $NO_BUILD = 1 ]; then
	[ -n "${PGSIEVE_BIN:-}" ] || { echo "--no-build needs PGSIEVE_BIN" >&2; exit 2; }
else
	SRC=$ROOT
	if [ -f "$ROOT/config.status" ]; then
		# Configured in place (a developer's ./pgsieve): a VPATH build
		# refuses such a source dir, so build from a clean copy of the
		# source files and leave the in-place build alone.
		SRC=$SCRATCH/src
		say "source dir is configured in place: building from a copy in $SRC"
		mkdir -p "$SRC"
		if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
			(cd "$ROOT" && git ls-files -z -co --exclude-standard) |
				(cd "$ROOT" && xargs -0 tar -cf - --no-recursion) | tar -C "$SRC" -xf -
		else
			tar -C "$ROOT" --exclude=.git --exclude='build*' --exclude='*.o' \
				--exclude=config.status --exclude=Makefile -cf - . | tar -C "$SRC" -xf -
		fi
	fi
	say "autoreconf"
	(cd "$SRC" && autoreconf -fi) >"$SCRATCH/autoreconf.log" 2>&1 || {
		cat "$SCRATCH/autoreconf.log"
		echo "===== build failed: autoreconf ====="
		exit 1
	}

	if ! build "$ROOT/build" --enable-werror --enable-cassert; then
		echo "===== build failed ====="
		exit 1
	fi

	say "make check (C unit tests)"
	UNIT_LINE="unit tests: not run"
	if make -C "$ROOT/build" -j2 check >"$ROOT/build/check.out" 2>&1; then
		unit_rc=0
	else
		unit_rc=1
		FAILED=1
		cat "$ROOT/build/check.out" | tail -40
		for f in "$ROOT"/build/test/unit/*.log; do
			[ -f "$f" ] && grep -q -E ':test-result: (FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null && { echo "--- $f"; tail -30 "$f"; }
		done
	fi
	grep -E '^(PASS|FAIL|ERROR|SKIP|XFAIL|XPASS):' "$ROOT/build/check.out" || true
	u_total=$(sed -n 's/^# TOTAL: *//p' "$ROOT/build/check.out" | tail -1)
	u_pass=$(sed -n 's/^# PASS: *//p' "$ROOT/build/check.out" | tail -1)
	u_fail=$(sed -n 's/^# FAIL: *//p' "$ROOT/build/check.out" | tail -1)
	u_err=$(sed -n 's/^# ERROR: *//p' "$ROOT/build/check.out" | tail -1)
	if [ -n "$u_total" ]; then
		UNIT_LINE="unit tests: ${u_pass:-0} passed, $(( ${u_fail:-0} + ${u_err:-0} )) failed (of $u_total programs)"
	elif [ $unit_rc -ne 0 ]; then
		UNIT_LINE="unit tests: make check failed before running tests"
	fi

	# The suite runs as a normal user, so the root refusal is checked here,
	# while we are still root (PostgreSQL and PgBouncer refuse root too).
	if [ "$(id -u)" = 0 ]; then
		say "pgsieve refuses to run as root without -u"
		out=$("$ROOT/build/pgsieve" -q "$ROOT/etc/pgsieve.ini" 2>&1)
		rc=$?
		if [ $rc -ne 0 ] && grep -q "should not run as root" <<<"$out"; then
			echo "ok: exit $rc, $out"
		else
			echo "FAILED: exit $rc, output: $out"
			FAILED=1
		fi
	fi

	if [ $ASAN = 1 ]; then
		if ! build "$ROOT/build-asan" --enable-asan --enable-werror --enable-cassert; then
			echo "ASan build failed"
			FAILED=1
			ASAN=0
		fi
	fi
fi

# -------------------------------------------------------- integration suite

TREE=$ROOT
if [ ${#RUN_AS[@]} -gt 0 ]; then
	chown postgres "$SCRATCH"
	if ! "${RUN_AS[@]}" test -r "$ROOT/pytest.ini" -a -r "$ROOT/test/integration/conftest.py"; then
		# The checkout is not readable by postgres (e.g. under /root):
		# run from a copy it owns.
		say "copying the tree to $SCRATCH/tree for the postgres user"
		mkdir "$SCRATCH/tree"
		tar -C "$ROOT" --exclude=.git -cf - . | tar -C "$SCRATCH/tree" -xf -
		chown -R postgres "$SCRATCH/tree"
		TREE=$SCRATCH/tree
	fi
fi

# LeakSanitizer cannot run everywhere (ptrace-restricted sandboxes); probe.
SAN_LEAKS=1
if [ $ASAN = 1 ]; then
	probe=$SCRATCH/lsan-probe
	printf 'int main(void){return 0;}\n' | gcc -fsanitize=address -x c - -o "$probe" 2>/dev/null &&
		if "${RUN_AS[@]}" "$probe" 2>&1 | grep -q 'LeakSanitizer has encountered a fatal error'; then
			echo "LeakSanitizer does not work here: leak checks off"
			SAN_LEAKS=0
		fi
fi

run_suite() {	# run_suite NAME BINARY
	local name=$1 bin=$2 out=$SCRATCH/pytest-$1.out rc line
	# Short paths: unix socket paths (tmp dir + .s.PGSQL.port) must stay
	# under 108 bytes.
	local tmp=$SCRATCH/${name:0:1}
	mkdir -p "$tmp"
	[ ${#RUN_AS[@]} -gt 0 ] && chown postgres "$tmp"
	say "integration suite ($name): $bin"
	local env=(env PYTHONDONTWRITEBYTECODE=1 PGSIEVE_BIN="$bin" TMPDIR="$tmp"
		PG_BIN="$PG_BIN" CI="${CI:-}")
	if [ "$name" = asan ]; then
		env+=(ASAN_OPTIONS="detect_leaks=$SAN_LEAKS:abort_on_error=1:halt_on_error=1:print_stacktrace=1:detect_stack_use_after_return=1"
			UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
			LSAN_OPTIONS="report_objects=1")
	fi
	(
		cd "$TREE" || exit 1
		"${RUN_AS[@]}" "${env[@]}" /usr/bin/python3 -m pytest -p no:cacheprovider \
			--basetemp="$tmp/pt" "${PYTEST_EXTRA[@]}"
		echo $? >"$SCRATCH/rc-$name"
	) 2>&1 | tee "$out" &
	CHILD=$!
	wait $CHILD
	rc=$(cat "$SCRATCH/rc-$name" 2>/dev/null || echo 1)
	# pytest: 0 all passed, 1 some failed, 5 no tests collected, ...
	[ "$rc" -ne 0 ] && FAILED=1
	line=$(grep -E '^=+ .*(passed|failed|error|no tests ran|skipped).* in [0-9.]+s' "$out" | tail -1)
	if ! grep -qE ' passed' <<<"$line" || grep -qE 'failed|error|no tests ran' <<<"$line"; then
		FAILED=1
	fi
	[ -z "$line" ] && FAILED=1
	SUMMARIES+=("$line")
}

STARTED=$SECONDS
if [ $NO_BUILD = 1 ]; then
	run_suite normal "$PGSIEVE_BIN"
else
	run_suite normal "$TREE/build/pgsieve"
fi
if [ $ASAN = 1 ]; then
	if [ $FAILED = 1 ]; then
		# Hung tests cost their whole timeout each: with the normal run
		# already failing, bound the sanitizer run so CI stays in time.
		echo "normal run failed: the ASan run stops after 10 failures"
		PYTEST_EXTRA+=(--maxfail=10)
	fi
	run_suite asan "$TREE/build-asan/pgsieve"
fi

# ------------------------------------------------------------------ summary

total() {	# total KEYWORD: sum of "N KEYWORD" over all summaries
	local n=0 s v
	for s in "${SUMMARIES[@]}"; do
		v=$(grep -oE "[0-9]+ $1" <<<"$s" | grep -oE '^[0-9]+' | head -1)
		n=$(( n + ${v:-0} ))
	done
	echo $n
}
passed=$(total passed)
failed=$(total failed)
errors=$(total 'errors?')
skipped=$(total skipped)
parts="$passed passed"
[ "$failed" -gt 0 ] && parts="$failed failed, $parts"
[ "$skipped" -gt 0 ] && parts="$parts, $skipped skipped"
[ "$errors" -eq 1 ] && parts="$parts, 1 error"
[ "$errors" -gt 1 ] && parts="$parts, $errors errors"
[ "$passed" -eq 0 ] && FAILED=1

echo
for s in "${SUMMARIES[@]}"; do echo "integration run: ${s:-no summary (pytest crashed?)}"; done
echo "$UNIT_LINE"
echo "===================== $parts in $(( SECONDS - STARTED )).00s ====================="
exit $FAILED
