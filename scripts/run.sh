#!/usr/bin/env bash
# `make run`: the sandbox, the schema, demo data, an operator, then the service in the foreground.
# Ctrl-C stops the service and the sandbox; `make stop` also stops MariaDB and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
SANDBOX_PORT=${SANDBOX_PORT:-8090}
PY=.venv/bin/python
mkdir -p var/run

if [ "${1:-}" = stop ]; then
  for f in var/run/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; done
  exit 0
fi

if [ -f var/run/sandbox.pid ] && kill -0 "$(cat var/run/sandbox.pid)" 2>/dev/null; then
  echo "sandbox: already running"
else
  echo "==> starting the WeChat Pay sandbox on 127.0.0.1:$SANDBOX_PORT"
  nohup $PY -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --state-dir var/sandbox >var/run/sandbox.log 2>&1 &
  echo $! > var/run/sandbox.pid
  for _ in $(seq 1 80); do
    curl -sf "http://127.0.0.1:$SANDBOX_PORT/sandbox/health" >/dev/null 2>&1 && break; sleep 0.25
  done
  curl -sf "http://127.0.0.1:$SANDBOX_PORT/sandbox/health" >/dev/null || { echo "sandbox did not start:"; tail var/run/sandbox.log; exit 1; }
fi

set -a; . var/dev.env; . var/sandbox/service.env; set +a
export HOST=127.0.0.1 PORT DEV_MODE=1
$PY manage.py migrate
$PY manage.py seed-demo
if [ ! -f var/admin_password ]; then (umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' > var/admin_password); fi
$PY manage.py create-operator --username admin --password-file var/admin_password --role admin >/dev/null

cat <<MSG

  Service      http://127.0.0.1:$PORT            (/healthz, /readyz, /api/v1/...)
  Demo         http://127.0.0.1:$PORT/demo/       (dev mode checkout)
  Sandbox      http://127.0.0.1:$SANDBOX_PORT/sandbox/  (WeChat Pay + open API stand-in)
  MariaDB      127.0.0.1:${GYM_MYSQL_PORT:-33061}  database gym     Redis 127.0.0.1:${GYM_REDIS_PORT:-63791}
  Operator     admin / $(cat var/admin_password)   (var/admin_password)

  Ctrl-C stops the service and the sandbox; 'make stop' also stops MariaDB and Redis.

MSG
cleanup() { [ -f var/run/sandbox.pid ] && kill "$(cat var/run/sandbox.pid)" 2>/dev/null; rm -f var/run/sandbox.pid; }
trap cleanup EXIT
$PY server.py
