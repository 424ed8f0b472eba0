"""Leases in MySQL: a claim on one row by one holder, timed by the database's clock.

A claim writes a random token into the row's owner column and an end computed by MySQL (`UTC_TIMESTAMP`), so the
clocks of the processes never matter. Only the holder of the token renews or gives it back; while the work runs a
heartbeat renews it. Work that must not happen twice also checks the token under the row lock before it commits
(`Lease.held()` in the WHERE of the locking SELECT), so a holder whose lease ran out cannot act on a stale belief.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from contextlib import asynccontextmanager

from peewee import SQL

import errors
from models import JobLease, PaymentOrder, Refund
from models.prepared import Prepared

from .tasks import cancel_and_wait

log = logging.getLogger("gym.leases")
_STATEMENTS = {}  # (model, key, owner, until) -> the built-once claim, renew and release
_background = set()  # releases retried after a failure (kept referenced until done)

DB_NOW = SQL("UTC_TIMESTAMP(6)")


class LeaseLost(Exception):
    """The lease ran out or was taken by another holder before the work committed."""


class Lease:
    """One holder's claim on one row of `model` (owner / until columns)."""

    def __init__(self, model, key_field, key, seconds, owner_field=None, until_field=None):
        self.model = model
        self.key_field = key_field
        self.key = key
        self.seconds = seconds
        self.owner_field = owner_field or model.lease_owner
        self.until_field = until_field or model.lease_until
        self.token = secrets.token_hex(16)
        self.lost = False
        self.given_back = False  # released by the holder's own last statement (nothing left to release)
        self._heartbeat = None

    def held(self):
        """SQL condition: the row is still under this lease (for fencing in a locking SELECT or an UPDATE)."""
        return (self.owner_field == self.token) & (self.until_field > DB_NOW)

    def _statements(self):
        """(claim, renew, release) for this kind of lease, built once."""
        kind = (self.model, self.key_field.name, self.owner_field.name, self.until_field.name)
        built = _STATEMENTS.get(kind)
        if built is None:
            table, key = self.model._meta.table_name, self.key_field.column_name
            owner, until = self.owner_field.column_name, self.until_field.column_name
            built = _STATEMENTS[kind] = (
                Prepared(f"UPDATE `{table}` SET `{owner}` = %s, `{until}` = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
                         f"WHERE `{key}` = %s AND (`{until}` IS NULL OR `{until}` <= UTC_TIMESTAMP(6))"),
                Prepared(f"UPDATE `{table}` SET `{until}` = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND "
                         f"WHERE `{key}` = %s AND `{owner}` = %s"),
                Prepared(f"UPDATE `{table}` SET `{owner}` = NULL, `{until}` = NULL WHERE `{key}` = %s AND `{owner}` = %s"))
        return built

    async def try_claim(self) -> bool:
        """Claim the row if no live lease is on it; True when claimed."""
        claim, _, _ = self._statements()
        return await claim.execute(self.token, int(self.seconds * 1_000_000), self.key) == 1

    async def renew(self) -> bool:
        """Push the end out again; False when another holder has taken the row (every row) meanwhile."""
        _, renew, _ = self._statements()
        rows = await renew.execute(int(self.seconds * 1_000_000), self.key, self.token)
        if rows == 0:
            self.lost = True
        return rows > 0

    async def release(self):
        """Give the row back (only if this holder still has it)."""
        _, _, release = self._statements()
        await release.execute(self.key, self.token)

    def start_heartbeat(self):
        """Renew every third of the lease while the work runs."""
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def stop_heartbeat(self):
        """Stop renewing."""
        if self._heartbeat is not None:
            await cancel_and_wait(self._heartbeat, what=f"the heartbeat of the {self.key} lease")
            self._heartbeat = None

    async def _beat(self):
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                if not await self.renew():
                    log.error("lease on %s %s lost to another holder", self.model.__name__, self.key)
                    return
            except Exception as e:  # noqa: BLE001 - the database may be down; the fencing check still protects
                log.warning("renewing the lease on %s %s failed: %s", self.model.__name__, self.key, e)

    async def claim_waiting(self, wait: float):
        """Claim, retrying with back-off for up to `wait` seconds; 503 SERVICE_UNAVAILABLE after that."""
        deadline = time.monotonic() + wait
        delay = 0.01
        while not await self.try_claim():
            if time.monotonic() > deadline:
                raise errors.service_unavailable("订单正在处理中，请稍后重试")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def end(self):
        """Stop the heartbeat and give the row back; never raises. If the database is away, the holder keeps
        trying in the background until the lease would have run out anyway, so the row is free as soon as the
        database answers again (rather than when the lease ends)."""
        await self.stop_heartbeat()
        if self.given_back:
            return
        try:
            await self.release()
        except Exception as e:  # noqa: BLE001
            log.warning("releasing the lease on %s %s failed; retrying in the background: %s",
                        self.model.__name__, self.key, e)
            task = asyncio.get_running_loop().create_task(self._release_later())
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _release_later(self):
        deadline = time.monotonic() + self.seconds
        delay = 0.2
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            try:
                await self.release()
                return
            except Exception:  # noqa: BLE001 - still away
                delay = min(delay * 2, 2.0)


def order_lease(order_pk: int, seconds: float = 15) -> Lease:
    """A lease on one order: prepay, cancel, expiry and the reconciler's work on it never overlap."""
    return Lease(PaymentOrder, PaymentOrder.id, order_pk, seconds)


def refund_lease(refund_pk: int, seconds: float = 30) -> Lease:
    """A lease on one refund: its submission and settlement by the reconciler never overlap."""
    return Lease(Refund, Refund.id, refund_pk, seconds)


def job_lease(name: str, seconds: float) -> Lease:
    """A lease on a background job (one process runs it at a time)."""
    return Lease(JobLease, JobLease.name, name, seconds, JobLease.owner, JobLease.lease_until)


async def ensure_job_row(name: str):
    """Create the job's lease row if it does not exist."""
    await JobLease.insert(name=name, owner=None, lease_until=None).on_conflict(
        update={JobLease.name: JobLease.name}).aio_execute()


@asynccontextmanager
async def holding(lease: Lease, wait: float = 15.0):
    """Hold `lease` for the block (claimed within `wait` seconds, renewed meanwhile, released after)."""
    await lease.claim_waiting(wait)
    lease.start_heartbeat()
    try:
        yield lease
    finally:
        await lease.end()
