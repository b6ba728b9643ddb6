#!/usr/bin/env bash
# upstreams.sh - run Bulkhead's real upstreams natively on 127.0.0.1 for tests:
#   OpenBao (dev server), moto (AWS Secrets Manager/STS), PostgreSQL, Redis.
#
#   scripts/upstreams.sh up     [SERVICE...]   start (idempotent), then print env
#   scripts/upstreams.sh down   [SERVICE...]   stop (idempotent)
#   scripts/upstreams.sh restart [SERVICE...]
#   scripts/upstreams.sh status [SERVICE...]   exit 1 if any named service is down
#   scripts/upstreams.sh env                   print `export K=V` lines
#   SERVICE is one of: bao moto postgres redis (default: all four)
#
#   eval "$(scripts/upstreams.sh up)"          # progress goes to stderr
#
# Timings on the 2-core dev machine (Debian 12, Go 1.26, Python 3.11):
#   cold `up`: 5m45s (empty Go module/build caches: OpenBao download + build ~4m50s,
#              moto venv ~1m, apt-get redis-server; PostgreSQL was preinstalled)
#   warm `up`: 0.9s with everything stopped, 0.1s when already up
#   `down bao` + `up bao`: ~2.5s (OpenBao takes ~2s to exit on SIGTERM)
# The OpenBao dev server keeps everything in memory: a restart loses all its
# data (mounts, policies, AppRoles, leases) and tests must set it up again.
set -euo pipefail

# ---------------------------------------------------------------- pinned versions
# OpenBao v2.4.0 (tag commit f9407a27fbee). The root module cannot be fetched by
# its tag (tags are v2.x but the module path has no /v2), so we use the commit's
# pseudo-version. Its go.mod replaces api/v2, sdk/v2 and api/auth/* with local
# directories that are not in the module zip; replace directives of a dependency
# are ignored, so the wrapper module below requires those modules by version.
readonly OPENBAO_VERSION=2.4.0
readonly OPENBAO_COMMIT=f9407a27fbee45f62ba521bba2bf1e2360c61031
readonly OPENBAO_MODULE=github.com/openbao/openbao
readonly OPENBAO_MODULE_VERSION=v0.0.0-20250828202315-f9407a27fbee
readonly OPENBAO_API_VERSION=v2.4.0           # github.com/openbao/openbao/api/v2
readonly OPENBAO_SDK_VERSION=v2.4.0           # github.com/openbao/openbao/sdk/v2
readonly OPENBAO_K8S_AUTH_VERSION=v2.0.1      # .../api/auth/kubernetes/v2 (used by the agent)
# api/auth/approle/v2 and api/auth/userpass/v2 are imported only by OpenBao's
# own tests, so the binary does not need them.

# Hashes pinned so the build is reproducible and does not depend on the
# checksum database (which does not know some go-kms-wrapping modules).
readonly OPENBAO_GOSUM_PINS="\
github.com/openbao/openbao v0.0.0-20250828202315-f9407a27fbee h1:TqHCYIwKxup9rYGBlqYdC23EdZ0q5QJCa1KYVyVWyDU=
github.com/openbao/openbao v0.0.0-20250828202315-f9407a27fbee/go.mod h1:sKuBBnl8LcoqrpcxF13rRTPIZjMdy5iDWSt/hAUtgfc=
github.com/openbao/openbao/api/v2 v2.4.0 h1:OcHJgexGt65qFNcpNNqM2v3otaWt8YhfD7Q5Sy6CWZc=
github.com/openbao/openbao/api/v2 v2.4.0/go.mod h1:ULxn1SwPo/txs19I1VHEBBqMspG8wiZ17qe9DMjCwP0=
github.com/openbao/openbao/sdk/v2 v2.4.0 h1:OuXvHwgKIPSKe8+70swFibVT7BxlmBv/9hCx136isuw=
github.com/openbao/openbao/sdk/v2 v2.4.0/go.mod h1:mBkdbTK18AlurO36PWLtn7Sqe7UIas98q4/pm+HcE1U=
github.com/openbao/openbao/api/auth/kubernetes/v2 v2.0.1 h1:HzEfrAon4HT+obheXE2fR4bPVw7XfBOB8Vr4reTKzLo=
github.com/openbao/openbao/api/auth/kubernetes/v2 v2.0.1/go.mod h1:AE5SKsErxuHF71oEr8tQwrhPADqujQFNXtBXSlhPzsU="

