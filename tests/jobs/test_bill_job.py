"""The daily bill job: after BILL_RECONCILE_HOUR yesterday's bill is reconciled, retried while WeChat Pay says it is
still being made, and once it is compared no process tries it again — one run at a time across two processes. A day
the job tried whose bill was still not ready at midnight goes on being tried; a day only an operator tried does not;
days nobody tried (the service down over their bill hours) are caught up within a week, from the first order on.

Two `python server.py` on a database and a sandbox of their own (the session's have days other tests use), with
BILL_RECONCILE_HOUR=0 (always past) and BILL_RETRY_SECONDS=0.5.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pymysql
import pytest

import settings as settings_module
from services.formats import CN
from tests.harness import ROOT, ServiceProcess, admin_sql, private_sandbox, wait_until


@pytest.fixture
def own_database(server_env):
    """The URL of an empty database of this test's own, migrated, dropped after it."""
    base = settings_module.parse_database_url(server_env)
    name = f"{base.name}_billjob"
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`",
                     f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"])
    url = server_env["DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    subprocess.run([sys.executable, "manage.py", "migrate"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, **server_env, "DATABASE_URL": url})
    yield url
    admin_sql(base, [f"DROP DATABASE IF EXISTS `{name}`"])


@pytest.fixture
def own_sandbox():
    yield from private_sandbox("sandbox-billjob")


def _runs(url, day):
    """(status, started_at, reconciled_at) of the day's runs, oldest first."""
    parsed = settings_module.parse_database_url({"DATABASE_URL": url})
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password,
                           database=parsed.name, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, started_at, reconciled_at, actor FROM bill_runs WHERE bill_date = %s "
                        "ORDER BY id", (day,))
            return list(cur.fetchall())
    finally:
        conn.close()


def _sql(url, statements):
    """Run statements on the test's own database (autocommit)."""
    parsed = settings_module.parse_database_url({"DATABASE_URL": url})
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password,
                           database=parsed.name, autocommit=True)
    try:
        with conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
    finally:
        conn.close()


def _tried_earlier(url, day, actor):
    """The day as a run by `actor` days ago left it: not ready, due again now (what the job or an operator wrote)."""
    _sql(url, [("INSERT INTO bill_days (bill_date, status, attempts, next_attempt_at, updated_at) "
                "VALUES (%s, 'not_ready', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP())", (day,)),
               ("INSERT INTO bill_runs (bill_date, status, started_at, reconciled_at, actor, error, wechat_payments, "
                "wechat_payments_fen, wechat_refunds, wechat_refunds_fen, wechat_fees_fen, ledger_payments, "
                "ledger_payments_fen, ledger_refunds, ledger_refunds_fen, rows_matched) VALUES (%s, 'not_ready', "
                "UTC_TIMESTAMP(), UTC_TIMESTAMP(), %s, 'STATEMENT_CREATING: 账单生成中', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
                (day, actor))])
    _sql(url, [("UPDATE bill_days SET last_run_id = (SELECT MAX(id) FROM bill_runs WHERE bill_date = %s) "
                "WHERE bill_date = %s", (day, day))])


def _reconciler_passes(url):
    parsed = settings_module.parse_database_url({"DATABASE_URL": url})
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.user, password=parsed.password,
                           database=parsed.name, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT runs FROM job_leases WHERE name = 'reconcile'")
            row = cur.fetchone()
            return row[0] if row else 0
    finally:
        conn.close()


def test_yesterday_is_reconciled_once_after_it_is_ready(server_env, own_database, own_sandbox):
    yesterday = dt.datetime.now(CN).date() - dt.timedelta(days=1)
    own_sandbox.control("POST", f"/sandbox/bills/{yesterday}", {"ready": False})
    env = {**server_env, **{k: v for k, v in own_sandbox.env.items() if k.startswith("WECHAT")},
           "DATABASE_URL": own_database, "BILL_RECONCILE_HOUR": "0", "BILL_RETRY_SECONDS": "0.5",
           "RECONCILE_INTERVAL_SECONDS": "0.2"}
    a, b = ServiceProcess(env, name="billjob-a"), ServiceProcess(env, name="billjob-b")
    try:
        wait_until(lambda: len(_runs(own_database, yesterday)) >= 3, timeout=30,
                   what="the job to try the bill that is not ready again")
        statuses = [status for status, *_ in _runs(own_database, yesterday)]
        # Every run so far found the bill not ready; the newest may still be under way (the job keeps trying).
        assert set(statuses[:-1]) == {"not_ready"} and statuses[-1] in ("not_ready", "running"), statuses
        own_sandbox.control("POST", f"/sandbox/bills/{yesterday}", {"ready": True})
        wait_until(lambda: _runs(own_database, yesterday)[-1][0] == "no_trades", timeout=30,
                   what="the job to reconcile the bill once it is ready")
        settled = len(_runs(own_database, yesterday))
        passes = _reconciler_passes(own_database)
        # Both processes go on looping (the reconciler's passes show time going by): nobody tries the day again.
        wait_until(lambda: _reconciler_passes(own_database) >= passes + 10, timeout=30, what="ten reconciler passes")
        runs = _runs(own_database, yesterday)
        assert len(runs) == settled and [status for status, *_ in runs].count("no_trades") == 1
        assert all(actor == "system" for *_, actor in runs)
        for (_, _, ended, _), (_, started, _, _) in zip(runs, runs[1:]):
            assert ended <= started, "one run of the day at a time, whichever process"
    finally:
        a.stop()
        b.stop()


def test_a_day_the_job_tried_is_tried_again_after_it_stopped_being_yesterday(server_env, own_database, own_sandbox):
    today = dt.datetime.now(CN).date()
    jobs_day, operators_day = today - dt.timedelta(days=3), today - dt.timedelta(days=4)
    _tried_earlier(own_database, jobs_day, "system")  # not ready when it was yesterday; then midnight came
    _tried_earlier(own_database, operators_day, "operator:finance")
    env = {**server_env, **{k: v for k, v in own_sandbox.env.items() if k.startswith("WECHAT")},
           "DATABASE_URL": own_database, "BILL_RECONCILE_HOUR": "23", "BILL_RETRY_SECONDS": "0.5",
           "RECONCILE_INTERVAL_SECONDS": "0.2"}
    service = ServiceProcess(env, name="billjob-left-over")
    try:
        wait_until(lambda: _runs(own_database, jobs_day)[-1][0] == "no_trades", timeout=30,
                   what="the job to try the day again and find it ready")
        passes = _reconciler_passes(own_database)
        wait_until(lambda: _reconciler_passes(own_database) >= passes + 10, timeout=30, what="ten reconciler passes")
        assert [(status, actor) for status, _, _, actor in _runs(own_database, jobs_day)] == [
            ("not_ready", "system"), ("no_trades", "system")], "tried again once, then left alone"
        assert len(_runs(own_database, operators_day)) == 1, "a day only an operator tried is theirs to try again"
    finally:
        service.stop()


def _first_order_on(url, day):
    """An order (expired, as most old unpaid ones are) created at noon, Beijing time, on `day`: the service's first."""
    created = dt.datetime.combine(day, dt.time(12), CN).astimezone(dt.timezone.utc).replace(tzinfo=None)
    _sql(url, [("INSERT INTO users (openid_hash, openid_encrypted, openid_masked, created_at, last_login_at) "
                "VALUES (%s, 'v1.00000000.x', 'o***x', %s, %s)", (f"{day}".ljust(64, "0"), created, created)),
               ("INSERT INTO course_schedules (title, starts_at, capacity, confirmed_seats, created_at, updated_at) "
                "VALUES ('体验课', %s, 5, 0, %s, %s)", (created + dt.timedelta(days=3), created, created)),
               ("INSERT INTO payment_orders (order_id, user_id, course_schedule_id, amount, amount_fen, currency, "
                "status, payment_method, description, refunded_fen, check_failures, created_at, updated_at, "
                "expires_at) SELECT %s, MAX(u.id), MAX(s.id), 200, 20000, 'CNY', 'expired', 'wechat_pay', '体验课', 0, "
                "0, %s, %s, %s FROM users u, course_schedules s",
                (os.urandom(16).hex(), created, created, created + dt.timedelta(minutes=30)))])


@pytest.mark.parametrize("first_order, caught_up, left", [
    (10, (8, 7, 6, 5, 3, 2), (11, 10, 9)),  # the week before yesterday (the 4th: an operator's), not before
    (3, (3, 2), (8, 7, 6, 5)),  # from the first order's day on
])
def test_days_never_tried_are_caught_up_within_a_week_from_the_first_order(server_env, own_database, own_sandbox,
                                                                          first_order, caught_up, left):
    """The service was down over the bill hours of several days: those days have no bill day at all. From the day
    of the first order on, within the 7 days before yesterday, the job reconciles them; earlier days are left."""
    today = dt.datetime.now(CN).date()
    days_ago = {n: today - dt.timedelta(days=n) for n in range(1, 12)}
    _first_order_on(own_database, days_ago[first_order])
    _tried_earlier(own_database, days_ago[4], "operator:finance")  # a day an operator tried stays theirs
    env = {**server_env, **{k: v for k, v in own_sandbox.env.items() if k.startswith("WECHAT")},
           "DATABASE_URL": own_database, "BILL_RECONCILE_HOUR": "23", "BILL_RETRY_SECONDS": "0.5",
           "RECONCILE_INTERVAL_SECONDS": "0.2"}
    service = ServiceProcess(env, name="billjob-catch-up")
    caught_up = [days_ago[n] for n in caught_up]
    try:
        wait_until(lambda: all(_runs(own_database, day) and _runs(own_database, day)[-1][0] == "no_trades"
                               for day in caught_up), timeout=60, what="the job to reconcile the days it never tried")
        passes = _reconciler_passes(own_database)
        wait_until(lambda: _reconciler_passes(own_database) >= passes + 10, timeout=30, what="ten reconciler passes")
        for day in caught_up:
            assert [(status, actor) for status, _, _, actor in _runs(own_database, day)] == [("no_trades", "system")]
        for n in left:
            assert _runs(own_database, days_ago[n]) == [], f"{n} days ago: not the job's to catch up"
        assert len(_runs(own_database, days_ago[4])) == 1, "a day only an operator tried is theirs to try again"
    finally:
        service.stop()
