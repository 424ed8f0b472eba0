"""Upgrades of a live database: every path ends with the schema a fresh database gets and today's models declare.

A database as the first landed release (f8cfebf) made it, with rows that release wrote, and one as the stop-11
release (347fbdb) made it, are upgraded by today's `python manage.py migrate` and compared with a fresh database
through information_schema; the fresh one is compared with tables built from today's models. The schemas of those
releases are frozen under tests/models/ (dumps of what their own `manage.py migrate` made), so the test needs no git
history, and it compares generically: a new migration needs no edit here, a model change without one fails it.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import peewee
import pytest

import settings as settings_module
from models import close_database, database, open_database, personal_data
from models.base import BaseModel
from tests.harness import ROOT, VAR, ServiceProcess, admin_sql, http_json, read_env_file
from tests.models import first_release_rows
from tests.models.personal_data_scan import places_holding
from tests.models.schema_snapshot import connect, differences, snapshot

HERE = os.path.dirname(os.path.abspath(__file__))
_numbers = itertools.count(1)


def _databases(server_env):
    """new() -> (url, parsed url) of an empty database on the project's server; drop_all() drops what new() made."""
    made = []

    def new():
        name = f"{settings_module.parse_database_url(server_env).name}_m{next(_numbers)}"
        url = server_env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
        parsed = settings_module.parse_database_url({"DATABASE_URL": url})
        admin_sql(parsed, [f"DROP DATABASE IF EXISTS `{name}`",
                           f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
        made.append(parsed)
        return url, parsed

    def drop_all():
        for parsed in made:
            admin_sql(parsed, [f"DROP DATABASE IF EXISTS `{parsed.name}`"])

    return new, drop_all


@pytest.fixture
def scratch_db(server_env):
    """new() -> (url, parsed url) of an empty database of this test's own, dropped after the test."""
    new, drop_all = _databases(server_env)
    yield new
    drop_all()


@pytest.fixture(scope="module")
def fresh(server_env):
    """(parsed url, snapshot) of a database made by today's `manage.py migrate` alone, shared by the module."""
    new, drop_all = _databases(server_env)
    url, parsed = new()
    _manage(url, "migrate")
    yield parsed, snapshot(parsed)
    drop_all()


def _dev_data_key_file():
    return read_env_file(os.path.join(VAR, "dev.env"))["DATA_KEY_FILE"]


def _run_manage(url, *args, data_key=True):
    """`python manage.py ...` against the database at url, as an operator runs it (with the dev data key, unless
    data_key is false); the finished process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATA_KEY")}
    env["DATABASE_URL"] = url
    if data_key:
        env["DATA_KEY_FILE"] = _dev_data_key_file()
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


def _manage(url, *args):
    """`python manage.py ...` as _run_manage runs it, which must succeed; its stdout."""
    run = _run_manage(url, *args)
    assert run.returncode == 0, f"manage.py {' '.join(args)} exited {run.returncode}:\n{run.stdout}{run.stderr}"
    return run.stdout


def _load(parsed, sql_file):
    """Run a frozen dump's statements (one per line-ending semicolon) in the database."""
    with open(os.path.join(HERE, sql_file), encoding="utf-8") as fh:
        text = "".join(line for line in fh if not line.startswith("--"))
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            for statement in text.split(";\n"):
                if statement.strip():
                    cur.execute(statement)
    finally:
        conn.close()


def _versions(parsed):
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version, name FROM schema_migrations ORDER BY version")
            return cur.fetchall()
    finally:
        conn.close()


def _assert_alike(left, right, left_name, right_name):
    found = differences(left, right, left_name, right_name)
    assert not found, f"{len(found)} difference(s):\n" + "\n".join(found)


def _assert_migrate_is_a_no_op(url, parsed):
    """A second `manage.py migrate` applies nothing and changes nothing."""
    before, versions = snapshot(parsed), _versions(parsed)
    assert _manage(url, "migrate").strip() == "schema is up to date"
    _assert_alike(before, snapshot(parsed), "before", "after a second migrate")
    assert _versions(parsed) == versions


def _todays_models():
    """Every model of the models package (whatever its modules and names are by now), in dependency order."""
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return peewee.sort_models({m for m in subclasses(BaseModel) if m.__module__.split(".")[0] == "models"})


def test_a_first_release_database_with_its_rows_upgrades_to_the_fresh_schema(scratch_db, fresh):
    url, parsed = scratch_db()
    _load(parsed, "schema_f8cfebf.sql")
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            written = first_release_rows.write(cur)
    finally:
        conn.close()

    out = _manage(url, "migrate")
    assert "applying migration 3:" in out and "applying migration 1:" not in out, out

    _assert_alike(snapshot(parsed), fresh[1], "upgraded", "fresh")
    assert _versions(parsed) == _versions(fresh[0])
    _assert_migrate_is_a_no_op(url, parsed)
    assert _manage(url, "check-invariants").strip() == "all invariants hold"
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT o.order_id, m.kind, m.dedupe_key = CONCAT('booking:', m.order_id), m.status "
                        "FROM subscribe_messages m JOIN payment_orders o ON o.id = m.order_id ORDER BY m.id")
            messages = cur.fetchall()
            cur.execute("SELECT order_id, status FROM payment_orders ORDER BY id")
            orders = cur.fetchall()
    finally:
        conn.close()
    # The booking notices became subscribe messages, keyed as today's code keys them, still to be sent or not.
    assert messages == ((written["orders"]["paid"]["order_id"], "booking", 1, "sent"),
                        (written["orders"]["paid_earlier"]["order_id"], "booking", 1, "pending"))
    assert orders == tuple((o["order_id"], o["status"]) for o in written["orders"].values())


def test_a_stop_11_release_database_upgrades_to_the_fresh_schema(scratch_db, fresh):
    # That release's migration 1 built its tables from the models of its day: later columns and indexes were there
    # already, some under a second name beside the one a migration added.
    url, parsed = scratch_db()
    _load(parsed, "schema_347fbdb.sql")
    _manage(url, "migrate")
    _assert_alike(snapshot(parsed), fresh[1], "upgraded", "fresh")
    assert _versions(parsed) == _versions(fresh[0])
    _assert_migrate_is_a_no_op(url, parsed)


def test_a_fresh_database_has_the_schema_todays_models_declare(io_loop, scratch_db, fresh):
    _, declared_db = scratch_db()

    async def create_tables():
        await open_database(declared_db, pool_max=2)
        try:
            await database.aio_create_tables(_todays_models())
        finally:
            await close_database()

    io_loop.run_sync(create_tables)
    _assert_alike(snapshot(declared_db), fresh[1], "the models", "migrated")


def test_a_first_release_database_comes_out_with_every_openid_encrypted(scratch_db, sandbox, server_env):
    url, parsed = scratch_db()
    _load(parsed, "schema_f8cfebf.sql")
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            written = first_release_rows.write(cur)
            # An openid hidden where no release put one (the snapshots' openid keys were always masked): found too.
            paid = written["orders"]["paid"]
            cur.execute("INSERT INTO payment_audit_log (order_id, user_id, actor, action_type, entity, error_message, "
                        "created_at) VALUES (%s, %s, 'system', 'close_failed', 'order', %s, NOW())",
                        (paid["id"], paid["user_id"], "touser o-parent-3 refused"))
    finally:
        conn.close()
    openids = [f"o-parent-{i}" for i in range(1, 6)]
    assert places_holding(parsed, openids)

    # Without the data key the migration stops before it encrypts anything, naming the key; nothing is lost.
    refused = _run_manage(url, "migrate", data_key=False)
    assert refused.returncode != 0 and "DATA_KEY_FILE is not set" in refused.stderr, refused.stderr
    assert "users.openid: o-parent-1 (1 rows)" in places_holding(parsed, openids)

    _manage(url, "migrate")
    assert places_holding(parsed, openids) == []
    with open(_dev_data_key_file(), "rb") as fh:
        ring = personal_data.Keyring(personal_data.parse_key(fh.read()))
    conn = connect(parsed, parsed.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT openid_hash, openid_encrypted, openid_masked FROM users ORDER BY id")
            users = cur.fetchall()
            cur.execute("SELECT payer_openid_encrypted FROM payment_transactions ORDER BY id")
            payers = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT error_message FROM payment_audit_log WHERE action_type = 'close_failed'")
            hidden = cur.fetchone()[0]
    finally:
        conn.close()
    assert [ring.decrypt(encrypted) for _, encrypted, _ in users] == openids
    assert {personal_data.key_id_of(encrypted) for _, encrypted, _ in users} == {ring.current.key_id}
    assert [(h, m) for h, _, m in users] == [(ring.hash(o), personal_data.mask_value(o)) for o in openids]
    assert [ring.decrypt(p) for p in payers] == ["o-parent-1", "o-parent-2"]
    assert hidden == "touser o-p***t-3 refused"

    # The parents log in as before: the same user, found by the keyed hash.
    service = ServiceProcess({**{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
                              "DATABASE_URL": url, "REDIS_URL": server_env["REDIS_URL"],
                              "SECRET_KEY": server_env["SECRET_KEY"], "DATA_KEY_FILE": _dev_data_key_file(),
                              "AUDIT_KEY_FILE": server_env["AUDIT_KEY_FILE"],
                              "AUDIT_CHECKPOINT_DIR": server_env["AUDIT_CHECKPOINT_DIR"],
                              "RUN_JOBS": "false"}, name="upgraded-login")
    try:
        minted = sandbox.control("POST", "/sandbox/wx/login", {"openid": "o-parent-3"})
        status, body, _ = http_json("POST", service.url + "/api/v1/auth/login", {"code": minted["code"]})
    finally:
        service.stop()
    assert status == 200 and body["user"] == {"id": 3, "openid_masked": "o-p***t-3"}, body
    assert places_holding(parsed, openids) == []
