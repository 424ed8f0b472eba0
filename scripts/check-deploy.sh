#!/usr/bin/env bash
# Checks the files under deploy/ without deploying anything:
#   - Prometheus: `promtool check rules`, `promtool test rules` (alerts fire on synthetic series), `promtool check config`
#   - nginx: the site rendered with a throwaway self-signed certificate, `nginx -t` (in prod-local's wrapper, and as
#     root also inside Debian's own /etc/nginx/nginx.conf with the production values)
#   - systemd: `systemd-analyze verify` of every unit (paths pointed at this checkout) and its security score
#   - deploy/gym.env.example: names every variable of contract §1, and settings.py accepts it
#   - the shell scripts parse (bash -n; shellcheck too when installed)
# As root it installs what is missing with apt (nginx, prometheus for promtool, systemd for systemd-analyze).
# Prints PASS / FAIL / SKIP (with the reason) per check; exits 1 if a check failed, or, with
# CHECK_DEPLOY_STRICT=1, if one could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$ROOT/var/check-deploy
rm -rf "$WORK"; mkdir -p "$WORK"
PATH=$PATH:/usr/sbin
results=()
failed=0
skipped=0

pass() { results+=("PASS  $1"); }
fail() { results+=("FAIL  $1"); failed=1; }
skip() { results+=("SKIP  $1: $2"); skipped=1; }
step() { echo; echo "==> $*"; }

# Runs a check, shows its output, records PASS/FAIL. With quiet=1 any output is a failure too
# (systemd-analyze verify reports problems but still exits 0).
check() {
  local name=$1 quiet=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
  if [ $rc -ne 0 ] || { [ "$quiet" = 1 ] && [ -n "$out" ]; }; then fail "$name"; else pass "$name"; fi
}

