"""The sealer: one process at a time (the `audit-seal` job lease) seals the committed audit rows in id order.

A round, in one transaction: lock the head row (`audit_seal_head`, which only the sealer writes), read the rows after
it with a locking read, seal the longest run of them that nothing can still come before, and move the head.

Ids are given out before their transactions commit, so a row may commit after a higher one. The locking read waits
for any row already inserted and not yet committed in its range (InnoDB makes the reader wait for the inserting
transaction), so such a row is never passed over. A missing id (a gap) is either a rolled-back insert, which never
comes, or an insert that took its id and has not written its row yet (it waits for a foreign-key check's lock): a
gap below an id seen committed `GAP_SETTLE_SECONDS` ago is taken as final. A row that still committed into a gap
after that shows in verify as inserted among the sealed ones (docs/reliability.md: "late audit row").

Besides sealing, the lease holder writes the daily checkpoint, runs the retention job hourly and verifies the whole
trail every AUDIT_VERIFY_INTERVAL_SECONDS (in a task of its own, so sealing never waits for it).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from models import database, utcnow
from models.prepared import Prepared
from telemetry.context import new_job_context

from ..leases import ensure_job_row, job_lease
from ..tasks import cancel_and_wait
from ..worker import BackgroundWorker
from . import checkpoints, retention
from .seal import DIGEST, ID, ROW_SELECT, SEAL, SealKeys

log = logging.getLogger("gym.audit_trail")

JOB = "audit-seal"
ROUND_SECONDS = 1.0
LEASE_SECONDS = 5.0  # a dead holder's successor seals within about this, plus a round
GAP_SETTLE_SECONDS = 2.0
BATCH = 100  # rows a round reads and seals without a pause (about 22 µs a row): a few ms of the event loop
RETENTION_EVERY_SECONDS = 3600.0
FIRST_VERIFY_SECONDS = 60.0

HEAD_FOR_UPDATE = Prepared("SELECT `through_id`, `seal`, `sealed_count`, `key_id` FROM `audit_seal_head` "
                           "WHERE `id` = 1 FOR UPDATE", ("through_id", "seal", "sealed_count", "key_id"))
PENDING = Prepared(f"SELECT {ROW_SELECT} FROM `payment_audit_log` WHERE `id` > %s ORDER BY `id` LIMIT %s "
                   "LOCK IN SHARE MODE")
MOVE_HEAD = Prepared("UPDATE `audit_seal_head` SET `through_id` = %s, `seal` = %s, "
                     "`sealed_count` = `sealed_count` + %s, `key_id` = %s, `updated_at` = %s WHERE `id` = 1")


class SealConflict(Exception):
    """A row to seal was sealed meanwhile by someone else: the round is rolled back."""


class GapWatch:
    """When each id was seen committed: a gap below an id seen GAP_SETTLE_SECONDS ago is final."""

    def __init__(self, settle: float = GAP_SETTLE_SECONDS):
        self.settle = settle
        self._seen = deque()  # (monotonic time, highest id seen committed then), in time order

    def saw(self, highest_id: int, now: float):
        """`highest_id` is committed at `now`: every lower id was given out before now."""
        if not self._seen or highest_id > self._seen[-1][1]:
            self._seen.append((now, highest_id))

    def settled_through(self, now: float) -> int:
        """Every missing id up to the result is final (0 when none is known to be yet)."""
        settled = 0
        while self._seen and self._seen[0][0] <= now - self.settle:
            settled = self._seen.popleft()[1]
        if settled:
            self._seen.appendleft((now - self.settle, settled))  # still true later; keep it as the floor
        return settled


def _seal_update(sealed) -> tuple[str, list]:
    """One UPDATE setting the digest and seal of each (id, digest, seal), only where no seal is yet."""
    ids = [row_id for row_id, _, _ in sealed]
    cases = " ".join(["WHEN %s THEN %s"] * len(sealed))
    sql = (f"UPDATE `payment_audit_log` SET `personal_digest` = CASE `id` {cases} END, `seal` = CASE `id` {cases} END "
           f"WHERE `id` IN ({', '.join(['%s'] * len(ids))}) AND `seal` IS NULL")
    params = [v for row_id, digest, _ in sealed for v in (row_id, digest)]
    params += [v for row_id, _, seal in sealed for v in (row_id, seal)]
    return sql, params + ids


class SealRound:
    """What one round did: rows sealed, whether rows wait behind a gap not yet final, the head after it."""

    def __init__(self):
        self.sealed = 0
        self.waiting = False
        self.through_id = 0


async def seal_round(keys: SealKeys, gaps: GapWatch, batch: int = BATCH, complaints: set | None = None) -> SealRound:
    """Seal the next committed rows after the head, in id order (one transaction)."""
    complaints = complaints if complaints is not None else set()
    async with database.aio_connection():
        # READ COMMITTED (the pool's sessions are; said again here because it matters): the locking read then takes
        # no gap lock, so the hot paths' inserts after the head never wait for the sealer.
        await database.aio_execute_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        async with database.aio_atomic():
            return await _seal_next(keys, gaps, batch, complaints)


async def _seal_next(keys, gaps, batch, complaints) -> SealRound:
    done = SealRound()
    head = await HEAD_FOR_UPDATE.first()
    if head is None:
        raise RuntimeError("audit_seal_head has no row: run `python manage.py migrate`")
    done.through_id = head.through_id
    if head.key_id is not None and head.key_id != keys.key_id:
        if "key" not in complaints:
            complaints.add("key")
            log.error("AUDIT_KEY_FILE is not the key that sealed the audit trail (its key id is %s, this one %s): "
                      "nothing is sealed until the right key is configured", head.key_id, keys.key_id)
        return done
    rows = await PENDING.rows(head.through_id, batch)
    now = time.monotonic()
    if rows:
        gaps.saw(rows[-1][ID], now)
    settled = gaps.settled_through(now)
    previous_id, previous_seal, sealed = head.through_id, head.seal, []
    for row in rows:
        if row[SEAL] is not None or row[DIGEST] is not None:
            if row[ID] not in complaints:
                complaints.add(row[ID])
                log.error("audit row %d after the sealed head already carries a seal the sealer did not make: "
                          "not sealed over (verify names it)", row[ID])
            break
        if row[ID] != previous_id + 1 and row[ID] - 1 > settled:
            done.waiting = True  # a gap before it may still be filled
            break
        digest = keys.personal_digest(row)
        seal = keys.seal(previous_seal, row, digest)
        sealed.append((row[ID], digest, seal))
        previous_id, previous_seal = row[ID], seal
    if sealed:
        sql, params = _seal_update(sealed)

        async def count(db, cursor):
            return cursor.rowcount

        if await database.aio_execute_sql(sql, params, fetch_results=count) != len(sealed):
            raise SealConflict("an audit row was sealed by another holder meanwhile")
        await MOVE_HEAD.execute(previous_id, previous_seal, len(sealed), keys.key_id, utcnow())
        done.sealed, done.through_id = len(sealed), previous_id
    return done


class AuditSealer(BackgroundWorker):
    """Seals the audit trail about every second while this process holds the `audit-seal` lease; and, as its holder,
    writes the daily checkpoint, erases expired personal data hourly and verifies the trail periodically."""

    name = "audit-seal"

    def __init__(self, ctx):
        super().__init__(ROUND_SECONDS)
        self.ctx = ctx
        self.settings = ctx.settings
        self.keys = SealKeys(ctx.settings.audit_key)
        self.lease = job_lease(JOB, seconds=LEASE_SECONDS)
        self.holding = False
        self.gaps = GapWatch()
        self.complaints = set()  # what was logged once already (a foreign seal, the wrong key)
        self.waiting = False
        self._next_retention = 0.0
        self._next_verify = 0.0
        self._verifying = None
        self._job_row = False

    async def run_once(self):
        if not self.holding:
            if not self._job_row:
                await ensure_job_row(JOB)
                self._job_row = True
            self.holding = await self.lease.try_claim()
            if self.holding:  # a new holder: its chores start afresh
                self.gaps = GapWatch()
                self._next_retention = time.monotonic()
                self._next_verify = time.monotonic() + min(FIRST_VERIFY_SECONDS,
                                                           self.settings.audit_verify_interval_seconds)
        else:
            self.holding = await self.lease.renew()
        if not self.holding:
            return
        self.lease.start_heartbeat()
        try:
            new_job_context("audit-seal")
            done = SealRound()
            done.sealed = BATCH
            while done.sealed == BATCH:  # a full batch: more may be waiting
                await asyncio.sleep(0)  # what became ready meanwhile (parents' requests) runs between rounds
                done = await seal_round(self.keys, self.gaps, complaints=self.complaints)
            self.waiting = done.waiting
            await checkpoints.write_if_due(self.settings, self.keys)
            if time.monotonic() >= self._next_retention:
                self._next_retention = time.monotonic() + RETENTION_EVERY_SECONDS
                await retention.erase_expired(self.settings.personal_data_retention_days)
            self._start_verify_if_due()
        finally:
            await self.lease.stop_heartbeat()

    def _start_verify_if_due(self):
        if time.monotonic() < self._next_verify or (self._verifying and not self._verifying.done()):
            return
        self._next_verify = time.monotonic() + self.settings.audit_verify_interval_seconds
        verifier = getattr(self.ctx, "audit_verifier", None)
        if verifier is not None:
            self._verifying = asyncio.get_running_loop().create_task(self._verify(verifier))

    async def _verify(self, verifier):
        new_job_context("audit-verify")
        try:
            await verifier.verify()
        except Exception as e:  # noqa: BLE001 - the next period tries again
            log.warning("the periodic verification of the audit trail did not run: %s", e)

    def next_wait(self) -> float:
        if not self.holding:
            return self.interval
        return GAP_SETTLE_SECONDS / 4 if self.waiting else self.interval

    async def on_stop(self):
        await cancel_and_wait(self._verifying, what="the audit trail's verification")
        if self.holding:
            await self.lease.release()
            self.holding = False
