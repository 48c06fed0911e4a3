#!/usr/bin/env bash
#
# Benchmark, not a test: pgbench through pgsieve and through PgBouncer,
# against the same PostgreSQL in the same run, both poolers configured
# identically. Prints one table row per (pool mode, workload, clients) with
# each pooler's tps and the ratio pgsieve/pgbouncer. PgBouncer 1.18 cannot
# pool named prepared statements in transaction mode, so the "prepared"
# rows of that mode compare pgsieve with PostgreSQL itself (no pooler).
#
#   bash test/bench/bench.sh                  defaults (about 11 minutes)
#   bash test/bench/bench.sh --quick          a smoke run (about 1 minute)
#
# Each cell is measured --repeat times per pooler, alternating which pooler
# goes first, and the median tps is reported: on a small machine shared by
# pgbench, PostgreSQL and the pooler, one sample varies by 20%.
#
# Options:
#   --duration S      seconds per measured pgbench run (default 5)
#   --repeat N        measured runs per pooler and cell (default 3)
#   --warmup S        unmeasured run before each measured one (default 1; 0 = none)
#   --clients LIST    client counts (default "1 10 50")
#   --modes LIST      pool modes (default "transaction session")
#   --workloads LIST  select (-S), tpcb (the default script), select-C
#                     (-S -C: a new connection per transaction), token-C
#                     (-S -C where pgsieve's clients log in with an OIDC
#                     token, auth_type oidc, against PgBouncer's SCRAM
#                     logins: logins per second; needs python3-jwt), rows
#                     (SELECT * of a 100k-row table of emails and card
#                     numbers: tps x 100000 = rows per second), masked (the
#                     same over an identical table whose two columns pgsieve
#                     masks: run it with rows, their ratio is what masking
#                     costs), extended
#                     (-S -M extended), prepared (-S -M prepared);
#                     default "select tpcb select-C extended prepared"
#   --scale N         pgbench scale (default 10)
#   --pool-size N     default_pool_size in transaction mode (default 20);
#                     session mode needs one server per client, so there
#                     it is the largest client count + 10
#   --pg-host H --pg-port P [--pg-user U]
#                     use this PostgreSQL instead of starting one; U (default
#                     postgres) must be a superuser reachable with psql; the
#                     run creates and drops the role and database
#                     pgsieve_bench, which must be able to log in from the
#                     poolers with SCRAM (password_encryption scram-sha-256)
#   --policy FILE     run pgsieve with this policy script (e.g.
#                     plugins/guard_ddl.lua): the ratio is then pgsieve with
#                     the policy against PgBouncer without one
#   --keep            keep the scratch directory (configs, logs, outputs)
#
# Environment: PGSIEVE_BIN (default: build the working tree, -O2),
# PGBOUNCER_BIN (default /usr/sbin/pgbouncer), PG_BIN (default
# /usr/lib/postgresql/15/bin).
#
# As root, PostgreSQL runs as the "postgres" user and both poolers are
# started with -u postgres. Needs: postgresql-15, postgresql-client-15
# (pgbench), pgbouncer, and pgsieve's build dependencies (see README.md).

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}

DURATION=5
REPEAT=3
WARMUP=1
CLIENTS="1 10 50"
MODES="transaction session"
WORKLOADS="select tpcb select-C extended prepared"
SCALE=10
TX_POOL=20
EXT_HOST=""
EXT_PORT=""
EXT_USER=postgres
KEEP=0
POLICY=""

usage() { sed -n '2,41p' "$0"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) DURATION=$2; shift ;;
	--repeat) REPEAT=$2; shift ;;
	--warmup) WARMUP=$2; shift ;;
	--clients) CLIENTS=$2; shift ;;
	--modes) MODES=$2; shift ;;
	--workloads) WORKLOADS=$2; shift ;;
	--scale) SCALE=$2; shift ;;
	--pool-size) TX_POOL=$2; shift ;;
	--pg-host) EXT_HOST=$2; shift ;;
	--pg-port) EXT_PORT=$2; shift ;;
	--pg-user) EXT_USER=$2; shift ;;
	--keep) KEEP=1 ;;
	--policy) POLICY=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift ;;
	--quick) DURATION=3; REPEAT=1; WARMUP=0; CLIENTS="1 10"; SCALE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