install_missing() {
  local need=()
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v nginx >/dev/null 2>&1 || need+=(nginx)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  [ ${#need[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ]; then
    step "installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || echo "    apt-get could not install ${need[*]}; the checks needing them are skipped"
  else
    echo "not root: not installing ${need[*]} (sudo apt-get install -y ${need[*]}); their checks are skipped"
  fi
}

install_missing

step "Prometheus rules and configuration"
if command -v promtool >/dev/null 2>&1; then
  check "promtool check rules deploy/prometheus/alerts.yml" 0 promtool check rules deploy/prometheus/alerts.yml
  check "promtool test rules deploy/prometheus/alerts.test.yml" 0 promtool test rules deploy/prometheus/alerts.test.yml
  check "promtool check config deploy/prometheus/prometheus.yml" 0 promtool check config deploy/prometheus/prometheus.yml
else
  skip "promtool (rules, rule tests, config)" "promtool is not installed (Debian package: prometheus)"
fi

step "nginx site"
if command -v nginx >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
  check "render the site and a self-signed certificate" 0 \
    bash scripts/prod-local.sh render --upstream 127.0.0.1:8000 --dir "$WORK/nginx"
  check "nginx -t (site in prod-local's nginx.conf)" 0 \
    nginx -t -q -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log"
  if [ "$(id -u)" = 0 ] && [ -f /etc/nginx/nginx.conf ]; then
    # Debian's nginx.conf, with only our site in sites-enabled and the production values (ports 443/80,
    # default upstream); the certificate and log paths point into $WORK since /etc/letsencrypt is not here.
    mkdir -p "$WORK/debian/sites-enabled"
    sed "s#/etc/nginx/sites-enabled/\*#$WORK/debian/sites-enabled/*#" /etc/nginx/nginx.conf >"$WORK/debian/nginx.conf"
    bash deploy/nginx/render.sh --server-name pay.gym.example --metrics-allow 10.0.0.5/32 \
      --tls-cert "$WORK/nginx/tls/cert.pem" --tls-key "$WORK/nginx/tls/key.pem" \
      --access-log "$WORK/debian/access.log" >"$WORK/debian/sites-enabled/gym.conf"
    check "nginx -t (production values inside Debian's /etc/nginx/nginx.conf)" 0 \
      nginx -t -q -c "$WORK/debian/nginx.conf" -e "$WORK/debian/error.log"
  else
    skip "nginx -t inside Debian's nginx.conf" "needs root and /etc/nginx/nginx.conf (it opens /var/log/nginx)"
  fi
else
  skip "nginx -t" "nginx or openssl is not installed (Debian packages: nginx, openssl)"
fi

step "systemd units"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The units name /opt/gym/{app,venv}; verify needs existing executables, so check copies pointing here.
  mkdir -p "$WORK/systemd"
  for unit in deploy/systemd/*.service deploy/systemd/*.timer; do
    sed "s#/opt/gym/venv/bin/python#$(command -v python3)#g; s#/opt/gym/app#$ROOT#g" "$unit" >"$WORK/systemd/$(basename "$unit")"
  done
  check "systemd-analyze verify deploy/systemd/*" 1 systemd-analyze verify "$WORK"/systemd/*.service "$WORK"/systemd/*.timer
  if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
    score=$(systemd-analyze security --offline=yes "$WORK/systemd/gym.service" 2>&1 | grep -o 'Overall exposure level.*' || true)
    echo "    gym.service: ${score:-no score}"
    pass "systemd-analyze security gym.service (${score#Overall exposure level for gym.service: })"
  else
    skip "systemd-analyze security" "this systemd has no --offline mode (needs systemd 252 or later)"
  fi
else
  skip "systemd-analyze verify" "systemd-analyze is not installed (Debian package: systemd)"
fi

step "deploy/gym.env.example"
contract=$ROOT/../shared/contract.md
[ -f "$contract" ] || contract=/work/shared/contract.md
if [ -f "$contract" ]; then
  # The names in the first column of §1's table.
  missing=$(sed -n '/^## 1\./,/^## 2\./p' "$contract" | grep '^| `' | cut -d'|' -f2 | grep -o '`[A-Z][A-Z0-9_]*`' |
    tr -d '`' | sort -u |
    while read -r var; do grep -q "^#\? \?$var=" deploy/gym.env.example || echo "$var"; done)
  if [ -z "$missing" ]; then pass "gym.env.example names every variable of contract §1"
  else echo "    missing:" $missing; fail "gym.env.example names every variable of contract §1"; fi
else
  skip "gym.env.example against contract §1" "shared/contract.md not found beside the checkout"
fi
# The project's own interpreter (settings.py imports its dependencies), else whatever python3 is on PATH.
PYTHON=$ROOT/.venv/bin/python; [ -x "$PYTHON" ] || PYTHON=python3
check "settings.py accepts gym.env.example (key files replaced by dummies)" 0 "$PYTHON" - "$WORK" <<'PY'
import os, sys
sys.path.insert(0, os.getcwd())
import settings
work = sys.argv[1]
env = {}
for line in open("deploy/gym.env.example", encoding="utf-8"):
    line = line.strip()
    if line and not line.startswith("#"):
        key, _, value = line.partition("=")
        env[key] = value
for key in [k for k in env if k.endswith("_FILE")]:
    path = os.path.join(work, key.lower())
    with open(path, "w") as fh:
        fh.write({"WECHATPAY_APIV3_KEY_FILE": "0123456789abcdef0123456789abcdef",
                  "DATA_KEY_FILE": "00" * 32, "AUDIT_KEY_FILE": "00" * 32}.get(key, "dummy"))
    env[key] = path
settings.load(env)
PY

step "shell scripts"
for f in scripts/prod-local.sh scripts/check-deploy.sh deploy/nginx/render.sh deploy/backup/gym-backup.sh deploy/gym-manage; do
  check "bash -n $f" 0 bash -n "$f"
done
if command -v shellcheck >/dev/null 2>&1; then
  check "shellcheck" 0 shellcheck -S warning scripts/prod-local.sh scripts/check-deploy.sh deploy/nginx/render.sh deploy/backup/gym-backup.sh deploy/gym-manage
else
  skip "shellcheck" "not installed (optional; Debian package: shellcheck)"
fi

echo
echo "Summary:"
printf '  %s\n' "${results[@]}"
if [ $failed = 1 ]; then echo "check-deploy: FAILED"; exit 1; fi
if [ $skipped = 1 ] && [ "${CHECK_DEPLOY_STRICT:-0}" = 1 ]; then echo "check-deploy: checks skipped (CHECK_DEPLOY_STRICT=1)"; exit 1; fi
if [ $skipped = 1 ]; then echo "check-deploy: OK (some checks skipped, see above)"; else echo "check-deploy: OK"; fi
