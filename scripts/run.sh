#!/usr/bin/env bash
# `make run`: the sandbox, the schema, demo data, an operator, then the service in the foreground.
# Ctrl-C stops the service and the sandbox; `make stop` (from any terminal) stops both, then MariaDB and Redis.
# Each process it starts has its pid file under var/run/ (or GYM_VAR_DIR/run/), which `run.sh stop` reads.
#   PORT, SANDBOX_PORT: the service's and the sandbox's ports; GYM_VAR_DIR: another directory than var/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/pidfile.sh
PORT=${PORT:-8000}
SANDBOX_PORT=${SANDBOX_PORT:-8090}
PY=.venv/bin/python
mkdir -p "${GYM_VAR_DIR:-var}/run"
VAR=$(cd "${GYM_VAR_DIR:-var}" && pwd)
RUN=$VAR/run

http_ok() { $PY -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; }
stop_service() { stop_process service "$RUN/service.pid" "server.py" "$ROOT" 30; }
stop_sandbox() { stop_process sandbox "$RUN/sandbox.pid" "-m sandbox" "$ROOT"; }

if [ "${1:-}" = stop ]; then
  stop_service  # first: once MariaDB is gone it could only answer 503
  stop_sandbox
  exit 0
fi

if [ -f "$RUN/service.pid" ] && is_ours "$(cat "$RUN/service.pid")" "server.py" "$ROOT"; then
  echo "the service already runs (pid $(cat "$RUN/service.pid")): 'make stop' first"; exit 1
fi
cleanup() { stop_sandbox >/dev/null; rm -f "$RUN/service.pid"; }
trap cleanup EXIT  # however this ends: Ctrl-C, `make stop`, a failed step
if [ -f "$RUN/sandbox.pid" ] && is_ours "$(cat "$RUN/sandbox.pid")" "-m sandbox" "$ROOT"; then
  echo "sandbox: already running"
else
  echo "==> starting the WeChat Pay sandbox on 127.0.0.1:$SANDBOX_PORT"
  nohup $PY -m sandbox --host 127.0.0.1 --port "$SANDBOX_PORT" --state-dir "$VAR/sandbox" >"$RUN/sandbox.log" 2>&1 &
  echo $! > "$RUN/sandbox.pid"
  for _ in $(seq 1 80); do http_ok "http://127.0.0.1:$SANDBOX_PORT/sandbox/health" && break; sleep 0.25; done
  if ! http_ok "http://127.0.0.1:$SANDBOX_PORT/sandbox/health"; then
    echo "sandbox did not start:"; tail "$RUN/sandbox.log"; exit 1
  fi
fi

set -a; . "$VAR/dev.env"; . "$VAR/sandbox/service.env"; set +a
export HOST=127.0.0.1 PORT DEV_MODE=1 WECHATPAY_CERT_DIR=${WECHATPAY_CERT_DIR:-$VAR/wechatpay-certs}
$PY manage.py migrate
$PY manage.py seed-demo
[ -f "$VAR/admin_password" ] || (umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' > "$VAR/admin_password")
$PY manage.py create-operator --username admin --password-file "$VAR/admin_password" --role admin >/dev/null

cat <<MSG

  Service      http://127.0.0.1:$PORT            (/healthz, /readyz, /api/v1/...)
  Back office  http://127.0.0.1:$PORT/admin/     (operators: sign in as admin)
  Demo         http://127.0.0.1:$PORT/demo/      (dev mode checkout)
  Sandbox      http://127.0.0.1:$SANDBOX_PORT/sandbox/  (WeChat Pay + open API stand-in)
  MariaDB      127.0.0.1:${GYM_MYSQL_PORT:-33061}  database gym     Redis 127.0.0.1:${GYM_REDIS_PORT:-63791}
  Operator     admin / $(cat "$VAR/admin_password")   (${GYM_VAR_DIR:-var}/admin_password)

  Ctrl-C stops the service and the sandbox; 'make stop' (from any terminal) also stops MariaDB and Redis.

MSG
# In the foreground (Ctrl-C reaches it), its pid in service.pid: the subshell writes its own pid, then becomes the
# service by exec.
(echo "$BASHPID" > "$RUN/service.pid"; exec $PY server.py)
