#!/usr/bin/env bash
# Starts (or stops) the project-local MariaDB and Redis under var/, on loopback ports.
# Idempotent: a second start reuses the servers that already run; a second stop finds nothing to stop.
#   scripts/servers.sh start|stop|status
# GYM_MYSQL_PORT and GYM_REDIS_PORT choose the ports, GYM_VAR_DIR another directory than var/ (a whole second set of
# servers, as the test of `make run` and `make stop` uses).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/pidfile.sh
mkdir -p "${GYM_VAR_DIR:-var}"
VAR=$(cd "${GYM_VAR_DIR:-var}" && pwd)
MYSQL_PORT=${GYM_MYSQL_PORT:-33061}
REDIS_PORT=${GYM_REDIS_PORT:-63791}
MYDIR=$VAR/mysql
SOCK=$MYDIR/mysqld.sock
RDIR=$VAR/redis

mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }
as_user() { if [ "$(id -u)" = 0 ]; then echo "--user=root"; fi; }
mysql_ping() { mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1; }
redis_ping() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_mysql() {
  # Temporary tables and files in a directory of this instance's own, not the machine's /tmp: once, a first
  # install beside the test suite's other servers lost one of its temporary tables there (ENOENT) and aborted.
  mkdir -p "$MYDIR/tmp"
  if mysql_ping; then echo "mariadb: already running on 127.0.0.1:$MYSQL_PORT"; else
    if [ ! -d "$MYDIR/data/mysql" ]; then
      echo "==> initialising MariaDB in $MYDIR/data"
      mariadb-install-db --no-defaults --datadir="$MYDIR/data" --tmpdir="$MYDIR/tmp" $(as_user) \
        --auth-root-authentication-method=socket --skip-test-db >"$MYDIR/install.log" 2>&1 \
        || { cat "$MYDIR/install.log"; exit 1; }
    fi
    echo "==> starting MariaDB on 127.0.0.1:$MYSQL_PORT"
    nohup "$(mariadbd_bin)" --no-defaults --datadir="$MYDIR/data" --tmpdir="$MYDIR/tmp" --socket="$SOCK" \
      --port="$MYSQL_PORT" \
      --bind-address=127.0.0.1 --pid-file="$MYDIR/mysqld.pid" --log-error="$MYDIR/error.log" \
      --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
      --innodb-buffer-pool-size=128M --max-connections=500 --innodb-flush-log-at-trx-commit=2 \
      --default-time-zone=+00:00 $(as_user) >/dev/null 2>&1 9>&- &  # 9: the start lock, not for the daemon
    for _ in $(seq 1 120); do mysql_ping && break; sleep 0.25; done
    mysql_ping || { echo "MariaDB did not start; see $MYDIR/error.log"; tail -20 "$MYDIR/error.log"; exit 1; }
  fi
  [ -f "$VAR/db_password" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$VAR/db_password")
  local pw; pw=$(cat "$VAR/db_password")
  mariadb --no-defaults --socket="$SOCK" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS gym CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS gym_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'gym'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'gym'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON gym.* TO 'gym'@'127.0.0.1';
GRANT ALL PRIVILEGES ON gym_test.* TO 'gym'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`gym\_test\_%\`.* TO 'gym'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

start_redis() {
  mkdir -p "$RDIR"
  if redis_ping; then echo "redis: already running on 127.0.0.1:$REDIS_PORT"; return; fi
  echo "==> starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RDIR" --daemonize yes \
    --pidfile "$RDIR/redis.pid" --logfile "$RDIR/redis.log" --save "" --appendonly no >/dev/null 9>&-
  for _ in $(seq 1 40); do redis_ping && break; sleep 0.25; done
  redis_ping || { echo "Redis did not start; see $RDIR/redis.log"; exit 1; }
}

write_env() {
  local pw; pw=$(cat "$VAR/db_password")
  [ -f "$VAR/secret_key" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$VAR/secret_key")
  # The data key (contract §1 DATA_KEY_FILE): 64 hex characters. Never regenerated: it reads the openids stored.
  [ -f "$VAR/data_key" ] || (umask 077; head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > "$VAR/data_key")
  # The audit key (contract §1 AUDIT_KEY_FILE): 64 hex characters. Never regenerated: it verifies the seals made.
  [ -f "$VAR/audit_key" ] || (umask 077; head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > "$VAR/audit_key")
  # It holds SECRET_KEY and the database password: 0600 (a new file renamed over the old, whatever its mode was).
  (umask 077; cat > "$VAR/dev.env.tmp" <<ENV
DATABASE_URL=mysql://gym:$pw@127.0.0.1:$MYSQL_PORT/gym
TEST_DATABASE_URL=mysql://gym:$pw@127.0.0.1:$MYSQL_PORT/gym_test
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
SECRET_KEY=$(cat "$VAR/secret_key")
DATA_KEY_FILE=$VAR/data_key
AUDIT_KEY_FILE=$VAR/audit_key
AUDIT_CHECKPOINT_DIR=$VAR/audit-checkpoints
ENV
  )
  mv -f "$VAR/dev.env.tmp" "$VAR/dev.env"
  # Secrets written by earlier versions with the default umask.
  chmod 600 "$VAR/db_password" "$VAR/secret_key" "$VAR/data_key" "$VAR/audit_key"
}

stop_all() {
  # By pid file, and only the servers of this directory (each runs in its own data directory); MariaDB gets a
  # minute to shut down cleanly before SIGKILL, Redis keeps nothing (--save "").
  stop_process MariaDB "$MYDIR/mysqld.pid" "--datadir=$MYDIR/data" "$MYDIR/data" 60
  stop_process Redis "$RDIR/redis.pid" redis-server "$RDIR"
}

# One start or stop at a time per directory: two test runs (or pytest-xdist's workers) starting together would
# otherwise both initialise MariaDB or write dev.env through one temporary file. The daemons started do not inherit
# the lock's descriptor (9>&-), or a later stop would wait for them forever.
exec 9>"$VAR/servers.lock"
flock 9

case "${1:-start}" in
  start) start_mysql; start_redis; write_env ;;
  stop) stop_all ;;
  status) mysql_ping && echo "mariadb: up" || echo "mariadb: down"; redis_ping && echo "redis: up" || echo "redis: down" ;;
  *) echo "usage: $0 start|stop|status"; exit 2 ;;
esac
