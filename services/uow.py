"""A unit of work: one database transaction, retried on deadlock, whose status events go out after commit (its BEGIN
and COMMIT sent with its first statement and its audit rows: models/piggyback.py)."""
from __future__ import annotations

import asyncio
import logging

import peewee
import pymysql

from models.piggyback import transaction

from . import audit
from .formats import iso
from .lifecycle.statuses import EXPIRED

log = logging.getLogger("gym.uow")

_RETRY_ERRNOS = {1213, 1205}  # deadlock, lock wait timeout


class UnitOfWork:
    """Collects the order status events of one transaction; carries the settings the transitions read."""

    def __init__(self, settings=None):
        self.settings = settings
        self.messages_queued = False  # a subscribe message was queued: the sender is woken after the commit
        self.events = []
        self.payments = []  # sources of the payments applied (notify | query | close)
        self.releases = []  # (released_at, due) of the seats given back
        self.refunds = []  # statuses refunds reached
        self.failures = []  # reasons of payments reported failed
        self.tx = None  # models.piggyback.Transaction: a step whose statements end it may send its COMMIT with them

    def ending(self):
        """The transaction, for statements that end it and may carry its COMMIT (none when audit rows wait to be
        flushed at its end)."""
        return self.tx if audit.nothing_pending() else None

    def order_changed(self, order, reservation=None):
        """Remember that an order's status (or its reservation's) changed."""
        self.events.append({
            "order_pk": order.id, "order_id": order.order_id, "user_id": order.user_id, "status": order.status,
            "reservation_status": reservation.status if reservation is not None else None,
            "at": iso(order.updated_at),
        })


    def payment_applied(self, source):
        """A payment was applied (counted once committed)."""
        self.payments.append(source)

    def seat_released(self, reservation):
        """A seat was given back; it was due at its hold's end when it lapsed, else at once."""
        due = reservation.expires_at if reservation.status == EXPIRED else reservation.released_at
        self.releases.append((reservation.released_at, due))

    def payment_failed(self, reason):
        """A payment was reported failed (the order ends `failed`)."""
        self.failures.append(reason)

    def message_queued(self):
        """A subscribe message was queued in this transaction."""
        self.messages_queued = True

    def refund_changed(self, refund):
        """A refund reached a new status."""
        self.refunds.append(refund.status)


def _errno(exc):
    for e in (exc, getattr(exc, "__cause__", None), getattr(exc, "__context__", None)):
        if isinstance(e, pymysql.err.MySQLError) and e.args:
            return e.args[0]
        if isinstance(e, peewee.DatabaseError) and getattr(e, "orig", None) is not None and e.orig.args:
            return e.orig.args[0]
    return None


async def run_in_transaction(ctx, fn, *args, retries=4, **kwargs):
    """Run `await fn(uow, *args, **kwargs)` in a transaction; publish its events once committed."""
    attempt = 0
    while True:
        uow = UnitOfWork(getattr(ctx, "settings", None))
        try:
            async with transaction() as tx:  # BEGIN with the first statement, COMMIT with the audit rows
                uow.tx = tx
                rows = audit.collect()
                try:
                    result = await fn(uow, *args, **kwargs)
                    await audit.flush(rows, tx)
                finally:
                    audit.discard(rows)
        except (peewee.OperationalError, pymysql.err.OperationalError) as e:
            attempt += 1
            if _errno(e) in _RETRY_ERRNOS and attempt < retries:
                log.info("transaction %s retried after %s", getattr(fn, "__name__", fn), e)
                await asyncio.sleep(0.01 * attempt)
                continue
            raise
        await ctx.committed(uow)
        return result
