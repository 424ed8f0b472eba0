"""Numbered schema migrations; `migrate()` applies the missing ones and is safe to run again.

An applied migration never changes. Migration 1 creates a fixed list of tables from the current models (so a
fresh database already has later columns); every later step therefore checks before it adds.
"""
from __future__ import annotations

from .base import database
from .tables import (
    CourseSchedule, IdempotencyKey, JobLease, WechatPayNotification, Operator, PaymentAuditLog, PaymentOrder,
    PaymentTransaction, Refund, SchemaMigration, SeatReservation, User,
)


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


async def add_column(table, column, ddl):
    """ALTER TABLE ... ADD COLUMN unless it is there (MySQL 8 has no ADD COLUMN IF NOT EXISTS)."""
    if not await _column_exists(table, column):
        await database.aio_execute_sql(f"ALTER TABLE `{table}` ADD COLUMN `{column}` {ddl}")


async def add_index(table, index, columns, unique=False):
    """CREATE INDEX unless it is there."""
    if not await _index_exists(table, index):
        cols = ", ".join(f"`{c}`" for c in columns)
        await database.aio_execute_sql(f"CREATE {'UNIQUE ' if unique else ''}INDEX `{index}` ON `{table}` ({cols})")


class _NotificationReceipts(WechatPayNotification):
    """The notifications table under the name it had until version 8."""

    class Meta:
        table_name = "notification_receipts"
        indexes = ()


async def _v1_initial_tables():
    await database.aio_create_tables([
        User, Operator, CourseSchedule, PaymentOrder, PaymentTransaction, SeatReservation, Refund,
        PaymentAuditLog, IdempotencyKey, _NotificationReceipts, JobLease,
    ], safe=True)


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


async def _table_exists(table) -> bool:
    return await _count("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_NAME = %s", (table,)) > 0


async def _v4_refunds_and_subscribe_messages():
    for column, ddl in (("idem_key", "VARCHAR(128) NULL"), ("submitted_at", "DATETIME(6) NULL"),
                        ("last_error", "VARCHAR(255) NULL"), ("user_received_account", "VARCHAR(64) NULL")):
        await add_column("refunds", column, ddl)
    await add_index("refunds", "refunds_order_id_idem_key", ["order_id", "idem_key"], unique=True)
    await add_index("refunds", "refunds_status", ["status"])
    if await _table_exists("booking_notices") and not await _table_exists("subscribe_messages"):
        await database.aio_execute_sql("RENAME TABLE `booking_notices` TO `subscribe_messages`")
    await add_column("operators", "password_changed_at", "DATETIME(6) NULL")
    await add_column("subscribe_messages", "kind", "VARCHAR(16) NOT NULL DEFAULT 'booking'")
    await add_column("subscribe_messages", "refund_id", "INTEGER NULL")
    await add_column("subscribe_messages", "dedupe_key", "VARCHAR(64) NULL")
    await database.aio_execute_sql("UPDATE `subscribe_messages` SET `dedupe_key` = CONCAT('booking:', `order_id`) "
                                   "WHERE `dedupe_key` IS NULL")
    await database.aio_execute_sql("ALTER TABLE `subscribe_messages` MODIFY `dedupe_key` VARCHAR(64) NOT NULL")
    await add_index("subscribe_messages", "subscribe_messages_dedupe_key", ["dedupe_key"], unique=True)
    await add_index("subscribe_messages", "subscribe_messages_order_id", ["order_id"])  # the foreign key's index
    if await _index_exists("subscribe_messages", "booking_notices_order_id"):
        await database.aio_execute_sql("DROP INDEX `booking_notices_order_id` ON `subscribe_messages`")


async def _v5_request_ids():
    await add_column("payment_audit_log", "request_id", "VARCHAR(80) NULL")
    await add_index("payment_audit_log", "payment_audit_log_request_id", ["request_id"])


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
