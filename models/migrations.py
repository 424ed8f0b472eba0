"""Numbered schema migrations; `migrate()` applies the missing ones and is safe to run again.

A landed migration is history and never changes: a database that ran it keeps what it did, so a later migration
changes what must change. Migration 1 is the first release's DDL, frozen (`initial_schema.py`), never built from
today's models. Databases made by releases whose migration 1 still followed the models of their day already have
some later columns and indexes, under either name: every step therefore checks before it adds, renames or drops.
The SQL is what MySQL 8 and MariaDB 10.6+ both accept (no ADD COLUMN IF NOT EXISTS; RENAME INDEX).
"""
from __future__ import annotations

import datetime as dt
import re

from . import personal_data
from .base import database
from .initial_schema import SCHEMA_MIGRATIONS_TABLE, initial_statements
from .tables import SchemaMigration


async def _count(sql, params) -> int:
    async def first_value(db, cursor):
        return (await cursor.fetchone())[0]

    return await database.aio_execute_sql(sql, params, fetch_results=first_value)


async def _column_exists(table, column) -> bool:
    return await _count("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = %s AND COLUMN_NAME = %s", (table, column)) > 0


async def _index_exists(table, index) -> bool:
    return await _count("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = %s AND INDEX_NAME = %s", (table, index)) > 0


async def _table_exists(table) -> bool:
    return await _count("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = %s", (table,)) > 0


async def add_column(table, column, ddl):
    """ALTER TABLE ... ADD COLUMN unless it is there (MySQL 8 has no ADD COLUMN IF NOT EXISTS)."""
    if not await _column_exists(table, column):
        await database.aio_execute_sql(f"ALTER TABLE `{table}` ADD COLUMN `{column}` {ddl}")


async def add_index(table, index, columns, unique=False):
    """CREATE INDEX unless it is there."""
    if not await _index_exists(table, index):
        cols = ", ".join(f"`{c}`" for c in columns)
        await database.aio_execute_sql(f"CREATE {'UNIQUE ' if unique else ''}INDEX `{index}` ON `{table}` ({cols})")


async def _v1_initial_tables():
    # Each statement only where its table or index is missing, as peewee's create_tables(safe=True) did (IF NOT EXISTS
    # alone would still warn about the table there).
    for statement, table, index in initial_statements():
        if not await (_index_exists(table, index) if index else _table_exists(table)):
            await database.aio_execute_sql(statement)


async def _v2_booking_notices():
    # As it was created at version 2 (the table is renamed and grows in version 4).
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `booking_notices` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, "
        "`order_id` INTEGER NOT NULL, `openid` VARCHAR(128) NOT NULL, `template_id` VARCHAR(128) NOT NULL, "
        "`payload` LONGTEXT NOT NULL, `status` VARCHAR(16) NOT NULL, `attempts` INTEGER NOT NULL, "
        "`next_attempt_at` DATETIME(6) NOT NULL, `lease_until` DATETIME(6), `last_error` TEXT, `sent_at` DATETIME(6), "
        "`created_at` DATETIME(6) NOT NULL, FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`))")
    await add_index("booking_notices", "booking_notices_order_id", ["order_id"], unique=True)
    await add_index("booking_notices", "booking_notices_status", ["status"])
    await add_index("booking_notices", "booking_notices_next_attempt_at", ["next_attempt_at"])


async def _v3_leases_backoff_inbox():
    await add_column("payment_orders", "next_check_at", "DATETIME(6) NULL")
    await add_column("payment_orders", "check_failures", "INT NOT NULL DEFAULT 0")
    await add_index("payment_orders", "payment_orders_status_next_check", ["status", "next_check_at"])
    await add_column("booking_notices", "lease_owner", "VARCHAR(64) NULL")
    for column, ddl in (("lease_owner", "VARCHAR(64) NULL"), ("lease_until", "DATETIME(6) NULL"),
                        ("next_check_at", "DATETIME(6) NULL"), ("check_failures", "INT NOT NULL DEFAULT 0")):
        await add_column("refunds", column, ddl)
    await add_column("notification_receipts", "kind", "VARCHAR(16) NOT NULL DEFAULT 'payment'")
    await add_column("notification_receipts", "http_status", "INT NOT NULL DEFAULT 204")
    await add_column("notification_receipts", "reason", "VARCHAR(255) NULL")
    await add_index("notification_receipts", "notification_receipts_last_seen", ["last_seen_at"])


