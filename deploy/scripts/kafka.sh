#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for development, assembled from Maven
# artifacts (deploy/kafka/pom.xml) and run with the machine's Java 17+.
#
#   deploy/scripts/kafka.sh install|start|stop|status
#
# Env: STATE_DIR (default <repo>/.local), KAFKA_PORT (9092; the controller
# listens on KAFKA_PORT+1), KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (seconds to wait for the
# broker to be ready, 180: a broker with many partitions on a busy machine takes a while).
# Layout: $STATE_DIR/kafka/{libs,data,server.properties,cluster.id},
#         $STATE_DIR/logs/{kafka.out,kafka/server.log}, $STATE_DIR/run/kafka.pid
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONF_SRC="$ROOT/deploy/kafka"
STATE_DIR="${STATE_DIR:-$ROOT/.local}"
mkdir -p "$STATE_DIR" && STATE_DIR="$(cd "$STATE_DIR" && pwd)"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
CONTROLLER_PORT=$((KAFKA_PORT + 1))

KAFKA_DIR="$STATE_DIR/kafka"
LIBS="$KAFKA_DIR/libs"
DATA="$KAFKA_DIR/data"
CONF="$KAFKA_DIR/server.properties"
LOG_DIR="$STATE_DIR/logs/kafka"
SERVER_LOG="$LOG_DIR/server.log"
OUT="$STATE_DIR/logs/kafka.out"
PIDFILE="$STATE_DIR/run/kafka.pid"
STAMP="$LIBS/.pom.sha256"

die() { echo "error: $*" >&2; exit 1; }

java_major() { java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1") ? v[2] : v[1]; exit }'; }

have_java() { command -v java >/dev/null && [ "$(java_major)" -ge 17 ] 2>/dev/null; }

# Java 17+ and Maven from Debian's packages when missing (as root), else a one-line error.
check_tools() {
  if { ! have_java || ! command -v mvn >/dev/null; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "kafka: installing Debian's openjdk-17-jre-headless and maven"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null ||
      die "installing Java and Maven failed; run: apt-get install openjdk-17-jre-headless maven"
  fi
  have_java || die "Java 17+ is required to run Kafka (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "Maven is required to fetch Kafka's jars (apt-get install maven)"
}

# Resolve the broker's jars into $LIBS; skipped while the pom is unchanged.
install() {
  check_tools
  local sum; sum="$(sha256sum "$CONF_SRC/pom.xml" | cut -d' ' -f1)"
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ] && return 0
  ! kafka_pid >/dev/null || die "kafka is running; stop it before its jars are replaced"
  echo "kafka: resolving jars with Maven into $LIBS ..."
  mkdir -p "$KAFKA_DIR" && rm -rf "$LIBS.tmp"
  local out
  out="$(mvn -B -q -f "$CONF_SRC/pom.xml" dependency:copy-dependencies \
           -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" 2>&1)" ||
    { echo "$out" | tail -n 20 >&2; die "Maven could not resolve Kafka's jars (see above)"; }
  rm -rf "$LIBS" && mv "$LIBS.tmp" "$LIBS" && echo "$sum" >"$STAMP"
  echo "kafka: $(ls "$LIBS" | wc -l) jars installed"
}

# Pid of our broker, if the pid file names a live kafka.Kafka process.
kafka_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [[ "$(tr "\0" " " <"/proc/$pid/cmdline" 2>/dev/null)" == *kafka.Kafka* ]] && echo "$pid"
}