for w in $WORKLOADS; do
	case "$w" in select | tpcb | select-C | extended | prepared | token-C | rows | masked) ;;
	*) die "unknown workload $w" ;;
	esac
done
for m in $MODES; do
	case "$m" in session | transaction | statement) ;; *) die "unknown pool mode $m" ;; esac
done
MAX_CLIENTS=0
for c in $CLIENTS; do [ "$c" -gt $MAX_CLIENTS ] && MAX_CLIENTS=$c; done
SESSION_POOL=$((MAX_CLIENTS + 10))

PGBENCH=$PG_BIN/pgbench
PSQL=$PG_BIN/psql
missing=()
[ -x "$PGBENCH" ] || missing+=("$PGBENCH (postgresql-client-15)")
[ -x "$PGBOUNCER_BIN" ] || missing+=("$PGBOUNCER_BIN (pgbouncer)")
[ -n "$EXT_HOST" ] || [ -x "$PG_BIN/initdb" ] || missing+=("$PG_BIN/initdb (postgresql-15)")
[ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}"
command -v timeout >/dev/null || die "missing: timeout (coreutils)"

if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to run servers as"
	RUN_AS=(runuser -u postgres --)
	RUN_USER=postgres
	POOLER_USER=(-u postgres)
else
	RUN_AS=()
	RUN_USER=$(id -un)
	POOLER_USER=()
fi

# ------------------------------------------------------------ scratch, trap

SCRATCH=$(mktemp -d /tmp/pgsieve-bench.XXXXXX)
chmod 755 "$SCRATCH"
PG_STARTED=0
declare -A POOLER_PID=()

stop_pooler() {	# stop_pooler NAME
	local pid=${POOLER_PID[$1]:-}
	[ -n "$pid" ] || return 0
	POOLER_PID[$1]=""
	kill -INT "$pid" 2>/dev/null || return 0
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null && sleep 0.5
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for name in "${!POOLER_PID[@]}"; do stop_pooler "$name"; done
	if [ $PG_STARTED = 1 ]; then
		"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$SCRATCH/pgdata" -m immediate -w stop >/dev/null 2>&1
	elif [ -n "$EXT_HOST" ] && [ -n "${BENCH_DB_CREATED:-}" ]; then
		"$PSQL" -X -q -h "$EXT_HOST" -p "$EXT_PORT" -U "$EXT_USER" -d postgres \
			-c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1
	fi
	if [ $KEEP = 1 ]; then
		echo "kept $SCRATCH" >&2
	else
		rm -rf "$SCRATCH"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------- build

# Always from a copy of the working tree, in the scratch dir, with the
# compiler's default optimisation (-O2), as Debian builds PgBouncer.
build_pgsieve() {
	local src=$SCRATCH/src dir=$SCRATCH/build
	local git=(git -c safe.directory="$ROOT" -C "$ROOT")
	mkdir -p "$src" "$dir"
	if "${git[@]}" rev-parse --git-dir >/dev/null 2>&1; then
		"${git[@]}" ls-files -z -co --exclude-standard |
			(cd "$ROOT" && xargs -0 tar -cf - --no-recursion) | tar -C "$src" -xf - ||
			die "could not copy the sources"
	else
		tar -C "$ROOT" --warning=no-file-changed --exclude=.git --exclude='./build' \
			--exclude='./build-*' --exclude=autom4te.cache --exclude='*.o' \
			--exclude=config.status --exclude=Makefile -cf - . | tar -C "$src" -xf - ||
			[ "${PIPESTATUS[0]}" = 1 ] || die "could not copy the sources"
	fi
	say "building pgsieve in $dir"
	{ (cd "$src" && autoreconf -fi) && (cd "$dir" && "$src/configure") &&
		make -C "$dir" -j"$(nproc)"; } >"$SCRATCH/build.log" 2>&1 || {
		tail -30 "$SCRATCH/build.log" >&2
		die "build failed"
	}
	PGSIEVE_BIN=$dir/pgsieve
}

if [ -n "${PGSIEVE_BIN:-}" ]; then
	[ -x "$PGSIEVE_BIN" ] || die "PGSIEVE_BIN=$PGSIEVE_BIN is not executable"
else
	build_pgsieve
fi
mkdir "$SCRATCH/bin" "$SCRATCH/runs"
cp "$PGSIEVE_BIN" "$SCRATCH/bin/pgsieve"
[ "$RUN_USER" != "$(id -un)" ] && chown -R "$RUN_USER" "$SCRATCH"
cd "$SCRATCH" || die "cannot enter $SCRATCH"

# ------------------------------------------------------------------- ports

# Below the ephemeral range (32768-60999), where outgoing connections take
# ports at random and a fixed port would fail to bind now and then.
port_free() {
	if command -v ss >/dev/null; then
		[ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ]
	else
		! (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}
declare -A TAKEN=()
pick_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		[ -z "${TAKEN[$p]:-}" ] && port_free $p && { TAKEN[$p]=1; echo $p; return 0; }
	done
	die "no free port found"
}

# -------------------------------------------------------------- PostgreSQL

ROLE=pgsieve_bench
DB=pgsieve_bench
PW=bench-$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)