async def _v4_refunds_and_subscribe_messages():
    for column, ddl in (("idem_key", "VARCHAR(128) NULL"), ("submitted_at", "DATETIME(6) NULL"),
                        ("last_error", "VARCHAR(255) NULL"), ("user_received_account", "VARCHAR(64) NULL")):
        await add_column("refunds", column, ddl)
    await add_index("refunds", "refund_order_id_idem_key", ["order_id", "idem_key"], unique=True)
    await add_index("refunds", "refund_status", ["status"])
    if await _table_exists("booking_notices") and not await _table_exists("subscribe_messages"):
        await database.aio_execute_sql("RENAME TABLE `booking_notices` TO `subscribe_messages`")
    await add_column("operators", "password_changed_at", "DATETIME(6) NULL")
    await add_column("subscribe_messages", "kind", "VARCHAR(16) NOT NULL DEFAULT 'booking'")
    await add_column("subscribe_messages", "refund_id", "INTEGER NULL")
    await add_column("subscribe_messages", "dedupe_key", "VARCHAR(64) NULL")
    await database.aio_execute_sql("UPDATE `subscribe_messages` SET `dedupe_key` = CONCAT('booking:', `order_id`) "
                                   "WHERE `dedupe_key` IS NULL")
    await database.aio_execute_sql("ALTER TABLE `subscribe_messages` MODIFY `dedupe_key` VARCHAR(64) NOT NULL")
    await add_index("subscribe_messages", "subscribemessage_dedupe_key", ["dedupe_key"], unique=True)
    await add_index("subscribe_messages", "subscribemessage_order_id", ["order_id"])  # the foreign key's index
    if await _index_exists("subscribe_messages", "booking_notices_order_id"):
        await database.aio_execute_sql("DROP INDEX `booking_notices_order_id` ON `subscribe_messages`")


async def _v5_request_ids():
    await add_column("payment_audit_log", "request_id", "VARCHAR(80) NULL")
    await add_index("payment_audit_log", "paymentauditlog_request_id", ["request_id"])


async def _v6_operator_logout():
    await add_column("operators", "sessions_ended_at", "DATETIME(6) NULL")


async def _v7_seat_counter_and_lazy_messages():
    if not await _column_exists("course_schedules", "confirmed_seats"):
        await add_column("course_schedules", "confirmed_seats", "INT NOT NULL DEFAULT 0")
        await database.aio_execute_sql(
            "UPDATE `course_schedules` s SET `confirmed_seats` = (SELECT COUNT(*) FROM `seat_reservations` r "
            "WHERE r.`course_schedule_id` = s.`id` AND r.`status` = 'confirmed')")
    await database.aio_execute_sql("ALTER TABLE `subscribe_messages` MODIFY `openid` VARCHAR(128) NULL, "
                                   "MODIFY `payload` LONGTEXT NULL")


async def _rename_index(table, old, new):
    if await _index_exists(table, old) and not await _index_exists(table, new):
        await database.aio_execute_sql(f"ALTER TABLE `{table}` RENAME INDEX `{old}` TO `{new}`")


async def _v8_wechatpay_notifications():
    if await _table_exists("notification_receipts") and not await _table_exists("wechatpay_notifications"):
        await database.aio_execute_sql("RENAME TABLE `notification_receipts` TO `wechatpay_notifications`")
    for old, new in (("notification_receipts_event_id", "wechatpay_notifications_event_id"),
                     ("notification_receipts_out_trade_no", "wechatpay_notifications_out_trade_no"),
                     ("notification_receipts_last_seen", "wechatpay_notifications_last_seen_at")):
        await _rename_index("wechatpay_notifications", old, new)


# (table, the name a landed migration gave the index, the name the models give it, its columns, unique).
_INDEX_NAMES = (
    ("refunds", "refund_order_id_idem_key", "refunds_order_id_idem_key", ("order_id", "idem_key"), True),
    ("refunds", "refund_status", "refunds_status", ("status",), False),
    ("subscribe_messages", "subscribemessage_dedupe_key", "subscribe_messages_dedupe_key", ("dedupe_key",), True),
    ("subscribe_messages", "subscribemessage_order_id", "subscribe_messages_order_id", ("order_id",), False),
    ("subscribe_messages", "booking_notices_status", "subscribe_messages_status", ("status",), False),
    ("subscribe_messages", "booking_notices_next_attempt_at", "subscribe_messages_next_attempt_at",
     ("next_attempt_at",), False),
    ("payment_audit_log", "paymentauditlog_request_id", "payment_audit_log_request_id", ("request_id",), False),
    ("payment_orders", "payment_orders_status_next_check", "payment_orders_status_next_check_at",
     ("status", "next_check_at"), False),
)
# NOT NULL columns that migrations added with a DEFAULT, to fill the rows already there. The models give every
# value themselves and a table built from them has no default; the default goes so that every database is alike.
_ADDED_WITH_DEFAULT = (
    ("payment_orders", "check_failures"), ("refunds", "check_failures"), ("wechatpay_notifications", "kind"),
    ("wechatpay_notifications", "http_status"), ("subscribe_messages", "kind"), ("course_schedules", "confirmed_seats"),
)


