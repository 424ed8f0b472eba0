"""The schema the first landed release (f8cfebf) created: migration 1's statements, frozen as the text it ran.

That release's migration 1 built its tables from the models of its day (peewee's `create_tables`); the statements
below are what peewee sent then, word for word. They must never follow today's models, or a database created now
would skip what later migrations add. That migration 1 also created `booking_notices`, in the very words migration 2
uses (which found the table there and did nothing); it is left to migration 2, which has made it ever since.
"""
from __future__ import annotations

import re

# `migrate()` keeps its record here; the table has not changed since the first release.
SCHEMA_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS `schema_migrations` (`version` INTEGER NOT NULL PRIMARY KEY, "
    "`name` VARCHAR(128) NOT NULL, `applied_at` DATETIME(6) NOT NULL)")

INITIAL_SCHEMA = """
CREATE TABLE IF NOT EXISTS `users` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, `openid` VARCHAR(128) NOT NULL,
  `unionid` VARCHAR(128), `created_at` DATETIME(6) NOT NULL, `last_login_at` DATETIME(6) NOT NULL);
CREATE UNIQUE INDEX `users_openid` ON `users` (`openid`);
CREATE TABLE IF NOT EXISTS `operators` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `username` VARCHAR(64) NOT NULL, `password_hash` VARCHAR(255) NOT NULL, `role` VARCHAR(16) NOT NULL,
  `active` BOOL NOT NULL, `created_at` DATETIME(6) NOT NULL, `last_login_at` DATETIME(6));
CREATE UNIQUE INDEX `operators_username` ON `operators` (`username`);
CREATE TABLE IF NOT EXISTS `course_schedules` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `title` VARCHAR(127) NOT NULL, `starts_at` DATETIME(6) NOT NULL, `capacity` INTEGER NOT NULL, `created_by` INTEGER,
  `created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL,
  FOREIGN KEY (`created_by`) REFERENCES `operators` (`id`) ON DELETE SET NULL);
CREATE INDEX `course_schedules_starts_at` ON `course_schedules` (`starts_at`);
CREATE INDEX `course_schedules_created_by` ON `course_schedules` (`created_by`);
CREATE TABLE IF NOT EXISTS `payment_orders` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `order_id` VARCHAR(32) NOT NULL, `user_id` INTEGER NOT NULL, `course_schedule_id` INTEGER NOT NULL,
  `amount` NUMERIC(10, 2) NOT NULL, `amount_fen` INTEGER NOT NULL, `currency` VARCHAR(3) NOT NULL,
  `status` VARCHAR(16) NOT NULL, `payment_method` VARCHAR(32) NOT NULL, `description` VARCHAR(127) NOT NULL,
  `trial_slot` BIGINT, `trade_type` VARCHAR(16), `prepay_id` VARCHAR(64), `code_url` VARCHAR(255),
  `payment_started_at` DATETIME(6), `transaction_id` VARCHAR(64), `paid_at` DATETIME(6),
  `refunded_fen` INTEGER NOT NULL, `failure_reason` VARCHAR(64), `lease_owner` VARCHAR(64), `lease_until` DATETIME(6),
  `last_checked_at` DATETIME(6), `created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL,
  `expires_at` DATETIME(6) NOT NULL, FOREIGN KEY (`user_id`) REFERENCES `users` (`id`),
  FOREIGN KEY (`course_schedule_id`) REFERENCES `course_schedules` (`id`));
CREATE UNIQUE INDEX `payment_orders_order_id` ON `payment_orders` (`order_id`);
CREATE INDEX `payment_orders_user_id` ON `payment_orders` (`user_id`);
CREATE INDEX `payment_orders_course_schedule_id` ON `payment_orders` (`course_schedule_id`);
CREATE INDEX `payment_orders_status` ON `payment_orders` (`status`);
CREATE UNIQUE INDEX `payment_orders_trial_slot` ON `payment_orders` (`trial_slot`);
CREATE INDEX `payment_orders_created_at` ON `payment_orders` (`created_at`);
CREATE INDEX `payment_orders_expires_at` ON `payment_orders` (`expires_at`);
CREATE TABLE IF NOT EXISTS `payment_transactions` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `transaction_id` VARCHAR(64) NOT NULL, `order_id` INTEGER NOT NULL, `out_trade_no` VARCHAR(64) NOT NULL,
  `trade_type` VARCHAR(32) NOT NULL, `trade_state` VARCHAR(32) NOT NULL, `bank_type` VARCHAR(32),
  `total_fee` INTEGER NOT NULL, `payer_total` INTEGER, `fee_type` VARCHAR(8) NOT NULL, `openid` VARCHAR(128),
  `success_time` VARCHAR(40), `source` VARCHAR(16) NOT NULL, `created_at` DATETIME(6) NOT NULL,
  `updated_at` DATETIME(6) NOT NULL, FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`));
CREATE UNIQUE INDEX `payment_transactions_transaction_id` ON `payment_transactions` (`transaction_id`);
CREATE INDEX `payment_transactions_order_id` ON `payment_transactions` (`order_id`);
CREATE INDEX `payment_transactions_out_trade_no` ON `payment_transactions` (`out_trade_no`);
CREATE INDEX `payment_transactions_trade_state` ON `payment_transactions` (`trade_state`);
CREATE TABLE IF NOT EXISTS `seat_reservations` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `reservation_id` VARCHAR(32) NOT NULL, `order_id` INTEGER NOT NULL, `course_schedule_id` INTEGER NOT NULL,
  `user_id` INTEGER NOT NULL, `seat_count` INTEGER NOT NULL, `status` VARCHAR(16) NOT NULL,
  `payment_started` BOOL NOT NULL, `expires_at` DATETIME(6) NOT NULL, `confirmed_at` DATETIME(6),
  `released_at` DATETIME(6), `created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL,
  FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`),
  FOREIGN KEY (`course_schedule_id`) REFERENCES `course_schedules` (`id`),
  FOREIGN KEY (`user_id`) REFERENCES `users` (`id`));
CREATE UNIQUE INDEX `seat_reservations_reservation_id` ON `seat_reservations` (`reservation_id`);
CREATE UNIQUE INDEX `seat_reservations_order_id` ON `seat_reservations` (`order_id`);
CREATE INDEX `seat_reservations_course_schedule_id` ON `seat_reservations` (`course_schedule_id`);
CREATE INDEX `seat_reservations_user_id` ON `seat_reservations` (`user_id`);
CREATE INDEX `seat_reservations_expires_at` ON `seat_reservations` (`expires_at`);
CREATE INDEX `seat_reservations_course_schedule_id_status_expires_at` ON `seat_reservations`
  (`course_schedule_id`, `status`, `expires_at`);
CREATE TABLE IF NOT EXISTS `refunds` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `out_refund_no` VARCHAR(64) NOT NULL, `order_id` INTEGER NOT NULL, `refund_id` VARCHAR(64),
  `amount_fen` INTEGER NOT NULL, `status` VARCHAR(16) NOT NULL, `reason` VARCHAR(80), `operator_id` INTEGER,
  `success_time` VARCHAR(40), `created_at` DATETIME(6) NOT NULL, `updated_at` DATETIME(6) NOT NULL,
  FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`),
  FOREIGN KEY (`operator_id`) REFERENCES `operators` (`id`));
CREATE UNIQUE INDEX `refunds_out_refund_no` ON `refunds` (`out_refund_no`);
CREATE INDEX `refunds_order_id` ON `refunds` (`order_id`);
CREATE INDEX `refunds_operator_id` ON `refunds` (`operator_id`);
CREATE TABLE IF NOT EXISTS `payment_audit_log` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY, `order_id` INTEGER,
  `transaction_id` INTEGER, `refund_id` INTEGER, `user_id` INTEGER, `operator_id` INTEGER,
  `actor` VARCHAR(16) NOT NULL, `action_type` VARCHAR(64) NOT NULL, `action_detail` TEXT,
  `entity` VARCHAR(16) NOT NULL, `old_status` VARCHAR(32), `new_status` VARCHAR(32), `ip_address` VARCHAR(45),
  `user_agent` TEXT, `request_data` LONGTEXT, `response_data` LONGTEXT, `error_message` TEXT,
  `created_at` DATETIME(6) NOT NULL, FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`),
  FOREIGN KEY (`transaction_id`) REFERENCES `payment_transactions` (`id`),
  FOREIGN KEY (`refund_id`) REFERENCES `refunds` (`id`), FOREIGN KEY (`user_id`) REFERENCES `users` (`id`),
  FOREIGN KEY (`operator_id`) REFERENCES `operators` (`id`));
CREATE INDEX `payment_audit_log_order_id` ON `payment_audit_log` (`order_id`);
CREATE INDEX `payment_audit_log_transaction_id` ON `payment_audit_log` (`transaction_id`);
CREATE INDEX `payment_audit_log_refund_id` ON `payment_audit_log` (`refund_id`);
CREATE INDEX `payment_audit_log_user_id` ON `payment_audit_log` (`user_id`);
CREATE INDEX `payment_audit_log_operator_id` ON `payment_audit_log` (`operator_id`);
CREATE INDEX `payment_audit_log_action_type` ON `payment_audit_log` (`action_type`);
CREATE INDEX `payment_audit_log_created_at` ON `payment_audit_log` (`created_at`);
CREATE TABLE IF NOT EXISTS `idempotency_keys` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `user_id` INTEGER NOT NULL, `idem_key` VARCHAR(128) NOT NULL, `request_hash` VARCHAR(64) NOT NULL,
  `order_id` INTEGER NOT NULL, `status_code` INTEGER NOT NULL, `created_at` DATETIME(6) NOT NULL,
  FOREIGN KEY (`user_id`) REFERENCES `users` (`id`), FOREIGN KEY (`order_id`) REFERENCES `payment_orders` (`id`));
CREATE INDEX `idempotency_keys_user_id` ON `idempotency_keys` (`user_id`);
CREATE INDEX `idempotency_keys_order_id` ON `idempotency_keys` (`order_id`);
CREATE UNIQUE INDEX `idempotency_keys_user_id_idem_key` ON `idempotency_keys` (`user_id`, `idem_key`);
CREATE TABLE IF NOT EXISTS `notification_receipts` (`id` INTEGER AUTO_INCREMENT NOT NULL PRIMARY KEY,
  `event_id` VARCHAR(64) NOT NULL, `event_type` VARCHAR(32) NOT NULL, `out_trade_no` VARCHAR(64),
  `outcome` VARCHAR(32) NOT NULL, `deliveries` INTEGER NOT NULL, `first_seen_at` DATETIME(6) NOT NULL,
  `last_seen_at` DATETIME(6) NOT NULL);
CREATE UNIQUE INDEX `notification_receipts_event_id` ON `notification_receipts` (`event_id`);
CREATE INDEX `notification_receipts_out_trade_no` ON `notification_receipts` (`out_trade_no`);
CREATE TABLE IF NOT EXISTS `job_leases` (`name` VARCHAR(64) NOT NULL PRIMARY KEY, `owner` VARCHAR(64),
  `lease_until` DATETIME(6), `runs` BIGINT NOT NULL);
"""

_INDEX = re.compile(r"CREATE (?:UNIQUE )?INDEX `(\w+)` ON `(\w+)`")
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS `(\w+)`")


def initial_statements() -> list[tuple[str, str, str | None]]:
    """(statement, table, index name or None for the CREATE TABLE) for each statement of INITIAL_SCHEMA."""
    found = []
    for statement in INITIAL_SCHEMA.split(";"):
        statement = " ".join(statement.split())
        if statement:
            index = _INDEX.match(statement)
            found.append((statement, index[2], index[1]) if index else (statement, _TABLE.match(statement)[1], None))
    return found
