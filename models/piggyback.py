"""Transactions whose BEGIN travels with their first statement and whose COMMIT with their last: two round trips to
MySQL fewer per transaction, the same transaction.

`BEGIN` and `COMMIT` are statements like any other, and each cost the service a round trip of its own (a write,
a wake-up, a reply to read and parse, and the event loop's work between them: about as much CPU as the statement
they surround). The pool's connections allow several statements in one packet (CLIENT_MULTI_STATEMENTS), so a root
transaction opened by `transaction()` sends nothing at first; its first statement goes as `BEGIN;<statement>` and,
when the caller says which statement is its last (`commit_with_next()`), that one goes as `<statement>;COMMIT`.
MySQL runs the statements of a packet one after the other and stops at the first that fails, so:
- a failing first statement leaves a transaction opened by its BEGIN, which the rollback ends as before;
- a failing last statement never reaches its COMMIT; the rollback follows, as before;
- a `kill -9` of the service after the packet left is a connection dropped mid-transaction (rolled back by the
  server) or after its COMMIT (committed): the same two outcomes as with separate statements.

What is answered to the cursor is the statement's own result (row count, rows, insert id): the BEGIN's and
COMMIT's OK packets are read and dropped by the cursor class below, so every peewee and peewee-async query runs
unchanged inside such a transaction. A nested `transaction()` is a savepoint (peewee-async's own), as before.

Stacked statements widen what an SQL injection could do, so: the service never builds SQL from input text; every
value is a parameter escaped by PyMySQL, which follows the server's NO_BACKSLASH_ESCAPES.
"""
from __future__ import annotations

import aiomysql
from peewee_async.connection import connection_context

from .base import database


class PiggybackCursor(aiomysql.Cursor):
    """A cursor that sends its connection's pending BEGIN before, and a wanted COMMIT after, its statement, in the
    same packet; the cursor's result is the statement's."""

    def _escape_args(self, args, conn):
        """PyMySQL's escaping (the connection's `escape`), with its two commonest cases answered here: NULL and a
        plain int, written as PyMySQL writes them (`escape_None`, `escape_int`). An order flow escapes about 130
        parameters, most of them NULLs and ids, and each took four Python calls; text, times, bytes and anything
        else still go through the connection's escape (which follows the server's NO_BACKSLASH_ESCAPES)."""
        if type(args) is tuple or type(args) is list:
            escape = conn.escape
            return tuple(["NULL" if a is None else str(a) if type(a) is int else escape(a) for a in args])
        return super()._escape_args(args, conn)

    async def _query(self, q):
        conn = self._get_db()
        begin = getattr(conn, "gym_pending_begin", False)
        commit = getattr(conn, "gym_commit_next", False)
        if not (begin or commit):
            return await super()._query(q)
        conn.gym_pending_begin = conn.gym_commit_next = False
        self._last_executed = q
        self._clear_result()
        await conn.query(("BEGIN;" if begin else "") + q + (";COMMIT" if commit else ""))
        if begin:
            await conn.next_result()  # the statement's own result (raises when it failed)
        await self._do_get_result()
        if commit:
            await conn.next_result()  # COMMIT's (raises when it failed)
            conn.gym_committed = True


class Transaction:
    """A root transaction (BEGIN with the first statement, COMMIT with the one after commit_with_next(), or alone at
    the end), or a savepoint when one is already open on this task's connection."""

    def __init__(self):
        self._connection = None
        self._nested = None
        self._context = None

    async def __aenter__(self):
        self._connection = database.aio_connection()
        conn = await self._connection.__aenter__()
        context = connection_context.get()
        if context.transaction_is_opened:
            self._nested = database.aio_atomic()
            await self._nested.__aenter__()
            return self
        self._context = context
        context.transaction_is_opened = True
        conn.gym_pending_begin, conn.gym_commit_next, conn.gym_committed = True, False, False
        self.conn = conn
        return self

    def takes_commit(self) -> bool:
        """True for a root transaction: the caller appends `;COMMIT` to its last packet, then calls committed()."""
        return self._nested is None

    def committed(self):
        """The caller's packet carried the COMMIT, and it succeeded."""
        self.conn.gym_committed = True

    def commit_with_next(self):
        """The next statement is the transaction's last: its COMMIT goes in the same packet (a savepoint: no-op)."""
        if self._nested is None:
            self.conn.gym_commit_next = True

    async def __aexit__(self, exc_type, exc, tb):
        try:
            if self._nested is not None:
                return await self._nested.__aexit__(exc_type, exc, tb)
            conn = self.conn
            begun = not conn.gym_pending_begin
            committed = conn.gym_committed
            conn.gym_pending_begin = conn.gym_commit_next = conn.gym_committed = False
            if exc_type is None:
                if begun and not committed:
                    await _run(conn, "COMMIT")
            elif begun and not committed:
                try:
                    await _run(conn, "ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection broke: the server rolls back; the first error stands
                    conn.close()
        finally:
            if self._context is not None:
                self._context.transaction_is_opened = False
            await self._connection.__aexit__(exc_type, exc, tb)
        return False


async def _run(conn, sql):
    async with conn.cursor() as cursor:
        await cursor.execute(sql)


def transaction() -> Transaction:
    """`async with transaction() as tx:` a transaction on this task's connection (see the module's docstring)."""
    return Transaction()
