#!/usr/bin/env bash
# Backups for point-in-time recovery of the gym database (docs/deploy.md, "Backups"):
#   gym-backup.sh full      a consistent mariadb-dump (it records the binary-log position it was taken at),
#                           then the closed binary logs; old copies pruned (nightly, gym-backup.timer)
#   gym-backup.sh binlogs   close the current binary log and copy every closed one (gym-binlog-backup.timer)
# Run as root: MariaDB's root@localhost logs in over the Unix socket. Settings (optional, /etc/gym/backup.env):
#   BACKUP_DIR (/var/backups/gym), GYM_DB (gym), KEEP_DAYS (14), BACKUP_REMOTE (an rsync target, e.g.
#   backup@10.0.0.9:/srv/gym-backups; without one the backups share the database's disk, which is not a backup),
#   AUDIT_CHECKPOINT_DIR (/var/lib/gym/audit-checkpoints) and CHECKPOINT_REMOTE (an rsync target of its own, e.g.
#   audit@10.0.0.9:/srv/gym-audit-checkpoints): the audit trail's daily checkpoints are kept apart from the dumps,
#   added to and never overwritten or pruned, so that whoever rewrites the database and its dumps cannot rewrite
#   them too (docs/deploy.md, section 17, "The audit trail").
set -euo pipefail
BACKUP_DIR=${BACKUP_DIR:-/var/backups/gym}
GYM_DB=${GYM_DB:-gym}
KEEP_DAYS=${KEEP_DAYS:-14}
BACKUP_REMOTE=${BACKUP_REMOTE:-}
AUDIT_CHECKPOINT_DIR=${AUDIT_CHECKPOINT_DIR:-/var/lib/gym/audit-checkpoints}
CHECKPOINT_REMOTE=${CHECKPOINT_REMOTE:-}
MYSQL=(mariadb -uroot)  # reads /etc/mysql and /root/.my.cnf, as mariadb-dump does
command -v mariadb >/dev/null 2>&1 || MYSQL=(mysql -uroot)
DUMP=$(command -v mariadb-dump || command -v mysqldump)
umask 077
mkdir -p "$BACKUP_DIR/dumps" "$BACKUP_DIR/binlogs"

copy_binlogs() {
  local base dir current name
  base=$("${MYSQL[@]}" -N -e 'SELECT @@log_bin_basename')
  [ -n "$base" ] && [ "$base" != NULL ] || { echo "binary logging is off: no point-in-time recovery" >&2; exit 1; }
  dir=$(dirname "$base")
  "${MYSQL[@]}" -e 'FLUSH BINARY LOGS'
  current=$("${MYSQL[@]}" -N -e 'SHOW MASTER STATUS' | cut -f1)
  while read -r name _; do
    [ "$name" = "$current" ] && continue
    [ -f "$BACKUP_DIR/binlogs/$name" ] || { cp "$dir/$name" "$BACKUP_DIR/binlogs/$name.part" && mv "$BACKUP_DIR/binlogs/$name.part" "$BACKUP_DIR/binlogs/$name"; }
  done < <("${MYSQL[@]}" -N -e 'SHOW BINARY LOGS')
  echo "binary logs copied to $BACKUP_DIR/binlogs (up to the one before $current)"
}

full_dump() {
  local out
  out=$BACKUP_DIR/dumps/$GYM_DB-$(date -u +%Y%m%dT%H%M%SZ).sql.gz
  # shellcheck disable=SC2064  # expanded now on purpose: $out is local to this function
  trap "rm -f '$out.part'" EXIT
  # --single-transaction: a consistent snapshot without locking the tables for the dump's duration;
  # --master-data=2: the binary-log file and position of that snapshot, as a comment at the top.
  "$DUMP" --single-transaction --master-data=2 --routines --triggers --events --hex-blob \
    --databases "$GYM_DB" | gzip >"$out.part"
  mv "$out.part" "$out"
  echo "dump written: $out ($(du -h "$out" | cut -f1)); $(zcat "$out" | grep -m1 -o "MASTER_LOG_FILE='[^']*', MASTER_LOG_POS=[0-9]*")"
  find "$BACKUP_DIR/dumps" -name '*.sql.gz' -mtime +"$KEEP_DAYS" -print -delete
  find "$BACKUP_DIR/binlogs" -type f -mtime +"$((KEEP_DAYS + 1))" -print -delete
}

case "${1:-full}" in
  full) full_dump; copy_binlogs ;;
  binlogs) copy_binlogs ;;
  *) echo "usage: $0 full|binlogs" >&2; exit 2 ;;
esac
if [ -n "$BACKUP_REMOTE" ]; then
  rsync -a "$BACKUP_DIR/" "$BACKUP_REMOTE/"
  echo "copied to $BACKUP_REMOTE"
fi
if [ -n "$CHECKPOINT_REMOTE" ] && [ -d "$AUDIT_CHECKPOINT_DIR" ]; then
  rsync -a --ignore-existing "$AUDIT_CHECKPOINT_DIR/" "$CHECKPOINT_REMOTE/"
  echo "audit checkpoints copied to $CHECKPOINT_REMOTE (existing ones left as they were)"
elif [ -z "$CHECKPOINT_REMOTE" ]; then
  echo "CHECKPOINT_REMOTE is not set: the audit checkpoints in $AUDIT_CHECKPOINT_DIR have no copy apart" >&2
fi