async def name_index(table, old, new, columns, unique=False):
    """Give an index the name `new`: renamed from `old`, or `old` dropped where both exist (a table built from later
    models got the new one and a migration added the old), or created where neither does."""
    has_old, has_new = await _index_exists(table, old), await _index_exists(table, new)
    if has_old and has_new:
        await database.aio_execute_sql(f"DROP INDEX `{old}` ON `{table}`")
    elif has_old:
        await database.aio_execute_sql(f"ALTER TABLE `{table}` RENAME INDEX `{old}` TO `{new}`")
    elif not has_new:
        await add_index(table, new, columns, unique)


async def _foreign_key_exists(table, column) -> bool:
    return await _count("SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = %s AND COLUMN_NAME = %s AND REFERENCED_TABLE_NAME IS NOT NULL",
                        (table, column)) > 0


async def _v9_schema_as_the_models_say():
    for table, old, new, columns, unique in _INDEX_NAMES:
        await name_index(table, old, new, columns, unique)
    # Migration 4 added the column without its foreign key; the index first, so the key does not make its own.
    await add_index("subscribe_messages", "subscribe_messages_refund_id", ["refund_id"])
    if not await _foreign_key_exists("subscribe_messages", "refund_id"):
        await database.aio_execute_sql("ALTER TABLE `subscribe_messages` "
                                       "ADD FOREIGN KEY (`refund_id`) REFERENCES `refunds` (`id`)")
    for table, column in _ADDED_WITH_DEFAULT:  # dropping a default that is not there is no error
        await database.aio_execute_sql(f"ALTER TABLE `{table}` ALTER COLUMN `{column}` DROP DEFAULT")


