#!/usr/bin/env bash
# PostgreSQL for local development and tests: Debian's server package, one cluster under
# $STATE_DIR/postgres, listening on 127.0.0.1:$PG_PORT only.
#   postgres.sh install | start | stop | status | psql [args]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_PORT="${PG_PORT:-5433}"
PG_USER="${PG_USER:-stockledger}"
PG_PASSWORD="${PG_PASSWORD:-stockledger}"
PG_DATABASE="${PG_DATABASE:-stockledger}"
PG_DIR="$STATE_DIR/postgres"
DATA="$PG_DIR/data"
SOCK="$PG_DIR/socket"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install() {
  if [ -z "$(pg_bin)" ]; then
    command -v apt-get >/dev/null || die "PostgreSQL server not found; install it (Debian: apt-get install postgresql)"
    [ "$(id -u)" = 0 ] || die "PostgreSQL server not found; run 'sudo apt-get install postgresql' once"
    say "postgres: installing Debian's postgresql package"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  [ -n "$(pg_bin)" ] || die "PostgreSQL server install failed"
}

# The server refuses to run as root, so as root it runs as the 'postgres' system user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  say "postgres: creating cluster in $DATA"
  mkdir -p "$DATA" "$SOCK"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /usr/sbin/nologin postgres
    chown -R postgres "$PG_DIR"
  fi
  local pwfile; pwfile=$(mktemp); echo "$PG_PASSWORD" >"$pwfile"; chmod 644 "$pwfile"
  as_owner "$(pg_bin)/initdb" -D "$DATA" -U "$PG_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; cat "$LOG_DIR/initdb.log" >&2; die "initdb failed (log above)"; }
  rm -f "$pwfile"
  cat >>"$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
max_connections = 200
shared_buffers = 256MB
wal_level = logical
max_wal_size = 2GB
log_min_duration_statement = 2000
CONF
}

running() { as_owner "$(pg_bin)/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  install
  init_cluster
  if running; then say "postgres: already running on 127.0.0.1:$PG_PORT"; return 0; fi
  port_open "$PG_PORT" && die "port $PG_PORT is already in use by another program; stop it or set PG_PORT"
  [ "$(id -u)" = 0 ] && chown -R postgres "$PG_DIR"
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null \
    || { tail -n 20 "$PG_DIR/server.log" >&2; die "PostgreSQL did not start (log above)"; }
  as_owner "$(pg_bin)/psql" -h "$SOCK" -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'" | grep -q 1 \
    || as_owner "$(pg_bin)/createdb" -h "$SOCK" -p "$PG_PORT" -U "$PG_USER" "$PG_DATABASE"
  say "postgres: ready on 127.0.0.1:$PG_PORT (database $PG_DATABASE)"
}

stop() {
  if [ -z "$(pg_bin)" ] || [ ! -f "$DATA/PG_VERSION" ] || ! running; then say "postgres: not running"; return 0; fi
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  say "postgres: stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) [ -n "$(pg_bin)" ] && [ -f "$DATA/PG_VERSION" ] && running ;;
  psql) shift; as_owner "$(pg_bin)/psql" -h "$SOCK" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DATABASE" "$@" ;;
  *) die "usage: postgres.sh install|start|stop|status|psql" ;;
esac
