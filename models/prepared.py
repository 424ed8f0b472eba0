"""SQL that peewee builds once: a hot statement's text is made at import from a peewee query (or written out where
peewee cannot say it, e.g. a multi-table UPDATE), then run with fresh parameters through peewee-async — in the
transaction of the running task, like any peewee-async query — without building it again on every call.
"""
from __future__ import annotations

from types import SimpleNamespace

from .base import database


def sql_of(query) -> tuple[str, int]:
    """(SQL text, number of parameters) of a peewee query built with placeholder values."""
    sql, params = database.get_sql_context().sql(query).query()
    return sql, len(params)


class Prepared:
    """One statement; `columns` names the selected values when rows should become objects."""

    def __init__(self, sql: str, columns: tuple[str, ...] = ()):
        self.sql = sql
        self.columns = columns

    @classmethod
    def of(cls, query, columns: tuple[str, ...] = ()):
        """From a peewee query whose parameters are placeholders given again, in the same order, at each call."""
        return cls(sql_of(query)[0], columns)

    async def rows(self, *params) -> list[tuple]:
        """Every row."""
        async def fetch(db, cursor):
            return await cursor.fetchall()

        return await database.aio_execute_sql(self.sql, params, fetch_results=fetch)

    async def objects(self, *params) -> list[SimpleNamespace]:
        """Every row as an object whose attributes are `columns`."""
        columns = self.columns
        return [SimpleNamespace(**dict(zip(columns, row))) for row in await self.rows(*params)]

    async def first(self, *params) -> SimpleNamespace | None:
        """The first row as an object, or None."""
        found = await self.objects(*params)
        return found[0] if found else None

    async def execute(self, *params) -> int:
        """Run it; the number of rows it changed."""
        async def count(db, cursor):
            return cursor.rowcount

        return await database.aio_execute_sql(self.sql, params, fetch_results=count)

    async def each(self, *params, last_of=None) -> list[SimpleNamespace]:
        """For a text of several statements (`;`-separated, sent in one packet: models/piggyback.py): each one's
        `rows`, `rowcount` and `lastrowid`, in order. MySQL stops at the first that fails, and that error is raised.
        `last_of`: these are the last statements of that transaction (models.piggyback.Transaction), whose COMMIT
        then goes in the same packet."""
        commit = last_of is not None and last_of.takes_commit()

        async def every(db, cursor):
            found = []
            while True:
                found.append(SimpleNamespace(rows=await cursor.fetchall(), rowcount=cursor.rowcount,
                                             lastrowid=cursor.lastrowid))
                if not await cursor.nextset():
                    return found

        found = await database.aio_execute_sql(self.sql + (";COMMIT" if commit else ""), params, fetch_results=every)
        if commit:
            found.pop()  # COMMIT's
            last_of.committed()
        return found

    async def insert(self, *params) -> int:
        """Run an INSERT; the new row's id."""
        async def last_id(db, cursor):
            return cursor.lastrowid

        return await database.aio_execute_sql(self.sql, params, fetch_results=last_id)