readonly MOTO_VERSION=5.2.5

# ---------------------------------------------------------------- configuration
# Absolute paths: the printed env must work from any directory.
CACHE_DIR=$(realpath -m "${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}")
STATE_DIR=$(realpath -m "${BULKHEAD_UPSTREAMS_DIR:-/tmp/bulkhead-upstreams}")
readonly CACHE_DIR STATE_DIR
readonly HOST=127.0.0.1
# Fixed ports, the same as docker-compose.yml. Postgres and Redis avoid their
# defaults so a system instance (or another project's) never clashes.
readonly BAO_PORT=${BULKHEAD_BAO_PORT:-8200}         # dev cluster port is +1 (8201)
readonly MOTO_PORT=${BULKHEAD_MOTO_PORT:-5000}
readonly PG_PORT=${BULKHEAD_PG_PORT:-55432}
readonly REDIS_PORT=${BULKHEAD_REDIS_PORT:-56379}

readonly BAO_BIN=$CACHE_DIR/bin/bao
readonly BAO_ROOT_TOKEN=bulkhead-dev-root          # dev only, never a real secret
readonly MOTO_VENV=$CACHE_DIR/moto-$MOTO_VERSION
readonly PG_USER=bulkhead PG_PASSWORD=bulkhead PG_DB=bulkhead

readonly ALL_SERVICES=(bao moto postgres redis)

