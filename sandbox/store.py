"""The sandbox's state on disk: one SQLite file (WAL) in the state directory, one row per object."""
import contextlib
import json
import os
import sqlite3

FILE_NAME = "state.sqlite3"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class Store:
    """Objects of a few kinds (order, refund, notification, ...) as JSON rows, kept in creation order.

    Every change is its own transaction unless grouped with `atomic()`. WAL with synchronous=NORMAL: a commit
    survives the process being killed at any moment; only a power cut can lose the last commits, never the file.
    """

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        if not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # tokens and plaintexts: owner only
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path} has schema version {version}; this sandbox knows {SCHEMA_VERSION}")
        self.db.execute(SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._depth = 0

    @contextlib.contextmanager
    def atomic(self):
        """Group the changes made inside into one transaction (nestable; no await inside)."""
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    def put(self, kind, key, record):
        """Insert or replace one object (a JSON-able dict); an update keeps its place in the creation order."""
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self.db.execute("INSERT INTO objects (kind, key, data) VALUES (?, ?, ?) "
                        "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data", (kind, key, data))

    def delete(self, kind, key):
        """Forget one object."""
        self.db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))

    def load(self, kind):
        """Every object of `kind`, oldest first."""
        rows = self.db.execute("SELECT data FROM objects WHERE kind = ? ORDER BY rowid", (kind,))
        return [json.loads(data) for (data,) in rows]

    def clear(self):
        """Forget every object (the keys beside the file stay)."""
        self.db.execute("DELETE FROM objects")

    def close(self):
        """Checkpoint the WAL into the main file and close."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
