#!/usr/bin/env bash
# Renders deploy/nginx/gym.conf (the site template) to stdout. Defaults are production's; every value can be
# given as a flag. Production:
#   deploy/nginx/render.sh --server-name pay.gym.example --metrics-allow 10.0.0.5/32 \
#       > /etc/nginx/sites-available/gym.conf
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: keep '&' literal in ${var//pattern/value}
here=$(cd "$(dirname "$0")" && pwd)

server_name=gym.example.com
https_listen=443
http_listen=80
https_port_suffix=""
upstream=127.0.0.1:8000
tls_cert=""
tls_key=""
metrics_allow=127.0.0.1/32
acme_root=/var/www/acme
access_log=/var/log/nginx/gym.access.log

usage() {
  cat >&2 <<USAGE
usage: $0 [--server-name NAME] [--https-listen ADDR] [--http-listen ADDR] [--https-port-suffix :PORT]
          [--upstream HOST:PORT] [--tls-cert FILE] [--tls-key FILE] [--metrics-allow CIDR[,CIDR...]]
          [--acme-root DIR] [--access-log FILE]
defaults: server name $server_name, listen 443 and 80, upstream $upstream,
          certificate /etc/letsencrypt/live/NAME/{fullchain,privkey}.pem, metrics from $metrics_allow
USAGE
  exit 2
}

while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case "$1" in
    --server-name) server_name=$2 ;;
    --https-listen) https_listen=$2 ;;
    --http-listen) http_listen=$2 ;;
    --https-port-suffix) https_port_suffix=$2 ;;
    --upstream) upstream=$2 ;;
    --tls-cert) tls_cert=$2 ;;
    --tls-key) tls_key=$2 ;;
    --metrics-allow) metrics_allow=$2 ;;
    --acme-root) acme_root=$2 ;;
    --access-log) access_log=$2 ;;
    *) usage ;;
  esac
  shift 2
done
first_name=${server_name%% *}
tls_cert=${tls_cert:-/etc/letsencrypt/live/$first_name/fullchain.pem}
tls_key=${tls_key:-/etc/letsencrypt/live/$first_name/privkey.pem}

geo=""
IFS=, read -ra cidrs <<<"$metrics_allow"
for cidr in "${cidrs[@]}"; do
  cidr=${cidr// /}
  [[ $cidr =~ ^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$ ]] || { echo "render.sh: not a CIDR: '$cidr'" >&2; exit 2; }
  geo+="    $cidr 1;"$'\n'
done
geo=${geo%$'\n'}

site=$(<"$here/gym.conf")
site=${site//"{{SERVER_NAME}}"/$server_name}
site=${site//"{{HTTPS_LISTEN}}"/$https_listen}
site=${site//"{{HTTP_LISTEN}}"/$http_listen}
site=${site//"{{HTTPS_PORT_SUFFIX}}"/$https_port_suffix}
site=${site//"{{UPSTREAM}}"/$upstream}
site=${site//"{{TLS_CERT}}"/$tls_cert}
site=${site//"{{TLS_KEY}}"/$tls_key}
site=${site//"{{METRICS_GEO}}"/$geo}
site=${site//"{{ACME_ROOT}}"/$acme_root}
site=${site//"{{ACCESS_LOG}}"/$access_log}
if [[ $site == *"{{"* ]]; then
  echo "render.sh: a placeholder was left unfilled:" >&2
  grep -n '{{' <<<"$site" >&2
  exit 1
fi
printf "# Rendered from deploy/nginx/gym.conf by deploy/nginx/render.sh: change the template, then render again.\n%s\n" "$site"