# ---------------------------------------------------------------- helpers
log() { printf '[upstreams] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True if something accepts TCP connections on 127.0.0.1:$1 (bash built-in, no nc).
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid_running PIDFILE PATTERN: the pid in PIDFILE is alive and its command line
# contains PATTERN (guards against a stale pidfile whose pid was reused).
pid_running() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# show_log_tail DIR: the last lines of each log in DIR on stderr, so a CI log that only keeps our
# output still says why a service would not start.
show_log_tail() {
  local f
  for f in "$1"/*.log; do
    [[ -s $f ]] || continue
    log "last lines of $f:"
    # Only what the newest start wrote (logs are appended to; bao.log marks each start with "---- ").
    awk '/^---- /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$f" | tail -n 25 | sed 's/^/    /' >&2
  done
}

# wait_for DESC SECONDS PIDFILE PATTERN CMD...: poll CMD until it succeeds; fail after SECONDS, or
# early if the process dies (with the tail of its log). WAIT_FOR_EXIT_STATUS=1 makes a death return 3
# instead, for a caller that tries again.
wait_for() {
  local desc=$1 secs=$2 pidfile=$3 pattern=$4; shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pidfile ]] && ! pid_running "$pidfile" "$pattern"; then
      show_log_tail "$(dirname "$pidfile")"
      [[ ${WAIT_FOR_EXIT_STATUS:-0} == 1 ]] && { log "$desc exited while starting"; return 3; }
      die "$desc exited while starting; see $(dirname "$pidfile")/*.log"
    fi
    if ((SECONDS >= deadline)); then
      [[ -z $pidfile ]] || show_log_tail "$(dirname "$pidfile")"
      die "$desc did not answer within ${secs}s"
    fi
    sleep 0.1
  done
}

# launch PIDFILE LOGFILE CMD...: run CMD in its own session (so Ctrl-C or a test
# runner killing our process group does not take it down), detached from our
# stdio, and record its pid. `exec` keeps the pid written by the inner shell.
launch() {
  local pidfile=$1 logfile=$2; shift 2
  rm -f "$pidfile"   # a stale one (after a kill -9) would look like success
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  local _
  for _ in {1..50}; do [[ -s $pidfile ]] && return 0; sleep 0.02; done
  die "could not start $*"
}

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait up to 15s, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 pattern=$3 pid _
  if ! pid_running "$pidfile" "$pattern"; then
    rm -f "$pidfile"; log "$name already stopped"; return 0
  fi
  pid=$(<"$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..150}; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) ignored SIGTERM for 15s, killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name stopped"
}

# Refuse to start over a port that someone else is already using.
ensure_port_free() {
  ! port_open "$2" || die "$1: port $HOST:$2 is already in use by another process"
}

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  local aptlog=$CACHE_DIR/apt.log
  mkdir -p "$CACHE_DIR"
  log "installing Debian packages: $* (log: $aptlog)"
  if ((APT_UPDATED == 0)); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$aptlog" 2>&1 \
      || { tail -n 20 "$aptlog" >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$aptlog" 2>&1 \
    || { tail -n 20 "$aptlog" >&2; die "apt-get install $* failed"; }
}

require_curl() { command -v curl >/dev/null || apt_install curl; }

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# ================================================================ OpenBao
# Built once per machine from its Go module (no prebuilt binary download) into
# $CACHE_DIR/bin/bao; the stamp records what was built so a version bump rebuilds.
bao_stamp() { echo "openbao $OPENBAO_VERSION $OPENBAO_COMMIT"; }
# The cached binary is used only if its stamp matches and it runs: a cache restored from a damaged copy
# (cut short while it was written) is rebuilt instead of failing at start.
bao_built() { [[ -x $BAO_BIN && "$(cat "$BAO_BIN.stamp" 2>/dev/null)" == "$(bao_stamp)" ]] && "$BAO_BIN" version >/dev/null 2>&1; }

find_go() {
  if command -v go >/dev/null; then command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
  else die "Go >= 1.24 is needed to build OpenBao (https://go.dev/doc/install)"
  fi
}

bao_build() {
  bao_built && return 0
  mkdir -p "$CACHE_DIR/bin"
  # Serialise concurrent builds (two `up`s at once on a cold machine).
  exec 9>"$CACHE_DIR/bao-build.lock"
  flock 9
  if bao_built; then exec 9>&-; return 0; fi

  local go src
  go=$(find_go)
  src=$CACHE_DIR/build/openbao-$OPENBAO_VERSION
  log "building OpenBao $OPENBAO_VERSION from its Go module (once per machine, a few minutes)"
  rm -rf "$src" && mkdir -p "$src"

  # A tiny wrapper module: OpenBao's own main package is just this call.
  cat >"$src/main.go" <<'EOF'
// Generated by scripts/upstreams.sh: builds the OpenBao CLI/server.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
EOF
  cat >"$src/go.mod" <<EOF
module bulkhead.local/baobuild

go 1.24.6

require (
	$OPENBAO_MODULE $OPENBAO_MODULE_VERSION
	$OPENBAO_MODULE/api/v2 $OPENBAO_API_VERSION
	$OPENBAO_MODULE/sdk/v2 $OPENBAO_SDK_VERSION
	$OPENBAO_MODULE/api/auth/kubernetes/v2 $OPENBAO_K8S_AUTH_VERSION
)
EOF
  printf '%s\n' "$OPENBAO_GOSUM_PINS" >"$src/go.sum"

  # Inside `if !` errexit is off, hence the && chain.
  if ! (
    cd "$src" &&
      export CGO_ENABLED=0 GOFLAGS=-mod=mod && # static binary, no `ui` tag
      "$go" mod download "$OPENBAO_MODULE" &&  # verified against the pinned hash
      # OpenBao's own go.sum covers all its dependencies: reuse it.
      cat "$("$go" list -m -f '{{.Dir}}' "$OPENBAO_MODULE")/go.sum" >>go.sum &&
      "$go" build -trimpath -o "$BAO_BIN.tmp" -ldflags "-s -w \
        -X github.com/openbao/openbao/version.fullVersion=$OPENBAO_VERSION \
        -X github.com/openbao/openbao/version.GitCommit=$OPENBAO_COMMIT" .
  ) >"$src/build.log" 2>&1; then
    tail -n 30 "$src/build.log" >&2
    die "OpenBao build failed, full log: $src/build.log"
  fi
  mv -f "$BAO_BIN.tmp" "$BAO_BIN"
  bao_stamp >"$BAO_BIN.stamp"
  exec 9>&-
  log "built $("$BAO_BIN" version)"
}

bao_running() { pid_running "$STATE_DIR/bao/bao.pid" "$BAO_BIN"; }
bao_healthy() { http_ok "http://$HOST:$BAO_PORT/v1/sys/health"; }

bao_up() {
  bao_build
  require_curl
  mkdir -p "$STATE_DIR/bao"
  # A start that dies is tried twice more (a port another process is just letting go of); each
  # failure prints the tail of bao.log, so the reason is in whatever log kept our output.
  local attempt status
  for attempt in 1 2 3; do
    if ! bao_running; then
      ensure_port_free OpenBao "$BAO_PORT"
      echo "---- $(date -u +%FT%TZ) start (attempt $attempt)" >>"$STATE_DIR/bao/bao.log"
      # Without the caller's BAO_*/VAULT_* settings (a log level, an address, a token helper): they are
      # meant for clients, and the server reads some of them (BAO_LOG_LEVEL=bogus stops it at start).
      local -a unset_env=()
      local name
      for name in $(compgen -e); do [[ $name == BAO_* || $name == VAULT_* ]] && unset_env+=(-u "$name"); done
      launch "$STATE_DIR/bao/bao.pid" "$STATE_DIR/bao/bao.log" \
        env "${unset_env[@]}" "$BAO_BIN" server -dev -dev-no-store-token \
        -dev-root-token-id="$BAO_ROOT_TOKEN" \
        -dev-listen-address="$HOST:$BAO_PORT"
    fi
    # /v1/sys/health is 200 only once the dev server is initialised and unsealed.
    status=0
    WAIT_FOR_EXIT_STATUS=1 wait_for OpenBao 60 "$STATE_DIR/bao/bao.pid" "$BAO_BIN" bao_healthy || status=$?
    if ((status == 0)); then log "OpenBao up on http://$HOST:$BAO_PORT"; return 0; fi
    ((attempt < 3)) && { log "starting OpenBao again in 2s"; sleep 2; }
  done
  die "OpenBao exited while starting, three times; see $STATE_DIR/bao/bao.log"
}

bao_down() { stop_pid OpenBao "$STATE_DIR/bao/bao.pid" "$BAO_BIN"; }

# ================================================================ moto
# A virtualenv per moto version under the cache; the marker file is written last
# so an interrupted pip install is redone instead of half-used.
moto_install() {
  [[ -f $MOTO_VENV/.bulkhead-ok ]] && return 0
  local py=${BULKHEAD_PYTHON:-python3}
  command -v "$py" >/dev/null || die "python3 is needed for moto"
  log "installing moto[server]==$MOTO_VERSION into $MOTO_VENV"
  rm -rf "$MOTO_VENV"
  "$py" -m venv "$MOTO_VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  touch "$MOTO_VENV/.bulkhead-ok"
}

moto_running() { pid_running "$STATE_DIR/moto/moto.pid" moto_server; }
moto_healthy() { http_ok "http://$HOST:$MOTO_PORT/moto-api/"; }

moto_up() {
  moto_install
  require_curl
  mkdir -p "$STATE_DIR/moto"
  if ! moto_running; then
    ensure_port_free moto "$MOTO_PORT"
    launch "$STATE_DIR/moto/moto.pid" "$STATE_DIR/moto/moto.log" \
      "$MOTO_VENV/bin/moto_server" -H "$HOST" -p "$MOTO_PORT"
  fi
  wait_for moto 60 "$STATE_DIR/moto/moto.pid" moto_server moto_healthy
  log "moto up on http://$HOST:$MOTO_PORT"
}

moto_down() { stop_pid moto "$STATE_DIR/moto/moto.pid" moto_server; }

# ================================================================ PostgreSQL
# Debian's packages put the server under /usr/lib/postgresql/<major>/bin, which
# is not on PATH (a /usr/local/bin/pg_ctl, if any, may be a stray symlink), so
# always use the newest version found there.
pg_bindir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  [[ -n $d && -x $d/pg_ctl ]] && echo "$d"
}