async def _v10_bills():
    # The WeChat Pay bill reconciliation (services/bills): its days, runs and discrepancies; refunds learn when they
    # succeeded (their bill day) and whether WeChat Pay made them after we held them refused or closed.
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `bill_days` (`bill_date` DATE NOT NULL PRIMARY KEY, `status` VARCHAR(16), "
        "`last_run_id` BIGINT, `compared_run_id` BIGINT, `attempts` INTEGER NOT NULL, `next_attempt_at` DATETIME(6), "
        "`lease_owner` VARCHAR(64), `lease_until` DATETIME(6), `updated_at` DATETIME(6) NOT NULL)")
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `bill_runs` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, "
        "`bill_date` DATE NOT NULL, `status` VARCHAR(16) NOT NULL, `started_at` DATETIME(6) NOT NULL, "
        "`reconciled_at` DATETIME(6) NOT NULL, `actor` VARCHAR(80) NOT NULL, `operator_id` INTEGER, "
        "`hash_value` VARCHAR(64), `error` VARCHAR(255), `wechat_payments` INTEGER NOT NULL, "
        "`wechat_payments_fen` BIGINT NOT NULL, `wechat_refunds` INTEGER NOT NULL, `wechat_refunds_fen` BIGINT NOT NULL, "
        "`wechat_fees_fen` BIGINT NOT NULL, `ledger_payments` INTEGER NOT NULL, `ledger_payments_fen` BIGINT NOT NULL, "
        "`ledger_refunds` INTEGER NOT NULL, `ledger_refunds_fen` BIGINT NOT NULL, `rows_matched` INTEGER NOT NULL, "
        "`request_id` VARCHAR(80), FOREIGN KEY (`operator_id`) REFERENCES `operators` (`id`))")
    await add_index("bill_runs", "bill_runs_operator_id", ["operator_id"])
    await add_index("bill_runs", "bill_runs_bill_date_id", ["bill_date", "id"])
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `bill_discrepancies` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, "
        "`bill_date` DATE NOT NULL, `kind` VARCHAR(8) NOT NULL, `ref` VARCHAR(64) NOT NULL, "
        "`category` VARCHAR(24) NOT NULL, `out_trade_no` VARCHAR(64), `out_refund_no` VARCHAR(64), "
        "`transaction_id` VARCHAR(64), `wechat_status` VARCHAR(32), `ledger_status` VARCHAR(32), "
        "`wechat_amount_fen` BIGINT, `ledger_amount_fen` BIGINT, `order_id` INTEGER, `resolution` VARCHAR(16), "
        "`resolved_by` INTEGER, `resolved_at` DATETIME(6), `note` VARCHAR(500), `first_run_id` BIGINT NOT NULL, "
        "`last_run_id` BIGINT NOT NULL, `created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL, "
        "FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`), "
        "FOREIGN KEY (`resolved_by`) REFERENCES `operators` (`id`))")
    await add_index("bill_discrepancies", "bill_discrepancies_order_id", ["order_id"])
    await add_index("bill_discrepancies", "bill_discrepancies_resolved_by", ["resolved_by"])
    await add_index("bill_discrepancies", "bill_discrepancies_bill_date_kind_ref", ["bill_date", "kind", "ref"],
                    unique=True)
    await add_index("bill_discrepancies", "bill_discrepancies_last_run_id", ["last_run_id"])
    await add_column("refunds", "succeeded_at", "DATETIME(6) NULL")
    await add_column("refunds", "success_after", "VARCHAR(16) NULL")
    await add_index("refunds", "refunds_status_succeeded_at", ["status", "succeeded_at"])
    await add_index("payment_orders", "payment_orders_paid_at", ["paid_at"])
    # The SUCCESS refunds already there: their success_time as WeChat Pay wrote it (RFC 3339), else the time the
    # row last changed (the settlement).
    async def rows(db, cursor):
        return await cursor.fetchall()

    settled = await database.aio_execute_sql("SELECT `id`, `success_time`, `updated_at` FROM `refunds` "
                                             "WHERE `status` = 'SUCCESS' AND `succeeded_at` IS NULL", (),
                                             fetch_results=rows)
    for refund_id, success_time, updated_at in settled:
        try:
            when = dt.datetime.fromisoformat(success_time.replace("Z", "+00:00"))
            when = when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else updated_at
        except (AttributeError, ValueError):
            when = updated_at
        await database.aio_execute_sql("UPDATE `refunds` SET `succeeded_at` = %s WHERE `id` = %s", (when, refund_id))


async def _v11_waitlist_attendance_and_endings():
    # The waitlist (issue 16): one live entry per parent and session by unique key; a freed seat kept for the
    # first in line is the `offered` row itself (MySQL, never memory).
    if not await _table_exists("waitlist_entries"):
        await database.aio_execute_sql(
            "CREATE TABLE `waitlist_entries` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, "
            "`course_schedule_id` INTEGER NOT NULL, `user_id` INTEGER NOT NULL, `status` VARCHAR(16) NOT NULL, "
            "`live_user` BIGINT, `offered_at` DATETIME(6), `offer_expires_at` DATETIME(6), `order_id` INTEGER, "
            "`created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL, `ended_at` DATETIME(6), "
            "FOREIGN KEY (`course_schedule_id`) REFERENCES `course_schedules` (`id`), "
            "FOREIGN KEY (`user_id`) REFERENCES `users` (`id`), "
            "FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`))")
    for index, columns, unique in (
            ("waitlist_entries_course_schedule_id", ["course_schedule_id"], False),
            ("waitlist_entries_user_id", ["user_id"], False),
            ("waitlist_entries_order_id", ["order_id"], False),
            ("waitlist_entries_course_schedule_id_live_user", ["course_schedule_id", "live_user"], True),
            ("waitlist_entries_course_schedule_id_status_id", ["course_schedule_id", "status", "id"], False),
            ("waitlist_entries_status_offer_expires_at", ["status", "offer_expires_at"], False)):
        await add_index("waitlist_entries", index, columns, unique)
    # Attendance at the front desk, once a session has started.
    await add_column("seat_reservations", "attendance", "VARCHAR(16) NULL")
    await add_column("seat_reservations", "attendance_at", "DATETIME(6) NULL")
    # Subscribe messages about a waitlist offer have no order; the others (failure, expiry, reschedule) do.
    await database.aio_execute_sql("ALTER TABLE `subscribe_messages` MODIFY `order_id` INTEGER NULL")
    await add_column("subscribe_messages", "waitlist_entry_id", "INTEGER NULL")
    await add_index("subscribe_messages", "subscribe_messages_waitlist_entry_id", ["waitlist_entry_id"])
    if not await _foreign_key_exists("subscribe_messages", "waitlist_entry_id"):
        await database.aio_execute_sql("ALTER TABLE `subscribe_messages` ADD FOREIGN KEY (`waitlist_entry_id`) "
                                       "REFERENCES `waitlist_entries` (`id`)")