if [ -n "$EXT_HOST" ]; then
	[ -n "$EXT_PORT" ] || die "--pg-host needs --pg-port"
	PG_HOST=$EXT_HOST
	PG_PORT=$EXT_PORT
	admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$EXT_USER" "$@"; }
	init_bench() { env PGPASSWORD="$PW" "$PGBENCH" -h "$PG_HOST" -p "$PG_PORT" -U "$ROLE" "$@"; }
	PG_VERSION=$(admin -d postgres -Atc "SHOW server_version") || die "cannot connect to $PG_HOST:$PG_PORT as $EXT_USER"
else
	say "starting a throwaway PostgreSQL 15 in $SCRATCH/pgdata"
	"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$SCRATCH/pgdata" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync >"$SCRATCH/initdb.log" 2>&1 || {
		cat "$SCRATCH/initdb.log" >&2
		die "initdb failed"
	}
	cat >"$SCRATCH/pgdata/pg_hba.conf" <<-'EOF'
	local all all               trust
	host  all all 127.0.0.1/32  scram-sha-256
	EOF
	PG_HOST=127.0.0.1
	for attempt in 1 2 3 4 5; do
		PG_PORT=$(pick_port)
		cat >>"$SCRATCH/pgdata/postgresql.conf" <<-EOF

		# test/bench/bench.sh (attempt $attempt): durability off, it is a throwaway
		listen_addresses = '127.0.0.1'
		port = $PG_PORT
		unix_socket_directories = '$SCRATCH'
		password_encryption = 'scram-sha-256'
		max_connections = $((2 * (SESSION_POOL + TX_POOL) + 20))
		shared_buffers = 256MB
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		max_wal_size = 4GB
		checkpoint_timeout = 30min
		log_min_messages = warning
		EOF
		if "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$SCRATCH/pgdata" -l "$SCRATCH/postgres.log" \
			-w -t 60 start >/dev/null 2>&1; then
			PG_STARTED=1
			break
		fi
	done
	[ $PG_STARTED = 1 ] || { tail -20 "$SCRATCH/postgres.log" >&2; die "PostgreSQL did not start"; }
	admin() { "${RUN_AS[@]}" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$SCRATCH" -p "$PG_PORT" -U postgres "$@"; }
	init_bench() { "${RUN_AS[@]}" "$PGBENCH" -h "$SCRATCH" -p "$PG_PORT" -U "$ROLE" "$@"; }
	PG_VERSION=$(admin -d postgres -Atc "SHOW server_version")
fi

admin -d postgres -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PW'" -c "CREATE DATABASE $DB OWNER $ROLE" ||
	die "could not create role and database $DB (left over from an earlier run?)"
BENCH_DB_CREATED=1
say "pgbench -i -s $SCALE"
init_bench -i -q -s "$SCALE" "$DB" >"$SCRATCH/pgbench-init.log" 2>&1 || {
	tail -20 "$SCRATCH/pgbench-init.log" >&2
	die "pgbench -i failed"
}
MASKING=""
if [[ " $WORKLOADS " == *" rows "* || " $WORKLOADS " == *" masked "* ]]; then
	say "two tables of 100000 rows for rows/masked"
	for t in plain_rows masked_rows; do
		admin -d "$DB" -c "CREATE TABLE $t AS SELECT g AS id, 'user' || g || '@corp.example' AS email,
			lpad((g * 7919)::text, 16, '4') AS card, md5(g::text) AS note
			FROM generate_series(1, 100000) g" -c "ALTER TABLE $t OWNER TO $ROLE" >/dev/null ||
			die "could not create $t"
	done
	printf 'SELECT * FROM plain_rows;\n' >"$SCRATCH/rows.sql"
	printf 'SELECT * FROM masked_rows;\n' >"$SCRATCH/masked.sql"
	printf '%s\n' 'return { init = function()' \
		'  sieve.mask_column("public.masked_rows.email", sieve.mask.email)' \
		'  sieve.mask_column("public.masked_rows.card", sieve.mask.partial{keep_last = 4})' \
		'end }' >"$SCRATCH/mask.lua"
	[ "$RUN_USER" != "$(id -un)" ] && chown "$RUN_USER" "$SCRATCH/rows.sql" "$SCRATCH/masked.sql" "$SCRATCH/mask.lua"
	MASKING=1
fi
SECRET=$(admin -d postgres -Atc "SELECT rolpassword FROM pg_authid WHERE rolname = '$ROLE'")
case "$SECRET" in SCRAM-SHA-256\$*) ;; *) die "role $ROLE has no SCRAM secret" ;; esac
printf '"%s" "%s"\n' "$ROLE" "$SECRET" >"$SCRATCH/userlist.txt"
chmod 600 "$SCRATCH/userlist.txt"
[ "$RUN_USER" != "$(id -un)" ] && chown "$RUN_USER" "$SCRATCH/userlist.txt"