pg_install() {
  pg_bindir >/dev/null || apt_install postgresql
  pg_bindir >/dev/null || die "no PostgreSQL found under /usr/lib/postgresql after install"
}

# The server refuses to run as root: as root, run it as the `postgres` user
# (created by the Debian package) with a data dir it owns.
# `cd /` because the postgres user usually cannot enter root's cwd.
as_pg() {
  if ((EUID == 0)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_dir() { echo "$STATE_DIR/postgres"; }

pg_running() {
  local bin; bin=$(pg_bindir) || return 1
  [[ -f $(pg_dir)/data/PG_VERSION ]] && as_pg "$bin/pg_ctl" status -D "$(pg_dir)/data" >/dev/null 2>&1
}

pg_psql() {
  PGPASSWORD=$PG_PASSWORD "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
}

pg_init() {
  local dir bin pwfile
  dir=$(pg_dir) bin=$(pg_bindir)
  [[ -f $dir/data/PG_VERSION ]] && return 0
  log "initialising PostgreSQL data dir $dir/data"
  rm -rf "$dir/data" && mkdir -p "$dir/data" "$dir/run"
  ((EUID == 0)) && chown -R postgres:postgres "$dir"
  as_pg test -w "$dir/data" || die "the postgres user cannot write $dir (is $STATE_DIR under a private directory?)"
  pwfile=$dir/.pw
  printf '%s\n' "$PG_PASSWORD" >"$pwfile"
  ((EUID == 0)) && chown postgres "$pwfile"
  # Superuser $PG_USER with a password; initdb's pg_hba.conf then allows only
  # the unix socket (trust, socket dir private to us) and loopback TCP (md5).
  as_pg "$bin/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=md5 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; die "initdb failed, see $dir/initdb.log"; }
  rm -f "$pwfile"
  # Throwaway test database: listen on loopback only, and trade durability for
  # speed (no fsync) since the data is disposable.
  as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<EOF

# --- added by scripts/upstreams.sh
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$dir/run'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

pg_up() {
  pg_install
  local dir bin
  dir=$(pg_dir) bin=$(pg_bindir)
  pg_init
  if ! pg_running; then
    ensure_port_free PostgreSQL "$PG_PORT"
    # pg_ctl -w waits until the server accepts connections; it detaches the
    # postmaster into its own session itself.
    as_pg "$bin/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -s >/dev/null \
      || die "PostgreSQL did not start, see $dir/postgres.log"
  fi
  wait_for PostgreSQL 30 "" "" "$bin/pg_isready" -q -h "$HOST" -p "$PG_PORT"
  if [[ -z $(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
    pg_psql -d postgres -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
  log "PostgreSQL up on $HOST:$PG_PORT (database $PG_DB)"
}

pg_down() {
  local bin
  if ! pg_running; then log "PostgreSQL already stopped"; return 0; fi
  bin=$(pg_bindir)
  # fast: disconnect clients and shut down cleanly without waiting for them.
  as_pg "$bin/pg_ctl" stop -D "$(pg_dir)/data" -m fast -w -t 30 -s
  log "PostgreSQL stopped"
}

# ================================================================ Redis
redis_install() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
}

redis_running() { pid_running "$STATE_DIR/redis/redis.pid" redis-server; }
redis_healthy() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_up() {
  redis_install
  mkdir -p "$STATE_DIR/redis"
  if ! redis_running; then
    ensure_port_free Redis "$REDIS_PORT"
    # No persistence: like the OpenBao dev server, test data is disposable.
    launch "$STATE_DIR/redis/redis.pid" "$STATE_DIR/redis/redis.log" \
      redis-server --bind "$HOST" --port "$REDIS_PORT" --dir "$STATE_DIR/redis" \
      --save '' --appendonly no --daemonize no
  fi
  wait_for Redis 30 "$STATE_DIR/redis/redis.pid" redis-server redis_healthy
  log "Redis up on $HOST:$REDIS_PORT"
}

redis_down() { stop_pid Redis "$STATE_DIR/redis/redis.pid" redis-server; }

# ================================================================ commands
print_env() {
  local -a vars=(
    "VAULT_ADDR=http://$HOST:$BAO_PORT"
    "VAULT_TOKEN=$BAO_ROOT_TOKEN"
    "BAO_ADDR=http://$HOST:$BAO_PORT"
    "BAO_TOKEN=$BAO_ROOT_TOKEN"
    "AWS_ENDPOINT_URL=http://$HOST:$MOTO_PORT"
    "AWS_ACCESS_KEY_ID=test"
    "AWS_SECRET_ACCESS_KEY=test"
    "AWS_REGION=us-east-1"
    "AWS_DEFAULT_REGION=us-east-1"
    "DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
    "REDIS_URL=redis://$HOST:$REDIS_PORT"
    "BULKHEAD_BAO_BIN=$BAO_BIN"
    "BULKHEAD_UPSTREAMS_DIR=$STATE_DIR"
  )
  local v
  for v in "${vars[@]}"; do printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"; done
}

# Map user-facing names (and a few aliases) to the function prefix.
service_fn() {
  case $1 in
    bao|openbao|vault) echo bao ;;
    moto|aws) echo moto ;;
    postgres|postgresql|pg) echo pg ;;
    redis) echo redis ;;
    *) return 1 ;;
  esac
}