# The process just started is still there (not gone, not a zombie). Its command line is not
# checked: read while nohup and setsid exec java, it comes back empty, and a broker starting
# normally would be taken for one that had exited.
still_there() {
  local state
  state="$(sed -n 's/^.*) \([A-Za-z]\) .*$/\1/p' "/proc/$1/stat" 2>/dev/null)"
  [ -n "$state" ] && [ "$state" != Z ]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Port the running broker was started with (KAFKA_PORT may differ now).
running_port() { sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:||p' "$CONF" 2>/dev/null | grep . || echo "$KAFKA_PORT"; }

kafka_java() {
  java "-Dkafka.logs.dir=$LOG_DIR" "-Dlog4j2.configurationFile=$CONF_SRC/log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

# The last 20 lines of server.log and kafka.out.
show_logs() {
  [ -s "$SERVER_LOG" ] && { echo "--- $SERVER_LOG (last 20 lines)"; tail -n 20 "$SERVER_LOG"; }
  [ -s "$OUT" ] && { echo "--- $OUT (last 20 lines)"; tail -n 20 "$OUT"; }
  return 0
}

# True when a broker started at or after time $1 ('YYYY-MM-DD HH:MM:SS', as log4j writes it) has
# logged "Kafka Server started", in server.log or a file it rotated into meanwhile (a busy start
# can rotate it, so line numbers taken before the start mean nothing after it).
started_since() {
  cat "$LOG_DIR"/server.log* 2>/dev/null |
    awk -v since="$1" '/Kafka Server started/ && substr($0, 2, 19) >= since { ok = 1 } END { exit !ok }'
}

start() {
  local pid port
  if pid="$(kafka_pid)"; then
    port="$(running_port)"
    port_open "$port" ||
      die "kafka (pid $pid) is alive but not answering on port $port; run '$0 stop' first"
    echo "kafka: already running (pid $pid, 127.0.0.1:$port)"; return 0
  fi
  port_open "$KAFKA_PORT" &&
    die "port $KAFKA_PORT is already in use by another program; stop it or set KAFKA_PORT"
  port_open "$CONTROLLER_PORT" &&
    die "port $CONTROLLER_PORT (Kafka controller, KAFKA_PORT+1) is already in use by another program; stop it or set KAFKA_PORT"
  install
  mkdir -p "$DATA" "$LOG_DIR" "$(dirname "$PIDFILE")"
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$DATA|g" "$CONF_SRC/server.properties.in" >"$CONF"

  # Format the storage once: the cluster id is kept, data survives restarts.
  if [ ! -f "$DATA/meta.properties" ]; then
    [ -s "$KAFKA_DIR/cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid >"$KAFKA_DIR/cluster.id"
    echo "kafka: formatting $DATA (cluster id $(cat "$KAFKA_DIR/cluster.id"))"
    local out
    out="$(kafka_java kafka.tools.StorageTool format --standalone \
             -t "$(cat "$KAFKA_DIR/cluster.id")" -c "$CONF" 2>&1)" ||
      { echo "$out" >&2; die "formatting the Kafka storage failed"; }
  fi

  local since; since="$(date '+%Y-%m-%d %H:%M:%S')"
  # log4j2's own shutdown hook would stop logging before Kafka's hook finishes.
  nohup setsid java "-Xmx$KAFKA_HEAP" -Xms256m -XX:+ExitOnOutOfMemoryError -Dlog4j2.shutdownHookEnabled=false \
    "-Dkafka.logs.dir=$LOG_DIR" "-Dlog4j2.configurationFile=$CONF_SRC/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >"$OUT" 2>&1 </dev/null &
  local started=$!
  echo "$started" >"$PIDFILE"
  echo "kafka: starting (pid $started, 127.0.0.1:$KAFKA_PORT, data in $DATA)"

  # Ready = the broker logged "Kafka Server started" in this run and the port answers.
  local i
  for ((i = 0; i < KAFKA_START_TIMEOUT * 2; i++)); do
    still_there "$started" || { show_logs >&2; rm -f "$PIDFILE"; die "kafka exited during startup"; }
    if started_since "$since" && port_open "$KAFKA_PORT"; then
      echo "kafka: ready on 127.0.0.1:$KAFKA_PORT"; return 0
    fi
    sleep 0.5
  done
  show_logs >&2
  stop >&2
  die "kafka did not become ready within $KAFKA_START_TIMEOUT s (KAFKA_START_TIMEOUT)"
}

stop() {
  local pid i
  if ! pid="$(kafka_pid)"; then rm -f "$PIDFILE"; echo "kafka: not running"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: still running after 30 s, sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"; echo "kafka: stopped"
}

status() {
  local pid port
  if pid="$(kafka_pid)"; then
    port="$(running_port)"
    port_open "$port" && { echo "kafka: running (pid $pid, 127.0.0.1:$port)"; return 0; }
    echo "kafka: process $pid alive but not answering on port $port"; return 1
  fi
  echo "kafka: not running"; return 1
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
