"""Numbered schema migrations; `migrate()` applies the missing ones and is safe to run again."""
from __future__ import annotations

from .base import database
from .tables import ALL_TABLES, SchemaMigration


async def _create_initial_tables():
    await database.aio_create_tables(ALL_TABLES, safe=True)


async def _create_booking_notices():
    from .tables import BookingNotice

    await database.aio_create_tables([BookingNotice], safe=True)


# Append new (version, name, coroutine function) entries; never edit an applied one.
MIGRATIONS = [
    (1, "initial tables", _create_initial_tables),
    (2, "booking notices", _create_booking_notices),
]


async def migrate(log=print) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied now."""
    await database.aio_create_tables([SchemaMigration], safe=True)
    done = {m.version for m in await SchemaMigration.select().aio_execute()}
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        log(f"applying migration {version}: {name}")
        await step()
        await SchemaMigration.insert(version=version, name=name).on_conflict_ignore().aio_execute()
        applied.append(version)
    if not applied:
        log("schema is up to date")
    return applied
