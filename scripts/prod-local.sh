#!/usr/bin/env bash
# A production-like run on this machine: Debian's nginx with a self-signed certificate (the site of
# deploy/nginx/gym.conf) in front of `python server.py` with WORKERS=2, and the WeChat Pay sandbox sending its
# notifications through nginx over HTTPS. Everything it writes lives under var/prod-local/ (or --dir).
#
#   scripts/prod-local.sh [up]        nginx + service + sandbox (`make prod-local`)
#   scripts/prod-local.sh nginx-only --upstream HOST:PORT [--https-port P] [--http-port Q] [--dir DIR]
#                                     only nginx, in front of a service someone else runs (a test fixture)
#   scripts/prod-local.sh render --upstream HOST:PORT [--dir DIR]   only write DIR/nginx.conf, site.conf, tls/
#   scripts/prod-local.sh smoke       one paid order end to end through nginx (needs `up`)
#   scripts/prod-local.sh status|stop [--dir DIR]
#
# Options (or environment): --https-port (PROD_LOCAL_HTTPS_PORT, 8443), --http-port (PROD_LOCAL_HTTP_PORT, 8080),
# --service-port (PROD_LOCAL_SERVICE_PORT, 18000), --sandbox-port (PROD_LOCAL_SANDBOX_PORT, 18090),
# --workers (PROD_LOCAL_WORKERS, 2), --dir (PROD_LOCAL_DIR, var/prod-local), --upstream (nginx-only).
# Progress goes to stderr; stdout gets KEY=VALUE lines (PROD_LOCAL_HTTPS_PORT=...) a caller can parse.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=$ROOT/.venv/bin/python

cmd=up
case "${1:-}" in up|nginx-only|render|smoke|status|stop) cmd=$1; shift ;; esac
https_port=${PROD_LOCAL_HTTPS_PORT:-8443}
http_port=${PROD_LOCAL_HTTP_PORT:-8080}
service_port=${PROD_LOCAL_SERVICE_PORT:-18000}
sandbox_port=${PROD_LOCAL_SANDBOX_PORT:-18090}
workers=${PROD_LOCAL_WORKERS:-2}
dir=${PROD_LOCAL_DIR:-var/prod-local}
upstream=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "usage: see the head of $0" >&2; exit 2; }
  case "$1" in
    --https-port) https_port=$2 ;;
    --http-port) http_port=$2 ;;
    --service-port) service_port=$2 ;;
    --sandbox-port) sandbox_port=$2 ;;
    --workers) workers=$2 ;;
    --dir) dir=$2 ;;
    --upstream) upstream=$2 ;;
    *) echo "unknown option $1 (see the head of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
for n in "$https_port" "$http_port" "$service_port" "$sandbox_port" "$workers"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
mkdir -p "$dir"
DIR=$(cd "$dir" && pwd)
NGINX=(nginx -p "$DIR/" -c "$DIR/nginx.conf" -e "$DIR/logs/error.log")
DB_NAME=gym_prodlocal

say() { echo "==> $*" >&2; }
die() { echo "prod-local: $*" >&2; exit 1; }

# A pid from a pid file, only if that process is alive and its command line contains $2.
live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" \
    && echo "$pid"
}

ensure_tools() {
  local need=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      say "installing ${need[*]} with apt-get (Debian's packages)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
      die "missing ${need[*]}; install as root: sudo apt-get install -y ${need[*]}"
    fi
  fi
  PATH=$PATH:/usr/sbin
}