# ----------------------------------------------------------------- poolers

declare -A BIN=([pgsieve]="$SCRATCH/bin/pgsieve" [pgbouncer]="$PGBOUNCER_BIN")
declare -A PORT=()
PROBLEMS=()

# The same file for both poolers; only the port and file names differ.
write_ini() {	# write_ini NAME MODE POOL_SIZE
	local name=$1 ini=$SCRATCH/$1-$2.ini
	cat >"$ini" <<-EOF
	[databases]
	$DB = host=$PG_HOST port=$PG_PORT dbname=$DB

	[pgbouncer]
	listen_addr = 127.0.0.1
	listen_port = ${PORT[$name]}
	unix_socket_dir =
	auth_type = scram-sha-256
	auth_file = $SCRATCH/userlist.txt
	pool_mode = $2
	default_pool_size = $3
	max_client_conn = 1000
	logfile = $SCRATCH/$name-$2.log
	pidfile = $SCRATCH/$name.pid
	EOF
	if [ "$name" = pgsieve ] && [ -n "$TOKEN" ]; then
		# Token logins reach the same database under another name, which
		# the hba file sends to oidc; the pool logs in with the password.
		sed -i "/^\[databases\]/a ${DB}_token = host=$PG_HOST port=$PG_PORT dbname=$DB user=$ROLE password=$PW" "$ini"
		cat >>"$ini" <<-EOF
		auth_type = hba
		auth_hba_file = $SCRATCH/hba.conf
		oidc_issuer = https://bench.invalid
		oidc_audience = pgsieve-bench
		oidc_jwks_file = $SCRATCH/jwks.json
		oidc_allow_insecure_transport = 1
		EOF
	fi
	local scripts=""
	if [ "$name" = pgsieve ] && [ -n "$POLICY" ]; then
		cp "$POLICY" "$SCRATCH/policy.lua"
		[ "$RUN_USER" != "$(id -un)" ] && chown "$RUN_USER" "$SCRATCH/policy.lua"
		scripts=$SCRATCH/policy.lua
	fi
	if [ "$name" = pgsieve ] && [ -n "$MASKING" ]; then
		scripts="${scripts:+$scripts, }$SCRATCH/mask.lua"
	fi
	[ -n "$scripts" ] && echo "policy_scripts = $scripts" >>"$ini"
	[ "$RUN_USER" != "$(id -un)" ] && chown "$RUN_USER" "$ini"
	echo "$ini"
}

