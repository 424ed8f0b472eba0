"""The daily checkpoint: the trail's head (its last sealed id, seal and count) written outside the database.

Once a Beijing day the sealer writes it to the log and to `AUDIT_CHECKPOINT_DIR/<database>-<YYYY-MM-DD>.json`
(created once, never rewritten, mode 0600). Backups copy that directory apart from the database's dumps
(deploy/backup/gym-backup.sh), so that whoever can rewrite the database and its backups does not also hold the
checkpoints. Every verification reads them back: the row each names must still be there with that seal and count.
"""
from __future__ import annotations

import json
import logging
import os
import re

from models import utcnow
from models.prepared import Prepared

from ..formats import beijing_today, iso

log = logging.getLogger("gym.audit_trail")

HEAD = Prepared("SELECT `through_id`, `seal`, `sealed_count`, `key_id` FROM `audit_seal_head` WHERE `id` = 1",
                ("through_id", "seal", "sealed_count", "key_id"))
_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_failed_days = set()  # days whose checkpoint could not be written (logged once each)


def path_for(directory: str, database: str, day) -> str:
    """Where the checkpoint of `database` for `day` lives."""
    return os.path.join(directory, f"{database}-{day.isoformat()}.json")


async def write_if_due(settings, keys) -> str | None:
    """Write today's checkpoint unless it exists; its path when written now."""
    day = beijing_today()
    path = path_for(settings.audit_checkpoint_dir, settings.database.name, day)
    if os.path.exists(path):
        return None
    head = await HEAD.first()
    if head is None:
        return None
    record = {"database": settings.database.name, "day": day.isoformat(), "at": iso(utcnow()),
              "through_id": head.through_id, "sealed_count": head.sealed_count, "head_seal": head.seal,
              "key_id": head.key_id or keys.key_id}
    log.info("audit checkpoint %s of %s: %d rows sealed through id %d, head seal %s", record["day"],
             record["database"], head.sealed_count, head.through_id, head.seal)
    try:
        _write_once(path, json.dumps(record, sort_keys=True) + "\n")
    except FileExistsError:
        return None  # another holder wrote it a moment ago
    except OSError as e:
        if day not in _failed_days:
            _failed_days.add(day)
            log.error("the audit checkpoint could not be written to %s: %s (it stands in the log line above)",
                      path, e.strerror)
        return None
    return path


def _write_once(path: str, text: str):
    """Create `path` with `text` (0600), whole or not at all, never over an existing file."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    part = f"{path}.{os.getpid()}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(part, path)  # fails if the day's file exists: a checkpoint is never replaced
    finally:
        os.unlink(part)


def read(directory: str, database: str) -> list:
    """Every checkpoint of `database` in `directory`, as verify.Expected (a malformed file is logged and skipped)."""
    from .verify import Expected

    name = re.compile(rf"{re.escape(database)}-{_DAY}\.json")
    try:
        files = sorted(f for f in os.listdir(directory) if name.fullmatch(f))
    except FileNotFoundError:
        return []
    except OSError as e:
        log.error("the audit checkpoints in %s cannot be read: %s", directory, e.strerror)
        return []
    found = []
    for file in files:
        try:
            with open(os.path.join(directory, file), encoding="utf-8") as fh:
                data = json.load(fh)
            found.append(Expected(int(data["through_id"]), str(data["head_seal"]), int(data["sealed_count"])))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("audit checkpoint %s is unreadable, skipped: %s", file, e)
    return found
