"""Where a database holds a value in clear: every text column of every table, found through information_schema (so a
table or column added later is searched too)."""
from __future__ import annotations

from tests.models.schema_snapshot import connect

_TEXT_COLUMNS = ("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND DATA_TYPE "
                 "IN ('char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'json', 'enum', 'set') "
                 "ORDER BY TABLE_NAME, COLUMN_NAME")


def text_columns(db_url) -> list[tuple[str, str]]:
    """(table, column) of every text column of the database."""
    conn = connect(db_url, db_url.name)
    try:
        with conn.cursor() as cur:
            cur.execute(_TEXT_COLUMNS, (db_url.name,))
            return list(cur.fetchall())
    finally:
        conn.close()


def places_holding(db_url, values) -> list[str]:
    """'table.column: value (n rows)' for every text column holding one of the values anywhere in its text (the
    comparison follows the column's collation: case-insensitive for the project's utf8mb4_unicode_ci)."""
    found = []
    conn = connect(db_url, db_url.name)
    try:
        with conn.cursor() as cur:
            cur.execute(_TEXT_COLUMNS, (db_url.name,))
            for table, column in cur.fetchall():
                for value in values:
                    cur.execute(f"SELECT COUNT(*) FROM `{table}` WHERE LOCATE(%s, `{column}`) > 0", (value,))
                    count = cur.fetchone()[0]
                    if count:
                        found.append(f"{table}.{column}: {value} ({count} rows)")
    finally:
        conn.close()
    return found