async def _v12_operator_login_failures():
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `operator_login_failures` (`username` VARCHAR(64) NOT NULL PRIMARY KEY, "
        "`recent_failures` TEXT NOT NULL, `locked_until` DATETIME(6), `updated_at` DATETIME(6) NOT NULL)")
    await add_index("operator_login_failures", "operator_login_failures_updated_at", ["updated_at"])


class MigrationError(Exception):
    """A migration that cannot run as configured (the message says what is missing)."""


async def _rows(sql, params=()):
    async def all_rows(db, cursor):
        return await cursor.fetchall()

    return await database.aio_execute_sql(sql, params, fetch_results=all_rows)


_BATCH = 500
_TOKEN = re.compile(r"[A-Za-z0-9_-]{6,}")  # what an openid looks like inside a text


async def _clear_openids() -> set:
    """Every openid the database still holds in clear (users, payer openids, the subscribe-message queue)."""
    found = set()
    for table in ("users", "payment_transactions", "subscribe_messages"):
        if await _column_exists(table, "openid"):
            found.update(r[0] for r in await _rows(f"SELECT DISTINCT `openid` FROM `{table}` "
                                                   "WHERE `openid` IS NOT NULL AND `openid` <> ''"))
    return found


async def _scrub_audit_rows(clear: set):
    """Replace, in the audit rows' texts, any of those openids by its masked form (the releases before masked the
    snapshots' openid keys already, so this finds only what hid elsewhere)."""
    columns = ("action_detail", "request_data", "response_data", "error_message", "user_agent")
    last = 0
    while clear:
        rows = await _rows(f"SELECT `id`, {', '.join(f'`{c}`' for c in columns)} FROM `payment_audit_log` "
                           "WHERE `id` > %s ORDER BY `id` LIMIT 1000", (last,))
        if not rows:
            return
        last = rows[-1][0]
        for row_id, *texts in rows:
            changed = {}
            for column, text in zip(columns, texts):
                hits = {t for t in _TOKEN.findall(text or "") if t in clear}
                for openid in sorted(hits, key=len, reverse=True):
                    text = text.replace(openid, personal_data.mask_value(openid))
                if hits:
                    changed[column] = text
            if changed:
                await database.aio_execute_sql(
                    f"UPDATE `payment_audit_log` SET {', '.join(f'`{c}` = %s' for c in changed)} WHERE `id` = %s",
                    (*changed.values(), row_id))


def _keyring():
    if not personal_data.is_configured():
        raise MigrationError("DATA_KEY_FILE is not set: migration 14 encrypts the openids this database holds in "
                             "clear, under that key (the service's own DATA_KEY_FILE)")
    return personal_data.keyring()


async def _encrypt_users():
    for column, ddl in (("openid_hash", f"VARCHAR({personal_data.HASH_CHARS}) NULL"),
                        ("openid_encrypted", "VARCHAR(255) NULL"),
                        ("openid_masked", f"VARCHAR({personal_data.MASKED_MAX_CHARS}) NULL"),
                        ("unionid_encrypted", "VARCHAR(255) NULL")):
        await add_column("users", column, ddl)
    if await _column_exists("users", "openid"):
        while rows := await _rows("SELECT `id`, `openid`, `unionid` FROM `users` WHERE `openid_hash` IS NULL "
                                  "ORDER BY `id` LIMIT %s", (_BATCH,)):
            _keyring()
            async with database.aio_atomic():
                for user_id, openid, unionid in rows:
                    row = personal_data.user_columns(openid, unionid)
                    await database.aio_execute_sql(
                        "UPDATE `users` SET `openid_hash` = %s, `openid_encrypted` = %s, `openid_masked` = %s, "
                        "`unionid_encrypted` = %s WHERE `id` = %s", (*row.values(), user_id))
        if await _index_exists("users", "users_openid"):
            await database.aio_execute_sql("DROP INDEX `users_openid` ON `users`")
        await database.aio_execute_sql("ALTER TABLE `users` DROP COLUMN `openid`")
    if await _column_exists("users", "unionid"):
        await database.aio_execute_sql("ALTER TABLE `users` DROP COLUMN `unionid`")
    await database.aio_execute_sql(
        f"ALTER TABLE `users` MODIFY `openid_hash` VARCHAR({personal_data.HASH_CHARS}) NOT NULL, "
        f"MODIFY `openid_encrypted` VARCHAR(255) NOT NULL, "
        f"MODIFY `openid_masked` VARCHAR({personal_data.MASKED_MAX_CHARS}) NOT NULL")
    await add_index("users", "users_openid_hash", ["openid_hash"], unique=True)


