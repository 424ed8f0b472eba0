"""Changing the data key while the service runs (`manage.py rotate-data-key`, docs/deploy.md section 16).

Every ciphertext of `personal_data.ENCRYPTED_COLUMNS` not under the current key (DATA_KEY_FILE) is read with the
previous one (DATA_KEY_PREVIOUS_FILE) and written again under the current one, with its lookup hash, in batches in id
order; each batch is one short transaction, and each row's UPDATE is conditional on the ciphertext it read, so a row
the service changed meanwhile (a login re-encrypts its parent's row too) is left as the service wrote it. The
service, configured with both keys, reads either while this runs. A second pass picks up what was written under the
old key meanwhile (a process not yet restarted); the command ends when no row is left under another key, or says
which rows no loaded key reads.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import peewee

from . import personal_data
from .base import database
from .personal_data import ENCRYPTED_COLUMNS, Keyring, PersonalDataError

MAX_PASSES = 5


@dataclass
class RotationResult:
    """What a rotation did and what is left (rows not under the current key, by `table.column`)."""

    key_id: str
    rewritten: int = 0
    left: dict = field(default_factory=dict)
    unreadable: dict = field(default_factory=dict)
    conflicts: list = field(default_factory=list)

    @property
    def done(self) -> bool:
        """True when every ciphertext is under the current key."""
        return not any(self.left.values())


async def _value(sql, params):
    async def first_value(db, cursor):
        return (await cursor.fetchone())[0]

    return await database.aio_execute_sql(sql, params, fetch_results=first_value)


async def _rows(sql, params):
    async def all_rows(db, cursor):
        return await cursor.fetchall()

    return await database.aio_execute_sql(sql, params, fetch_results=all_rows)


async def _row_count(db, cursor):
    return cursor.rowcount


def _not_current(column) -> str:
    return f"`{column}` IS NOT NULL AND `{column}` NOT LIKE %s"


async def left_under_other_keys(ring: Keyring) -> dict:
    """{'table.column': rows whose ciphertext is not under the current key} for every encrypted column."""
    prefix = personal_data.ciphertext_prefix(ring.current.key_id) + "%"
    return {f"{table}.{column}": await _value(f"SELECT COUNT(*) FROM `{table}` WHERE {_not_current(column)}",
                                              (prefix,))
            for table, column, _, _ in ENCRYPTED_COLUMNS}


async def under_no_loaded_key(ring: Keyring) -> dict:
    """{'table.column': rows whose ciphertext no loaded key (current or previous) reads} for every encrypted column.

    Nonzero after a restore of a backup taken before a key change, or with the wrong DATA_KEY_FILE: the parents of
    those rows are not found at login (their lookup hash is under the missing key) and would come back as new users.
    One scan of each encrypted column (the users and the payments: thousands of rows for a gym)."""
    prefixes = [personal_data.ciphertext_prefix(key_id) + "%" for key_id in ring.key_ids]
    unread = " AND ".join(["`{column}` NOT LIKE %s"] * len(prefixes))
    return {f"{table}.{column}": await _value(
        f"SELECT COUNT(*) FROM `{table}` WHERE `{column}` IS NOT NULL AND " + unread.format(column=column), prefixes)
        for table, column, _, _ in ENCRYPTED_COLUMNS}


async def _rewrite(ring, table, column, field_name, hash_column, row_id, stored) -> int:
    value = ring.decrypt(stored, field_name)
    sets, params = [f"`{column}` = %s"], [ring.encrypt(value, field_name)]
    if hash_column:
        sets.append(f"`{hash_column}` = %s")
        params.append(ring.hash(value, field_name))
    return await database.aio_execute_sql(
        f"UPDATE `{table}` SET {', '.join(sets)} WHERE `id` = %s AND `{column}` = %s", (*params, row_id, stored),
        fetch_results=_row_count)


async def _rewrite_batch(ring, spec, rows) -> tuple[int, int, int, list]:
    """One transaction: (rows this changed, rows now under the current key, rows no loaded key reads, rows whose new
    lookup hash another row holds)."""
    table, column, field_name, hash_column = spec
    done = seen = unreadable = 0
    conflicts = []
    async with database.aio_atomic():
        for row_id, stored in rows:
            try:
                done += await _rewrite(ring, table, column, field_name, hash_column, row_id, stored)
                seen += 1  # re-encrypted here, or by the service meanwhile (the UPDATE then changed nothing)
            except PersonalDataError:
                unreadable += 1
            except peewee.IntegrityError:  # the current key's hash is another row's: two rows, one parent
                conflicts.append(f"{table}.{column} id {row_id}")
    return done, seen, unreadable, conflicts


async def _rotate_column(ring, result, spec, batch, pause, progress):
    table, column, field_name, hash_column = spec
    name = f"{table}.{column}"
    prefix = personal_data.ciphertext_prefix(ring.current.key_id) + "%"
    total = await _value(f"SELECT COUNT(*) FROM `{table}` WHERE {_not_current(column)}", (prefix,))
    if not total:
        return
    done = seen = last = 0
    while rows := await _rows(f"SELECT `id`, `{column}` FROM `{table}` WHERE `id` > %s AND {_not_current(column)} "
                              "ORDER BY `id` LIMIT %s", (last, prefix, batch)):
        last = rows[-1][0]
        for attempt in range(5):
            try:
                batch_done, batch_seen, unreadable, conflicts = await _rewrite_batch(ring, spec, rows)
                break
            except peewee.OperationalError as e:  # a deadlock or lock wait with the service: the batch again
                if attempt == 4 or not e.args or e.args[0] not in (1213, 1205):
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        done, seen = done + batch_done, seen + batch_seen
        if unreadable:
            result.unreadable[name] = result.unreadable.get(name, 0) + unreadable
        result.conflicts += conflicts
        progress(f"{name}: {seen}/{max(seen, total)} re-encrypted")
        if pause:
            await asyncio.sleep(pause)
    result.rewritten += done


async def rotate(ring: Keyring, batch=500, pause=0.05, progress=print) -> RotationResult:
    """Re-encrypt every ciphertext not under the current key; returns what was done and what is left."""
    result = RotationResult(ring.current.key_id)
    for _ in range(MAX_PASSES):
        result.unreadable, result.conflicts = {}, []
        for spec in ENCRYPTED_COLUMNS:
            await _rotate_column(ring, result, spec, batch, pause, progress)
        result.left = await left_under_other_keys(ring)
        stuck = sum(result.unreadable.values()) + len(result.conflicts)
        if result.done or sum(result.left.values()) <= stuck:
            break  # all done, or only what no pass can change is left
    return result
