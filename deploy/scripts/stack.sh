#!/usr/bin/env bash
# The local stack: Kafka, PostgreSQL, migrations, topics and the services, in the background.
#   stack.sh infra   Kafka + PostgreSQL + migrations + topics (what the tests need)
#   stack.sh up      infra, then the services; returns once everything answers
#   stack.sh down    stop the services, Kafka and PostgreSQL, keeping their data
#   stack.sh status  one line per component
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PY="$ROOT/.venv/bin/python"
SCRIPTS="$ROOT/deploy/scripts"
# name:module:port[:VAR=value ...] (the port serves /readyz; the variables are the service's own).
# The ledger's relay runs as its own process, so that publishing takes no CPU time from ingest.
SERVICES=(
  "ledger:services.ledger:${STOCKLEDGER_LEDGER_METRICS_PORT:-8081}:STOCKLEDGER_LEDGER_RELAY=false"
  "relay:services.ledger.relay:${STOCKLEDGER_RELAY_METRICS_PORT:-8083}"
  "projector:services.projector:${STOCKLEDGER_HTTP_PORT:-8080}"
  "replenisher:services.replenisher:${STOCKLEDGER_REPLENISHER_METRICS_PORT:-8082}"
  "gateway:services.gateway:${STOCKLEDGER_GATEWAY_PORT:-8084}:STOCKLEDGER_GATEWAY_PORT=${STOCKLEDGER_GATEWAY_PORT:-8084}"
)

# An address given in the environment means an existing server: it is used, not started.
EXTERNAL_KAFKA="${KAFKA_BOOTSTRAP_SERVERS:-}"
EXTERNAL_DATABASE="${DATABASE_URL:-}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
export DATABASE_URL="${DATABASE_URL:-postgresql://${PG_USER:-stockledger}:${PG_PASSWORD:-stockledger}@127.0.0.1:${PG_PORT:-5433}/${PG_DATABASE:-stockledger}}"

# Each service connects as its own PostgreSQL role (migration 0004_roles.sql), with the password
# in PG_<SERVICE>_PASSWORD, or else one generated once for this stack and kept, readable by its
# owner only, in $STATE_DIR/secrets/pg-<service>.
ROLE_SERVICES=(ledger projector api replenisher gateway)
SECRETS_DIR="$STATE_DIR/secrets"

export_role_passwords() {
  local service var file
  for service in "${ROLE_SERVICES[@]}"; do
    var="PG_${service^^}_PASSWORD" file="$SECRETS_DIR/pg-$service"
    if [ -z "${!var:-}" ]; then
      if [ ! -s "$file" ]; then
        (umask 077 && mkdir -p "$SECRETS_DIR" && "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$file")
      fi
      export "$var=$(cat "$file")"
    fi
  done
}

# The environment a service starts with: its database URLs (the projector's HTTP API has its own).
service_env() {
  local role=$1
  [ "$role" = relay ] && role=ledger # the ledger's relay runs with the ledger's role
  echo "DATABASE_URL=$("$PY" -m shared.roles url "$role")"
  if [ "$1" = projector ]; then echo "STOCKLEDGER_API_DATABASE_URL=$("$PY" -m shared.roles url api)"; fi
}

infra() {
  if [ -n "$EXTERNAL_KAFKA" ]; then say "kafka: using $EXTERNAL_KAFKA"; else "$SCRIPTS/kafka.sh" start; fi
  if [ -n "$EXTERNAL_DATABASE" ]; then say "postgres: using DATABASE_URL"; else "$SCRIPTS/postgres.sh" start; fi
  "$PY" -m shared.migrate
  export_role_passwords
  "$PY" -m shared.roles passwords
  "$PY" -m shared.topics
}

# A service whose module is not there (a partial checkout) is left out.
service_exists() {
  local path="$ROOT/${1//.//}"
  [ -f "$path.py" ] || [ -f "$path/__main__.py" ]
}

start_services() {
  local entry name module port vars pidfile envs
  export_role_passwords
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r name module port vars <<<"$entry"
    service_exists "$module" || continue
    pidfile="$RUN_DIR/$name.pid"
    if pid_alive "$pidfile"; then say "$name: already running"; continue; fi
    port_open "$port" && die "port $port is already in use by another program; stop it or change the port"
    envs="$(service_env "$name")" || die "$name: could not build its database URLs"
    mapfile -t envs <<<"$envs"
    (
      cd "$ROOT"
      # shellcheck disable=SC2086 # vars holds VAR=value words
      env "${envs[@]}" STOCKLEDGER_METRICS_PORT="$port" $vars \
        setsid "$PY" -m "$module" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
      echo $! >"$pidfile"
    )
  done
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r name module port _ <<<"$entry"
    service_exists "$module" || continue
    wait_ready "$name" "$port"
  done
}

wait_ready() {
  local name=$1 port=$2
  for _ in $(seq 900); do
    if "$PY" - "$port" <<'PY' 2>/dev/null; then say "$name: ready on 127.0.0.1:$port"; return 0; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
PY
    pid_alive "$RUN_DIR/$name.pid" || { tail -n 20 "$LOG_DIR/$name.log" >&2; die "$name exited (log above)"; }
    sleep 0.1
  done
  tail -n 20 "$LOG_DIR/$name.log" >&2
  die "$name not ready after 90 s (log above: $LOG_DIR/$name.log)"
}

stop_services() {
  local entry name module port
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r name module port _ <<<"$entry"
    service_exists "$module" && stop_pid "$name" "$RUN_DIR/$name.pid" 30
  done
  return 0
}

case "${1:-}" in
  infra) infra ;;
  up) infra; start_services; say "stack: up (Kafka 127.0.0.1:${KAFKA_PORT:-9092}, API http://127.0.0.1:${STOCKLEDGER_HTTP_PORT:-8080}, gateway http://127.0.0.1:${STOCKLEDGER_GATEWAY_PORT:-8084})" ;;
  down)
    stop_services
    [ -n "$EXTERNAL_KAFKA" ] || "$SCRIPTS/kafka.sh" stop
    [ -n "$EXTERNAL_DATABASE" ] || "$SCRIPTS/postgres.sh" stop ;;
  status)
    "$SCRIPTS/kafka.sh" status || true
    "$SCRIPTS/postgres.sh" status && say "postgres: running" || say "postgres: stopped"
    for entry in "${SERVICES[@]}"; do
      IFS=: read -r name module port _ <<<"$entry"
      service_exists "$module" || continue
      pid_alive "$RUN_DIR/$name.pid" && say "$name: running" || say "$name: stopped"
    done ;;
  *) die "usage: stack.sh infra|up|down|status" ;;
esac