async def _encrypt_payer_openids():
    await add_column("payment_transactions", "payer_openid_encrypted", "VARCHAR(255) NULL")
    if not await _column_exists("payment_transactions", "openid"):
        return
    last = 0
    while rows := await _rows("SELECT `id`, `openid` FROM `payment_transactions` WHERE `id` > %s "
                              "AND `openid` IS NOT NULL AND `openid` <> '' AND `payer_openid_encrypted` IS NULL "
                              "ORDER BY `id` LIMIT %s", (last, _BATCH)):
        ring = _keyring()
        last = rows[-1][0]
        async with database.aio_atomic():
            for row_id, openid in rows:
                await database.aio_execute_sql("UPDATE `payment_transactions` SET `payer_openid_encrypted` = %s "
                                               "WHERE `id` = %s", (ring.encrypt(openid), row_id))
    await database.aio_execute_sql("ALTER TABLE `payment_transactions` DROP COLUMN `openid`")


async def _v14_personal_data_encrypted():
    # The audit rows first, while the clear openids can still be read: a step killed half-way runs again from
    # where it stopped (rows converted are skipped, columns dropped stay dropped).
    clear = await _clear_openids()
    if clear:
        _keyring()  # before anything changes
    await _scrub_audit_rows(clear)
    await _encrypt_users()
    await _encrypt_payer_openids()
    if await _column_exists("subscribe_messages", "openid"):  # the order names the parent; nothing to keep
        await database.aio_execute_sql("ALTER TABLE `subscribe_messages` DROP COLUMN `openid`")


_GENESIS_SEAL = "0" * 64  # services/audit_trail/seal.py: GENESIS


async def _v13_audit_seal():
    # The rows already there stay unsealed: the sealer seals them from the first, in id order, at the next start.
    await add_column("payment_audit_log", "personal_digest", "VARCHAR(64) NULL")
    await add_column("payment_audit_log", "seal", "VARCHAR(64) NULL")
    await database.aio_execute_sql(
        "CREATE TABLE IF NOT EXISTS `audit_seal_head` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, "
        "`through_id` BIGINT NOT NULL, `seal` VARCHAR(64) NOT NULL, `sealed_count` BIGINT NOT NULL, "
        "`key_id` VARCHAR(16), `updated_at` DATETIME(6))")
    await database.aio_execute_sql(
        "INSERT IGNORE INTO `audit_seal_head` (`id`, `through_id`, `seal`, `sealed_count`) VALUES (1, 0, %s, 0)",
        (_GENESIS_SEAL,))


# Append new (version, name, coroutine function) entries; never edit an applied one.
MIGRATIONS = [
    (1, "initial tables", _v1_initial_tables),
    (2, "booking notices", _v2_booking_notices),
    (3, "lease tokens, reconciler back-off, notification inbox", _v3_leases_backoff_inbox),
    (4, "refunds from operators, subscribe messages for refunds", _v4_refunds_and_subscribe_messages),
    (5, "request ids in the audit log", _v5_request_ids),
    (6, "operators' logout ends their tokens", _v6_operator_logout),
    (7, "a confirmed-seat counter per session; subscribe messages composed when sent", _v7_seat_counter_and_lazy_messages),
    (8, "WeChat Pay notifications under one name", _v8_wechatpay_notifications),
    (9, "index names, keys and defaults as the models declare them", _v9_schema_as_the_models_say),
    (10, "WeChat Pay bill reconciliation; refunds' success day and late successes", _v10_bills),
    (11, "waitlist, attendance, subscribe messages without an order", _v11_waitlist_attendance_and_endings),
    (12, "operator login failures and lockout per username", _v12_operator_login_failures),
    (13, "the audit trail sealed", _v13_audit_seal),
    (14, "personal data encrypted at rest", _v14_personal_data_encrypted),
]


async def migrate(log=print) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied now."""
    if not await _table_exists("schema_migrations"):
        await database.aio_execute_sql(SCHEMA_MIGRATIONS_TABLE)
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