# Self-signed, for 127.0.0.1 and localhost; the key never leaves var/. Regenerated when within a day of expiry.
ensure_cert() {
  mkdir -p "$DIR/tls"
  if [ -f "$DIR/tls/key.pem" ] && openssl x509 -in "$DIR/tls/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    return
  fi
  say "generating a self-signed certificate in $DIR/tls"
  (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" 2>/dev/null)
  chmod 644 "$DIR/tls/cert.pem"
  # The sandbox trusts the system's CAs plus this certificate (Python's ssl reads SSL_CERT_FILE).
  cat /etc/ssl/certs/ca-certificates.crt "$DIR/tls/cert.pem" >"$DIR/tls/ca-bundle.pem" 2>/dev/null \
    || cp "$DIR/tls/cert.pem" "$DIR/tls/ca-bundle.pem"
}

# nginx.conf (the http {} wrapper Debian's /etc/nginx/nginx.conf would be) plus the site rendered from the template.
render_nginx() {
  mkdir -p "$DIR/logs" "$DIR/acme" "$DIR/tmp"
  bash deploy/nginx/render.sh --server-name "localhost 127.0.0.1" \
    --https-listen "127.0.0.1:$https_port" --http-listen "127.0.0.1:$http_port" --https-port-suffix ":$https_port" \
    --upstream "$1" --tls-cert "$DIR/tls/cert.pem" --tls-key "$DIR/tls/key.pem" --metrics-allow 127.0.0.1/32 \
    --acme-root "$DIR/acme" --access-log "$DIR/logs/access.log" >"$DIR/site.conf"
  local user_line=""
  if [ "$(id -u)" = 0 ]; then
    # Workers drop to www-data when they can reach the temp dirs (not under a 0700 directory); else stay root.
    chown www-data:www-data "$DIR/tmp" 2>/dev/null || true
    if runuser -u www-data -- test -w "$DIR/tmp" 2>/dev/null; then
      user_line="user www-data www-data;"
    else
      user_line="user root root;  # $DIR is not reachable by www-data"
    fi
  fi
  cat >"$DIR/nginx.conf" <<CONF
# Written by scripts/prod-local.sh; run as: nginx -p $DIR/ -c $DIR/nginx.conf
$user_line
worker_processes 2;
pid $DIR/nginx.pid;
error_log $DIR/logs/error.log warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65s;
    client_body_temp_path $DIR/tmp/client_body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    include $DIR/site.conf;
}
CONF
}

start_nginx() {
  "${NGINX[@]}" -t -q 2>&1 | grep -v '^$' >&2 || true
  "${NGINX[@]}" -t -q >/dev/null 2>&1 || die "nginx -t failed for $DIR/nginx.conf (see above)"
  local pid
  if pid=$(live_pid "$DIR/nginx.pid" nginx); then
    say "nginx already running (pid $pid): reloading its configuration"
    "${NGINX[@]}" -s reload
    sleep 0.5
  else
    say "starting nginx: https://127.0.0.1:$https_port, http://127.0.0.1:$http_port -> $1"
    "${NGINX[@]}"
  fi
  for _ in $(seq 1 40); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$DIR/tls/cert.pem" "https://127.0.0.1:$https_port/healthz" || true)
    [ "$code" != 000 ] && return 0
    sleep 0.25
  done
  tail -5 "$DIR/logs/error.log" >&2 || true
  die "nginx does not answer on https://127.0.0.1:$https_port"
}

print_nginx_vars() {
  cat <<VARS
PROD_LOCAL_DIR=$DIR
PROD_LOCAL_HTTPS_PORT=$https_port
PROD_LOCAL_HTTP_PORT=$http_port
PROD_LOCAL_HTTPS_URL=https://127.0.0.1:$https_port
PROD_LOCAL_UPSTREAM=$1
PROD_LOCAL_CA_CERT=$DIR/tls/cert.pem
PROD_LOCAL_NGINX_PID=$(cat "$DIR/nginx.pid")
VARS
}

# A background process in a session of its own (its pid is its process group: stop ends the workers too).
spawn() {
  local name=$1; shift
  setsid "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/$name.pid"
}

start_sandbox() {
  if live_pid "$DIR/sandbox.pid" sandbox >/dev/null; then say "sandbox already running"; return; fi
  say "starting the WeChat Pay sandbox on 127.0.0.1:$sandbox_port (state in $DIR/sandbox)"
  spawn sandbox env SSL_CERT_FILE="$DIR/tls/ca-bundle.pem" "$PY" -m sandbox --host 127.0.0.1 --port "$sandbox_port" \
    --state-dir "$DIR/sandbox"
  for _ in $(seq 1 80); do
    curl -sf "http://127.0.0.1:$sandbox_port/sandbox/health" >/dev/null 2>&1 && return; sleep 0.25
  done
  tail -20 "$DIR/logs/sandbox.log" >&2; die "the sandbox did not start"
}

