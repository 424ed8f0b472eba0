"""A database's schema read from information_schema, in a form two databases can be compared by.

Tables, columns (type, nullability, default, extra, character set, collation), indexes (name, uniqueness, columns in
order) and foreign keys (columns, referenced table and columns, rules). Column order and the names MariaDB makes up
for foreign-key constraints are left out: no code depends on them, and a column added by ALTER TABLE lands last.
"""
from __future__ import annotations

from collections import Counter

import pymysql

_TABLES = ("SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
           "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'")
_COLUMNS = ("SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, CHARACTER_SET_NAME, "
            "COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s")
_INDEXES = ("SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX")
_FOREIGN_KEYS = (
    "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, "
    "r.UPDATE_RULE, r.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k "
    "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
    "AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
    "WHERE k.TABLE_SCHEMA = %s AND k.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY k.ORDINAL_POSITION")


def connect(db_url, database=None):
    """A plain PyMySQL connection to the project's server (to one database, or none)."""
    return pymysql.connect(host=db_url.host, port=db_url.port, user=db_url.user, password=db_url.password,
                           database=database, charset="utf8mb4", autocommit=True)


def snapshot(db_url) -> dict:
    """{'tables': {...}, 'columns': {...}, 'indexes': {...}, 'foreign keys': Counter} of the database `db_url` names."""
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            def rows(sql):
                cur.execute(sql, (db_url.name,))
                return cur.fetchall()

            tables = {name: (engine, collation) for name, engine, collation in rows(_TABLES)}
            columns = {(t, c): rest for t, c, *rest in rows(_COLUMNS)}
            indexes = {}
            for table, index, non_unique, column, sub_part in rows(_INDEXES):
                unique, cols = indexes.get((table, index), (not non_unique, ()))
                indexes[(table, index)] = (unique, cols + ((column, sub_part),))
            keys = {}
            for table, name, column, ref_table, ref_column, on_update, on_delete in rows(_FOREIGN_KEYS):
                cols, ref_cols, _ = keys.get((table, name), ((), (), None))
                keys[(table, name)] = (cols + (column,), ref_cols + (ref_column,), (ref_table, on_update, on_delete))
            foreign_keys = Counter((table, cols, ref, ref_cols) for (table, _), (cols, ref_cols, ref) in keys.items())
    finally:
        conn.close()
    return {"tables": tables, "columns": columns, "indexes": indexes, "foreign keys": foreign_keys}


def differences(left: dict, right: dict, left_name="left", right_name="right") -> list[str]:
    """One line per table, column, index or foreign key that the two snapshots do not have alike."""
    lines = []
    for part in left:
        a, b = left[part], right[part]
        for key in sorted(set(a) | set(b), key=repr):
            if isinstance(a, Counter):
                if a[key] != b[key]:
                    lines.append(f"{part} {key}: {a[key]} in {left_name}, {b[key]} in {right_name}")
            elif a.get(key) != b.get(key):
                lines.append(f"{part} {key}: {left_name} {a.get(key, 'missing')!r}, "
                             f"{right_name} {b.get(key, 'missing')!r}")
    return lines
