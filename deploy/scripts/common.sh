# Shared helpers for the deploy scripts: paths, one-line errors, port checks.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${STATE_DIR:-$ROOT/.local}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
mkdir -p "$LOG_DIR" "$RUN_DIR"

die() { echo "error: $*" >&2; exit 1; }
say() { echo "$*" >&2; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME FILE [SECONDS]: SIGTERM, wait, then SIGKILL; harmless when not running.
stop_pid() {
  local name=$1 file=$2 wait=${3:-30} pid
  if ! pid_alive "$file"; then say "$name: not running"; rm -f "$file"; return 0; fi
  pid=$(cat "$file")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((wait * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then say "$name: did not stop in ${wait}s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$file"; say "$name: stopped"
}