# The service's environment: dev's MariaDB and Redis (own database and Redis db), the sandbox's credentials,
# and the production settings nginx needs. Written to $DIR/service.env (0600) for reference.
write_service_env() {
  # shellcheck disable=SC1091
  (set -a; . var/dev.env; . "$DIR/sandbox/service.env"; set +a
   umask 077
   {
     env | grep -E '^(DATABASE_URL|REDIS_URL|SECRET_KEY|AUDIT_KEY_FILE|WECHAT_[A-Z0-9_]+|WECHATPAY_[A-Z0-9_]+)=' \
       | grep -vE '^(DATABASE_URL|REDIS_URL|WECHATPAY_NOTIFY_URL|WECHATPAY_REFUND_NOTIFY_URL|WECHATPAY_CERT_DIR)='
     echo "DATABASE_URL=${DATABASE_URL%/*}/$DB_NAME"
     echo "REDIS_URL=${REDIS_URL%/*}/2"
     echo "HOST=127.0.0.1"
     echo "PORT=$service_port"
     echo "WORKERS=$workers"
     echo "TRUSTED_PROXIES=127.0.0.1/32"
     echo "METRICS_ALLOW=127.0.0.1/32"
     echo "LOG_FORMAT=json"
     echo "WECHATPAY_NOTIFY_URL=https://127.0.0.1:$https_port/api/v1/payment/wxpay/callback"
     echo "WECHATPAY_REFUND_NOTIFY_URL=https://127.0.0.1:$https_port/api/v1/payment/wxpay/refund-callback"
     echo "WECHATPAY_CERT_DIR=$DIR/wechatpay-certs"
     echo "AUDIT_CHECKPOINT_DIR=$DIR/audit-checkpoints"
   } >"$DIR/service.env")
}

with_service_env() { (set -a; . "$DIR/service.env"; set +a; unset DEV_MODE; "$@"); }

