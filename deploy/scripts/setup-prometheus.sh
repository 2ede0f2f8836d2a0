#!/usr/bin/env bash
# Prometheus for `make check-monitoring` (promtool) and the monitoring integration test
# (/usr/bin/prometheus, started by the test itself). Debian's `prometheus` package ships both.
# Idempotent: does nothing when promtool and prometheus are already installed.
#
# The package's postinst tries to start its own prometheus service on :9090. We want the binaries
# only, so the install runs with a policy-rc.d that forbids service starts (unless the system
# already has one), and whatever the package still managed to start is stopped afterwards.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT=9090
POLICY=/usr/sbin/policy-rc.d

installed() { command -v promtool >/dev/null && command -v prometheus >/dev/null; }
installed && exit 0

command -v apt-get >/dev/null \
  || die "Prometheus (promtool) not found and apt-get is unavailable; install Prometheus 2.x so that promtool and prometheus are on PATH"
[ "$(id -u)" = 0 ] \
  || die "Prometheus (promtool) not found; run 'sudo apt-get install prometheus' once"

busy_before=0
port_open "$PORT" && busy_before=1

own_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, from deploy/scripts/setup-prometheus.sh\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT

say "prometheus: installing Debian's prometheus package (for promtool and the monitoring tests)"
log="$LOG_DIR/setup-prometheus.log"
ok=1
{ DEBIAN_FRONTEND=noninteractive apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
  >"$log" 2>&1 || ok=0
cleanup; own_policy=0

# Stop the service the package may have started anyway (only if 9090 was free before we began).
if [ "$busy_before" = 0 ] && port_open "$PORT"; then
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl stop prometheus.service >/dev/null 2>&1 || true
    systemctl disable prometheus.service >/dev/null 2>&1 || true
  fi
  [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  pidfile=/run/prometheus/prometheus.pid
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    stop_pid "prometheus (Debian service)" "$pidfile" 10
  fi
  for _ in $(seq 50); do port_open "$PORT" || break; sleep 0.1; done
  port_open "$PORT" && say "prometheus: warning: something still listens on 127.0.0.1:$PORT after the install"
fi

[ "$ok" = 1 ] && installed \
  || die "could not install Debian's prometheus package (apt-get log: $log); install it so that promtool and prometheus are on PATH"
say "prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