pooler_query() {	# pooler_query NAME SQL
	env PGPASSWORD="$PW" "$PSQL" -X -At \
		"host=127.0.0.1 port=${PORT[$1]} dbname=$DB user=$ROLE connect_timeout=3" -c "$2"
}

start_pooler() {	# start_pooler NAME MODE POOL_SIZE
	local name=$1 ini
	PORT[$name]=$(pick_port)
	ini=$(write_ini "$name" "$2" "$3")
	"${BIN[$name]}" -q "${POOLER_USER[@]}" "$ini" 2>>"$SCRATCH/$name.stderr" &
	POOLER_PID[$name]=$!
	for _ in $(seq 50); do
		kill -0 "${POOLER_PID[$name]}" 2>/dev/null || break
		pooler_query "$name" "SELECT 1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	tail -5 "$SCRATCH/$name.stderr" "$SCRATCH/$name-$2.log" >&2 2>/dev/null
	die "$name did not start ($ini)"
}

# ------------------------------------------------------------------ runs

workload_args() {	# workload_args WORKLOAD
	case "$1" in
	select) echo "-S" ;;
	tpcb) echo "" ;;
	select-C | token-C) echo "-S -C" ;;
	rows) echo "-f $SCRATCH/rows.sql" ;;
	masked) echo "-f $SCRATCH/masked.sql" ;;
	extended) echo "-S -M extended" ;;
	prepared) echo "-S -M prepared" ;;
	esac
}

# Sets RESULT to the tps of one run, or ERR / HANG / CRASH, and records why.
run_one() {	# run_one NAME MODE WORKLOAD CLIENTS SECONDS OUTFILE
	local name=$1 mode=$2 w=$3 c=$4 secs=$5 out=$6 jobs rc tps failed
	jobs=$(nproc)
	[ "$jobs" -gt "$c" ] && jobs=$c
	# shellcheck disable=SC2046
	local host=127.0.0.1 port=${PORT[$name]:-} db=$DB pw=$PW
	# "direct": PostgreSQL itself, the baseline where PgBouncer cannot play.
	[ "$name" = direct ] && host=$PG_HOST port=$PG_PORT
	[ "$w" = token-C ] && [ "$name" = pgsieve ] && db=${DB}_token pw=$TOKEN
	env PGPASSWORD="$pw" timeout -k 5 $((secs + 60)) "$PGBENCH" -n $(workload_args "$w") \
		-c "$c" -j "$jobs" -T "$secs" -h "$host" -p "$port" -U "$ROLE" "$db" \
		>"$out" 2>&1
	rc=$?
	if [ "$name" != direct ] && ! kill -0 "${POOLER_PID[$name]}" 2>/dev/null; then
		PROBLEMS+=("$name died during $mode/$w/$c clients (see $out and $SCRATCH/$name-$mode.log)")
		RESULT=CRASH
		return
	fi
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		PROBLEMS+=("$name: pgbench still running $((secs + 60))s into a ${secs}s run, $mode/$w/$c clients")
		RESULT=HANG
		return
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -1)
	if [ $rc != 0 ] || [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then
		PROBLEMS+=("$name: pgbench exit $rc, failed transactions ${failed:-?}, $mode/$w/$c clients: $(grep -m1 -iE 'error|fatal|abort' "$out")")
		RESULT=ERR
		return
	fi
	RESULT=$tps
}