service_addr() {
  case $1 in
    bao) echo "http://$HOST:$BAO_PORT" ;;
    moto) echo "http://$HOST:$MOTO_PORT" ;;
    pg) echo "$HOST:$PG_PORT" ;;
    redis) echo "$HOST:$REDIS_PORT" ;;
  esac
}

service_healthy() {
  case $1 in
    bao) bao_healthy ;;
    moto) moto_healthy ;;
    pg) "$(pg_bindir)/pg_isready" -q -h "$HOST" -p "$PG_PORT" ;;
    redis) command -v redis-cli >/dev/null && redis_healthy ;;
  esac
}

cmd_status() {
  local fn rc=0 state
  for fn in "$@"; do
    if ! "${fn}_running" 2>/dev/null; then state=down; rc=1
    elif service_healthy "$fn" 2>/dev/null; then state=up
    else state=starting; rc=1
    fi
    printf '%-9s %-9s %s\n' "${fn/#pg/postgres}" "$state" "$(service_addr "$fn")"
  done
  return $rc
}

# Run ACTION (up/down) for the selected services in ORDER.
for_each() {
  local action=$1 order=$2 fn; shift 2
  for fn in $order; do
    if [[ " $* " == *" $fn "* ]]; then "${fn}_$action"; fi
  done
}

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

main() {
  local cmd=${1:-} arg fn
  (($#)) && shift
  # Canonical service list (bao moto pg redis), all four by default.
  local -a sel=()
  for arg in "${@:-${ALL_SERVICES[@]}}"; do
    fn=$(service_fn "$arg") || die "unknown service '$arg' (expected: ${ALL_SERVICES[*]})"
    sel+=("$fn")
  done
  case $cmd in
    # Postgres first: the OpenBao database secrets engine is pointed at it.
    up) mkdir -p "$STATE_DIR"; for_each up "pg redis moto bao" "${sel[@]}"; print_env ;;
    # OpenBao first: it holds leases on Postgres users.
    down) for_each down "bao moto redis pg" "${sel[@]}" ;;
    restart) for_each down "bao moto redis pg" "${sel[@]}"
             for_each up "pg redis moto bao" "${sel[@]}"; print_env ;;
    status) cmd_status "${sel[@]}" ;;
    env) print_env ;;
    *) usage ;;
  esac
}

main "$@"