start_service() {
  if live_pid "$DIR/service.pid" server.py >/dev/null; then say "service already running"; return; fi
  say "database $DB_NAME (utf8mb4) on the local MariaDB"
  mariadb --no-defaults --socket=var/mysql/mysqld.sock -uroot >/dev/null <<SQL \
    || die "cannot create $DB_NAME as MariaDB root over var/mysql/mysqld.sock (run as root, as scripts/servers.sh does)"
CREATE DATABASE IF NOT EXISTS $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON $DB_NAME.* TO 'gym'@'127.0.0.1';
SQL
  write_service_env
  say "migrating, seeding demo sessions, making the operator 'admin'"
  with_service_env "$PY" manage.py migrate >&2
  with_service_env "$PY" manage.py seed-demo >&2
  [ -f "$DIR/admin_password" ] || (umask 077; head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$DIR/admin_password")
  with_service_env "$PY" manage.py create-operator --username admin --password-file "$DIR/admin_password" \
    --role admin >/dev/null
  say "starting the service on 127.0.0.1:$service_port with WORKERS=$workers"
  spawn service bash -c 'set -a; . "$1"; set +a; unset DEV_MODE; exec "$2" server.py' _ "$DIR/service.env" "$PY"
  for _ in $(seq 1 80); do
    curl -sf --cacert "$DIR/tls/cert.pem" "https://127.0.0.1:$https_port/readyz" >/dev/null 2>&1 && return
    live_pid "$DIR/service.pid" server.py >/dev/null || break
    sleep 0.25
  done
  tail -20 "$DIR/logs/service.log" >&2; die "the service is not ready behind nginx (https://127.0.0.1:$https_port/readyz)"
}

stop_one() {  # name, command-line marker, signal
  local pid
  if pid=$(live_pid "$DIR/$1.pid" "$2"); then
    say "stopping $1 (pid $pid)"
    if [ "$1" = nginx ]; then kill -QUIT "$pid"; else kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"; fi
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then say "$1 still running after 30 s: SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
  fi
  rm -f "$DIR/$1.pid"
}

smoke() {
  # The ports `up` used, unless given again here.
  # shellcheck disable=SC1091
  [ -f "$DIR/ports.env" ] && . "$DIR/ports.env"
  local base="https://127.0.0.1:$https_port" sb="http://127.0.0.1:$sandbox_port" c=(curl -sf --cacert "$DIR/tls/cert.pem")
  json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
  say "smoke: login, order, prepay, payment at the sandbox, notification through nginx"
  local code token sid order st
  code=$(curl -sf -X POST "$sb/sandbox/wx/login" -d '{}' | json 'd["code"]')
  token=$("${c[@]}" -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' -d "{\"code\":\"$code\"}" | json 'd["token"]')
  sid=$("${c[@]}" "$base/api/v1/courses/schedules" | json '[s["id"] for s in d["items"] if s["remaining"] > 0][0]')
  order=$("${c[@]}" -X POST "$base/api/v1/payment/orders/create" -H "Authorization: Bearer $token" \
    -d "{\"course_schedule_id\":$sid}" | json 'd["order_id"]')
  "${c[@]}" -X POST "$base/api/v1/payment/wxpay/create" -H "Authorization: Bearer $token" -d "{\"order_id\":\"$order\"}" >/dev/null
  curl -sf -X POST "$sb/sandbox/orders/$order/pay" -d '{"notify":true}' >/dev/null
  for _ in $(seq 1 40); do
    st=$("${c[@]}" "$base/api/v1/payment/orders/$order" -H "Authorization: Bearer $token" | json 'd["status"]')
    [ "$st" = paid ] && break; sleep 0.25
  done
  echo "order $order: $st" >&2
  grep '"path":"/api/v1/payment/wxpay/callback"' "$DIR/logs/access.log" | tail -1 >&2
  [ "$st" = paid ] || die "smoke: the order did not become paid through nginx"
  echo "smoke: OK (paid by a notification that came through nginx over HTTPS)" >&2
}

case "$cmd" in
  render)
    [ -n "$upstream" ] || die "render needs --upstream HOST:PORT"
    ensure_tools; ensure_cert; render_nginx "$upstream"
    echo "PROD_LOCAL_NGINX_CONF=$DIR/nginx.conf"
    ;;
  nginx-only)
    [ -n "$upstream" ] || die "nginx-only needs --upstream HOST:PORT"
    ensure_tools; ensure_cert; render_nginx "$upstream"; start_nginx "$upstream"
    print_nginx_vars "$upstream"
    ;;
  up)
    ensure_tools
    bash scripts/bootstrap.sh >&2
    bash scripts/servers.sh start >&2
    ensure_cert
    render_nginx "127.0.0.1:$service_port"; start_nginx "127.0.0.1:$service_port"
    start_sandbox
    start_service
    printf 'https_port=%s\nsandbox_port=%s\n' "$https_port" "$sandbox_port" >"$DIR/ports.env"
    print_nginx_vars "127.0.0.1:$service_port"
    echo "PROD_LOCAL_SERVICE_URL=http://127.0.0.1:$service_port"
    echo "PROD_LOCAL_SANDBOX_URL=http://127.0.0.1:$sandbox_port"
    cat >&2 <<MSG

  HTTPS (nginx)  https://127.0.0.1:$https_port   /healthz /readyz /api/v1/... /admin/  wss://127.0.0.1:$https_port/ws/orders
  HTTP (nginx)   http://127.0.0.1:$http_port    301 to HTTPS
  Service        http://127.0.0.1:$service_port   WORKERS=$workers, TRUSTED_PROXIES=127.0.0.1/32, LOG_FORMAT=json
  Sandbox        http://127.0.0.1:$sandbox_port/sandbox/   notifies https://127.0.0.1:$https_port/api/v1/payment/wxpay/...
  Certificate    $DIR/tls/cert.pem (self-signed: curl --cacert it)
  Database       $DB_NAME on the local MariaDB, Redis db 2
  Logs           $DIR/logs/{access,error,service,sandbox}.log
  Operator       admin / $(cat "$DIR/admin_password")

  'scripts/prod-local.sh smoke' pays one order through nginx; 'scripts/prod-local.sh stop' stops all of it.

MSG
    ;;
  smoke) smoke ;;
  status)
    for p in nginx:nginx sandbox:sandbox service:server.py; do
      if pid=$(live_pid "$DIR/${p%%:*}.pid" "${p#*:}"); then echo "${p%%:*}: running (pid $pid)"; else echo "${p%%:*}: stopped"; fi
    done
    ;;
  stop)
    stop_one service server.py
    stop_one sandbox sandbox
    stop_one nginx nginx
    ;;
esac