# Median of numeric samples; a non-numeric sample (a failed run) wins, so
# that failures are not hidden by the others.
median() {
	local bad
	bad=$(printf '%s\n' "$@" | grep -v -E '^[0-9.]+$' | head -n 1)
	if [ -n "$bad" ]; then
		echo "$bad"
		return
	fi
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
		END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# token-C: a key, its JWKS, and one token for the role, valid for the run.
TOKEN=""
if [[ " $WORKLOADS " == *" token-C "* ]]; then
	TOKEN=$(/usr/bin/python3 - "$SCRATCH" "$ROLE" <<-'PY'
	import base64, json, sys, time
	import jwt
	from cryptography.hazmat.primitives.asymmetric import rsa
	d, role = sys.argv[1], sys.argv[2]
	key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
	n = key.public_key().public_numbers()
	b64 = lambda v: base64.urlsafe_b64encode(v.to_bytes((v.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
	with open(d + "/jwks.json", "w") as f:
	    json.dump({"keys": [{"kty": "RSA", "kid": "bench", "n": b64(n.n), "e": b64(n.e)}]}, f)
	now = int(time.time())
	print(jwt.encode({"iss": "https://bench.invalid", "aud": "pgsieve-bench", "sub": role,
	                  "iat": now, "exp": now + 86400}, key, algorithm="RS256",
	                 headers={"kid": "bench"}))
	PY
	) || die "token-C needs python3-jwt and python3-cryptography"
	printf 'host %s_token all 127.0.0.1/32 oidc\nhost all all 127.0.0.1/32 scram-sha-256\n' "$DB" \
		>"$SCRATCH/hba.conf"
	[ "$RUN_USER" != "$(id -un)" ] && chown "$RUN_USER" "$SCRATCH/jwks.json" "$SCRATCH/hba.conf"
fi

START=$SECONDS
ROWS=()
cell=0
ncells=$(( $(wc -w <<<"$MODES") * $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$CLIENTS") ))
for mode in $MODES; do
	pool=$TX_POOL
	[ "$mode" = session ] && pool=$SESSION_POOL
	say "$mode mode: starting pgsieve and pgbouncer (default_pool_size = $pool)"
	start_pooler pgsieve "$mode" "$pool"
	start_pooler pgbouncer "$mode" "$pool"
	for w in $WORKLOADS; do
		for c in $CLIENTS; do
			cell=$((cell + 1))
			base=pgbouncer
			[ "$w" = prepared ] && [ "$mode" != session ] && base=direct
			# Alternate who goes first, round by round, so that neither always
			# runs on a warmer (or more tired) machine.
			declare -A SAMPLES=([pgsieve]="" [$base]="")
			for round in $(seq "$REPEAT"); do
				if [ $(((cell + round) % 2)) = 0 ]; then order="pgsieve $base"; else order="$base pgsieve"; fi
				for name in $order; do
					if [ "$name" != direct ] && ! kill -0 "${POOLER_PID[$name]}" 2>/dev/null; then
						say "$name is not running: restarting it"
						start_pooler "$name" "$mode" "$pool"
					fi
					if [ "$WARMUP" -gt 0 ]; then
						run_one "$name" "$mode" "$w" "$c" "$WARMUP" \
							"$SCRATCH/runs/$mode-$w-$c-$name-$round-warmup.out"
					fi
					run_one "$name" "$mode" "$w" "$c" "$DURATION" \
						"$SCRATCH/runs/$mode-$w-$c-$name-$round.out"
					SAMPLES[$name]="${SAMPLES[$name]} $RESULT"
				done
			done
			declare -A TPS=()
			for name in pgsieve $base; do
				TPS[$name]=$(median ${SAMPLES[$name]})
			done
			ratio=$(awk -v a="${TPS[pgsieve]}" -v b="${TPS[$base]}" \
				'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a / b; else print "-" }')
			ROWS+=("$mode|$w|$c|${TPS[pgsieve]}|${TPS[$base]}|$ratio|$base")
			say "[$cell/$ncells] $mode $w $c clients: pgsieve ${TPS[pgsieve]} tps (${SAMPLES[pgsieve]# }), $base ${TPS[$base]} tps (${SAMPLES[$base]# })"
		done
	done
	stop_pooler pgsieve
	stop_pooler pgbouncer
done

# ------------------------------------------------------------------ report

fmt_tps() { awk -v t="$1" 'BEGIN { if (t ~ /^[0-9.]+$/) printf "%.0f", t; else print t }'; }
echo
echo "pgsieve $("$SCRATCH/bin/pgsieve" -V | awk '{print $2}') vs $("$PGBOUNCER_BIN" --version | head -1)," \
	"PostgreSQL $PG_VERSION, $(nproc) CPUs, pgbench -T $DURATION (warm-up ${WARMUP}s)," \
	"median of $REPEAT runs per cell, scale $SCALE"
[ -n "$POLICY" ] && echo "pgsieve runs the policy $(basename "$POLICY") on every statement; PgBouncer has none"
[ -n "$MASKING" ] && echo "rows/masked: SELECT * of 100000 rows (tps x 100000 = rows/s); pgsieve masks email and card of masked_rows, and has that script loaded for every row of this run"
[ -n "$TOKEN" ] && echo "token-C: pgsieve's clients log in with one RS256 token (auth_type oidc, verified once, then from its cache); PgBouncer's with SCRAM"
echo "both poolers: auth_type scram-sha-256 (SCRAM pass-through), default_pool_size $TX_POOL" \
	"(transaction) / $SESSION_POOL (session), TCP on 127.0.0.1"
echo
printf '%-12s %-9s %7s %13s %15s %8s  %s\n' mode workload clients "pgsieve tps" "baseline tps" ratio baseline
printf '%-12s %-9s %7s %13s %15s %8s  %s\n' ------------ --------- ------- ------------- --------------- -------- ---------
for row in "${ROWS[@]}"; do
	IFS='|' read -r m w c a b r base <<<"$row"
	[ "$base" = direct ] && base="postgres (no pooler)"
	printf '%-12s %-9s %7s %13s %15s %8s  %s\n' "$m" "$w" "$c" "$(fmt_tps "$a")" "$(fmt_tps "$b")" "$r" "$base"
done
# Geometric mean of the ratios against PgBouncer: one number per run, fair
# to small and large tps.
printf '%s\n' "${ROWS[@]}" | awk -F'|' '$6 ~ /^[0-9.]+$/ && $7 == "pgbouncer" { s += log($6); n++ }
	END { if (n) printf "\ngeometric mean of ratios against pgbouncer: %.2f over %d cells\n", exp(s / n), n }'
echo "total time: $((SECONDS - START))s"
if [ ${#PROBLEMS[@]} -gt 0 ]; then
	echo
	echo "problems:"
	printf '  %s\n' "${PROBLEMS[@]}"
	KEEP=1
	exit 1
fi
exit 0
