"""The database handle (peewee-async on aiomysql) and the field types shared by all tables."""
from __future__ import annotations

import datetime as dt

import peewee
import pymysql
from peewee_async import AioModel, MySQLDatabase
from pymysql.constants import CLIENT

# Deferred: bound to a real server by open_database(); every model uses this one handle.
database = MySQLDatabase(None)

# What a query raises when MySQL cannot be reached or the connection broke: a 503 to a client, a retry for a job.
DATABASE_UNAVAILABLE = (peewee.OperationalError, peewee.InterfaceError, pymysql.err.OperationalError,
                        pymysql.err.InterfaceError, ConnectionError, OSError)


def utcnow() -> dt.datetime:
    """Now, as a naive UTC datetime with microseconds (how every time is stored)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class UTCDateTimeField(peewee.DateTimeField):
    """DATETIME(6) holding naive UTC."""

    field_type = "DATETIME(6)"


class BaseModel(AioModel):
    """Base of every table."""

    class Meta:
        database = database
        legacy_table_names = False


def _piggyback_cursor():
    from .piggyback import PiggybackCursor  # it imports this module's `database`
    return PiggybackCursor


def configure_database(db_url, pool_max=20):
    """Point the shared handle at a server; the pool opens on first use (in the running loop)."""
    database.init(
        db_url.name,
        host=db_url.host,
        port=db_url.port,
        user=db_url.user,
        password=db_url.password,
        charset="utf8mb4",
        connect_timeout=5,
        pool_params={
            "minsize": 1,
            "maxsize": pool_max,
            "pool_recycle": 600,
            # Decisions are taken after a row lock; READ COMMITTED makes the reads after it see the latest commits.
            "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            # A transaction's BEGIN and COMMIT travel with its first and last statements (models/piggyback.py).
            "client_flag": CLIENT.MULTI_STATEMENTS,
            "cursorclass": _piggyback_cursor(),
        },
    )


async def open_database(db_url, pool_max=20):
    """Configure and open the connection pool."""
    configure_database(db_url, pool_max)
    await database.aio_connect()


async def close_database():
    """Close the pool (no-op when it is not open)."""
    if not database.deferred and database.is_connected:
        await database.aio_close()
