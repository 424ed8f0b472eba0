#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system packages (as root), the Python venv,
# and the npm test client. Idempotent: a second run checks stamps and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
# redis-server also runs the Sentinels of tests/realtime/ (`redis-server FILE --sentinel`): Debian's redis-sentinel
# package only adds a link to the same binary, a systemd unit and a Sentinel of the system's own, started at install.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "${WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [ "${WITH_DEPLOY:-0}" = 1 ]; then  # the production-like tests: nginx with TLS, promtool for the alert rules
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]}"
    echo "install them as root:  sudo apt-get install -y ${need[*]}"
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
req_hash=$(sha256sum requirements.txt | cut -c1-16)
if [ "$(cat .venv/.req-hash 2>/dev/null)" != "$req_hash" ]; then
  echo "==> installing Python requirements"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
  echo "$req_hash" > .venv/.req-hash
fi
# The benchmarks' own tools (py-spy for `bench/run_all.py --profile`): `make bench` asks for them.
if [ "${WITH_BENCH:-0}" = 1 ]; then
  bench_hash=$(sha256sum bench/requirements.txt | cut -c1-16)
  if [ "$(cat .venv/.bench-req-hash 2>/dev/null)" != "$bench_hash" ]; then
    echo "==> installing the benchmarks' requirements"
    .venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
    echo "$bench_hash" > .venv/.bench-req-hash
  fi
fi

# The npm test clients: tests/node (a WeChat Pay v3 client) and tests/miniprogram (jest + miniprogram-simulate).
if [ "${WITH_NODE:-0}" = 1 ]; then
  for dir in tests/node tests/miniprogram; do
    [ -f "$dir/package.json" ] || continue
    lock_hash=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)
    if [ "$(cat "$dir/node_modules/.lock-hash" 2>/dev/null)" != "$lock_hash" ]; then
      echo "==> installing the npm test clients in $dir"
      (cd "$dir" && npm ci --silent --no-audit --no-fund)
      echo "$lock_hash" > "$dir/node_modules/.lock-hash"
    fi
  done
fi

# htmx for the back office (/admin/), pinned by static/vendor/package-lock.json. The pages work as plain forms and
# links without it, so a failed or impossible npm step is only a warning.
vendor_hash=$(cat static/vendor/package.json static/vendor/package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat static/vendor/node_modules/.lock-hash 2>/dev/null)" != "$vendor_hash" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "==> installing htmx for the back office"
    if (cd static/vendor && npm ci --silent --no-audit --no-fund); then
      echo "$vendor_hash" > static/vendor/node_modules/.lock-hash
    else
      echo "warning: npm ci in static/vendor failed; the back office runs without htmx (plain forms)"
    fi
  else
    echo "note: npm not found; the back office runs without htmx (plain forms). To add it: apt-get install npm"
  fi
fi
