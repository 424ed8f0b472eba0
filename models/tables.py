"""The tables: the seed's four payment tables under the contract's names, plus users, schedules, operators,
refunds, idempotency keys, notification receipts and job leases."""
from __future__ import annotations

import peewee as pw

from .base import BaseModel, UTCDateTimeField, utcnow
from .personal_data import HASH_CHARS, MASKED_MAX_CHARS


class JSONText(pw.TextField):
    """JSON kept as LONGTEXT (MariaDB's JSON is an alias of it)."""

    field_type = "LONGTEXT"


class User(BaseModel):
    """A parent, known by the mini-program openid, which is stored only encrypted (models/personal_data.py): found by
    its keyed hash, shown by its masked form."""

    openid_hash = pw.CharField(max_length=HASH_CHARS, unique=True)
    openid_encrypted = pw.CharField(max_length=255)
    openid_masked = pw.CharField(max_length=MASKED_MAX_CHARS)
    unionid_encrypted = pw.CharField(max_length=255, null=True)
    created_at = UTCDateTimeField(default=utcnow)
    last_login_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "users"


class Operator(BaseModel):
    """Gym staff who use the admin routes."""

    username = pw.CharField(max_length=64, unique=True)
    password_hash = pw.CharField(max_length=255)
    role = pw.CharField(max_length=16)  # admin | finance | staff
    active = pw.BooleanField(default=True)
    password_changed_at = UTCDateTimeField(null=True)  # tokens issued before it stop working
    sessions_ended_at = UTCDateTimeField(null=True)  # logged out: tokens issued before it stop working too
    created_at = UTCDateTimeField(default=utcnow)
    last_login_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "operators"


class OperatorLoginFailures(BaseModel):
    """The failed logins of one operator username (any name tried, an operator's or not) within the last 15
    minutes, and the lock they made (contract §2 Operators; services/accounts/lockout.py)."""

    username = pw.CharField(max_length=64, primary_key=True)  # compared as operators.username is (its collation)
    recent_failures = pw.TextField()  # comma-separated Unix times in milliseconds, oldest first
    locked_until = UTCDateTimeField(null=True)
    updated_at = UTCDateTimeField(index=True)  # rows quiet for long are deleted

    class Meta:
        table_name = "operator_login_failures"


class CourseSchedule(BaseModel):
    """One trial schedule with a number of seats."""

    title = pw.CharField(max_length=127)
    starts_at = UTCDateTimeField(index=True)
    capacity = pw.IntegerField()
    # Reservations `confirmed` now, kept in step by every change to or from confirmed (in the same transaction):
    # a payment claims its seat with one conditional UPDATE instead of counting.
    confirmed_seats = pw.IntegerField(default=0)
    created_by = pw.ForeignKeyField(Operator, null=True, column_name="created_by", on_delete="SET NULL")
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "course_schedules"


class PaymentOrder(BaseModel):
    """An order for one trial seat; `order_id` is WeChat Pay's out_trade_no."""

    order_id = pw.CharField(max_length=32, unique=True)
    user = pw.ForeignKeyField(User, column_name="user_id", index=True)
    course_schedule = pw.ForeignKeyField(CourseSchedule, column_name="course_schedule_id", index=True)
    amount = pw.DecimalField(max_digits=10, decimal_places=2)  # yuan, as the seed has it
    amount_fen = pw.IntegerField()  # what the code computes with
    currency = pw.CharField(max_length=3, default="CNY")
    status = pw.CharField(max_length=16, index=True, default="pending")
    payment_method = pw.CharField(max_length=32, default="wechat_pay")
    description = pw.CharField(max_length=127)
    # Set to user_id while the order is pending or paid, NULL otherwise: one live trial per user, by unique key.
    trial_slot = pw.BigIntegerField(null=True, unique=True)
    trade_type = pw.CharField(max_length=16, null=True)  # JSAPI | NATIVE once payment starts
    prepay_id = pw.CharField(max_length=64, null=True)
    code_url = pw.CharField(max_length=255, null=True)
    payment_started_at = UTCDateTimeField(null=True)
    transaction_id = pw.CharField(max_length=64, null=True)
    paid_at = UTCDateTimeField(null=True)
    refunded_fen = pw.IntegerField(default=0)
    failure_reason = pw.CharField(max_length=64, null=True)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_until = UTCDateTimeField(null=True)
    last_checked_at = UTCDateTimeField(null=True)
    next_check_at = UTCDateTimeField(null=True)  # the reconciler's next look (backs off while WeChat Pay fails)
    check_failures = pw.IntegerField(default=0)
    created_at = UTCDateTimeField(default=utcnow, index=True)
    updated_at = UTCDateTimeField(default=utcnow)
    expires_at = UTCDateTimeField(index=True)

    class Meta:
        table_name = "payment_orders"
        indexes = ((("status", "next_check_at"), False),  # the reconciler's due orders
                   (("paid_at",), False))  # a day's payments (the bill reconciliation, the day report)


class PaymentTransaction(BaseModel):
    """A WeChat Pay transaction as reported by a notification or a query."""

    transaction_id = pw.CharField(max_length=64, unique=True)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", index=True)
    out_trade_no = pw.CharField(max_length=64, index=True)
    trade_type = pw.CharField(max_length=32)
    trade_state = pw.CharField(max_length=32, index=True)
    bank_type = pw.CharField(max_length=32, null=True)
    total_fee = pw.IntegerField()
    payer_total = pw.IntegerField(null=True)
    fee_type = pw.CharField(max_length=8, default="CNY")
    payer_openid_encrypted = pw.CharField(max_length=255, null=True)  # models/personal_data.py
    success_time = pw.CharField(max_length=40, null=True)
    source = pw.CharField(max_length=16)  # notify | query | close
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "payment_transactions"


class SeatReservation(BaseModel):
    """The seat an order holds, then occupies."""

    reservation_id = pw.CharField(max_length=32, unique=True)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", unique=True)
    course_schedule = pw.ForeignKeyField(CourseSchedule, column_name="course_schedule_id")
    user = pw.ForeignKeyField(User, column_name="user_id", index=True)
    seat_count = pw.IntegerField(default=1)
    status = pw.CharField(max_length=16, default="temporary")
    # Once a WeChat Pay order exists the hold no longer lapses by time: only a confirmed close releases it.
    payment_started = pw.BooleanField(default=False)
    expires_at = UTCDateTimeField(index=True)
    confirmed_at = UTCDateTimeField(null=True)
    released_at = UTCDateTimeField(null=True)
    # The front desk's record, once the session has started: attended | no_show (NULL: not marked).
    attendance = pw.CharField(max_length=16, null=True)
    attendance_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "seat_reservations"
        indexes = ((("course_schedule", "status", "expires_at"), False),)


class WaitlistEntry(BaseModel):
    """A parent waiting for a seat of a full session; `offered` keeps a freed seat for them until offer_expires_at."""

    course_schedule = pw.ForeignKeyField(CourseSchedule, column_name="course_schedule_id")
    user = pw.ForeignKeyField(User, column_name="user_id", index=True)
    status = pw.CharField(max_length=16, default="waiting")  # waiting | offered | booked | lapsed | left
    # user_id while waiting or offered, NULL otherwise: one live entry per parent and session, by unique key.
    live_user = pw.BigIntegerField(null=True)
    offered_at = UTCDateTimeField(null=True)
    offer_expires_at = UTCDateTimeField(null=True)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", null=True)  # the order that took the kept seat
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    ended_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "waitlist_entries"
        indexes = ((("course_schedule", "live_user"), True), (("course_schedule", "status", "id"), False),
                   (("status", "offer_expires_at"), False))


class Refund(BaseModel):
    """A refund an operator asked WeChat Pay for; `out_refund_no` is ours, `refund_id` WeChat Pay's."""

    out_refund_no = pw.CharField(max_length=64, unique=True)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", index=True)
    refund_id = pw.CharField(max_length=64, null=True)
    amount_fen = pw.IntegerField()
    status = pw.CharField(max_length=16, default="PROCESSING", index=True)  # PROCESSING|SUCCESS|CLOSED|ABNORMAL|REJECTED
    reason = pw.CharField(max_length=80, null=True)
    operator = pw.ForeignKeyField(Operator, column_name="operator_id", null=True)
    idem_key = pw.CharField(max_length=128, null=True)  # the operator's Idempotency-Key (unique per order)
    submitted_at = UTCDateTimeField(null=True)  # when WeChat Pay acknowledged the request
    last_error = pw.CharField(max_length=255, null=True)
    user_received_account = pw.CharField(max_length=64, null=True)
    success_time = pw.CharField(max_length=40, null=True)
    # When it became SUCCESS, as naive UTC: WeChat Pay's success_time (the refund's bill day), else our clock.
    succeeded_at = UTCDateTimeField(null=True)
    # REJECTED or CLOSED when WeChat Pay made the refund after we held it as one of those (flagged for finance).
    success_after = pw.CharField(max_length=16, null=True)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_until = UTCDateTimeField(null=True)
    next_check_at = UTCDateTimeField(null=True)
    check_failures = pw.IntegerField(default=0)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "refunds"
        indexes = ((("order", "idem_key"), True), (("status", "succeeded_at"), False))


class PaymentAuditLog(BaseModel):
    """One row per state change or refused attempt: who, what, from which state to which, with snapshots.

    Written unsealed by the transaction that makes the change; the sealer (services/audit_trail/) then fills
    `personal_digest` (a keyed digest of the personal parts: ip_address, user_agent, request_data, response_data)
    and `seal` (an HMAC chained to the previous row's seal), in id order. A column added here is not sealed until
    services/audit_trail/seal.py names it.
    """

    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", null=True, index=True)
    transaction = pw.ForeignKeyField(PaymentTransaction, column_name="transaction_id", null=True)
    refund = pw.ForeignKeyField(Refund, column_name="refund_id", null=True)
    user = pw.ForeignKeyField(User, column_name="user_id", null=True, index=True)
    operator = pw.ForeignKeyField(Operator, column_name="operator_id", null=True)
    actor = pw.CharField(max_length=16)  # user | operator | system | wechat
    action_type = pw.CharField(max_length=64, index=True)
    action_detail = pw.TextField(null=True)
    entity = pw.CharField(max_length=16, default="order")  # order | reservation | transaction | refund
    old_status = pw.CharField(max_length=32, null=True)
    new_status = pw.CharField(max_length=32, null=True)
    ip_address = pw.CharField(max_length=45, null=True)
    user_agent = pw.TextField(null=True)
    request_data = JSONText(null=True)
    response_data = JSONText(null=True)
    error_message = pw.TextField(null=True)
    request_id = pw.CharField(max_length=80, null=True, index=True)  # the X-Request-ID (or job round) behind it
    created_at = UTCDateTimeField(default=utcnow, index=True)
    personal_digest = pw.CharField(max_length=64, null=True)  # set by the sealer
    seal = pw.CharField(max_length=64, null=True)  # set by the sealer

    class Meta:
        table_name = "payment_audit_log"


class AuditSealHead(BaseModel):
    """The sealed head of the audit trail (one row, id 1): the last row sealed, its seal, how many rows are sealed,
    and the id of the key that sealed them. Only the sealer writes it, under its row lock."""

    through_id = pw.BigIntegerField()
    seal = pw.CharField(max_length=64)
    sealed_count = pw.BigIntegerField()
    key_id = pw.CharField(max_length=16, null=True)
    updated_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "audit_seal_head"


class IdempotencyKey(BaseModel):
    """The order an Idempotency-Key created, so a repeat gets the same answer."""

    user = pw.ForeignKeyField(User, column_name="user_id")
    idem_key = pw.CharField(max_length=128)
    request_hash = pw.CharField(max_length=64)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id")
    status_code = pw.IntegerField()
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "idempotency_keys"
        indexes = ((("user", "idem_key"), True),)


class WechatPayNotification(BaseModel):
    """A WeChat Pay notification (payment or refund) as received: the notification inbox holds one row per event id,
    with how it ended.

    Refused notifications (unauthenticated, so their ids mean nothing) share one row per kind, reason and minute,
    so a flood of forgeries costs a counter, not a row each.
    """

    event_id = pw.CharField(max_length=64, unique=True)
    event_type = pw.CharField(max_length=32)
    kind = pw.CharField(max_length=16, default="payment")  # payment | refund
    out_trade_no = pw.CharField(max_length=64, null=True, index=True)
    outcome = pw.CharField(max_length=32)
    http_status = pw.IntegerField(default=204)
    reason = pw.CharField(max_length=255, null=True)
    deliveries = pw.IntegerField(default=1)
    first_seen_at = UTCDateTimeField(default=utcnow)
    last_seen_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "wechatpay_notifications"
        indexes = ((("last_seen_at",), False),)


class JobLease(BaseModel):
    """Which process runs a background job until when."""

    name = pw.CharField(max_length=64, primary_key=True)
    owner = pw.CharField(max_length=64, null=True)
    lease_until = UTCDateTimeField(null=True)
    runs = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "job_leases"


class SchemaMigration(BaseModel):
    """Applied schema versions."""

    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=128)
    applied_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_migrations"




class SubscribeMessage(BaseModel):
    """A subscribe message to a parent (预约成功 on payment, 退款通知 on a refund, 候补成功 on a waitlist offer,
    an order's failure or expiry, a reschedule): written in the transaction of the change, sent (and retried) after
    it."""

    dedupe_key = pw.CharField(max_length=64, unique=True)  # <kind>:<order, refund or waitlist entry pk>[:...]
    kind = pw.CharField(max_length=16, default="booking")  # one of MESSAGE_KINDS (services/messages)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", index=True, null=True)  # NULL: a waitlist offer
    refund = pw.ForeignKeyField(Refund, column_name="refund_id", null=True)
    waitlist_entry = pw.ForeignKeyField(WaitlistEntry, column_name="waitlist_entry_id", null=True)
    template_id = pw.CharField(max_length=128)
    payload = JSONText(null=True)  # likewise; the refund's amount is read from the refund row
    status = pw.CharField(max_length=16, default="pending", index=True)  # pending | sent | failed
    attempts = pw.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(default=utcnow, index=True)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_until = UTCDateTimeField(null=True)
    last_error = pw.TextField(null=True)
    sent_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "subscribe_messages"



class BillDay(BaseModel):
    """A day (Asia/Shanghai) of WeChat Pay's trade bill: the lease that lets one reconciliation of it run at a time
    across every process, its last run, and when the daily job tries it again."""

    bill_date = pw.DateField(primary_key=True)
    status = pw.CharField(max_length=16, null=True)  # the last run's
    last_run_id = pw.BigIntegerField(null=True)
    compared_run_id = pw.BigIntegerField(null=True)  # the last run that compared the bill with the ledger
    attempts = pw.IntegerField(default=0)  # the job's tries since the last final status
    next_attempt_at = UTCDateTimeField(null=True)
    lease_owner = pw.CharField(max_length=64, null=True)
    lease_until = UTCDateTimeField(null=True)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "bill_days"


class BillRun(BaseModel):
    """One reconciliation of a day: the bill's summary and the ledger's totals side by side, and how it ended."""

    bill_date = pw.DateField()
    status = pw.CharField(max_length=16)  # matched | discrepancies | no_trades | not_ready | failed
    started_at = UTCDateTimeField(default=utcnow)
    reconciled_at = UTCDateTimeField(default=utcnow)
    actor = pw.CharField(max_length=80)  # system | operator:<username>
    operator = pw.ForeignKeyField(Operator, column_name="operator_id", null=True)
    hash_value = pw.CharField(max_length=64, null=True)  # the signed SHA1 of the bill file
    error = pw.CharField(max_length=255, null=True)  # why it failed or is not ready
    wechat_payments = pw.IntegerField(default=0)
    wechat_payments_fen = pw.BigIntegerField(default=0)
    wechat_refunds = pw.IntegerField(default=0)
    wechat_refunds_fen = pw.BigIntegerField(default=0)
    wechat_fees_fen = pw.BigIntegerField(default=0)
    ledger_payments = pw.IntegerField(default=0)
    ledger_payments_fen = pw.BigIntegerField(default=0)
    ledger_refunds = pw.IntegerField(default=0)
    ledger_refunds_fen = pw.BigIntegerField(default=0)
    rows_matched = pw.IntegerField(default=0)
    request_id = pw.CharField(max_length=80, null=True)

    class Meta:
        table_name = "bill_runs"
        indexes = ((("bill_date", "id"), False),)


class BillDiscrepancy(BaseModel):
    """A row on which WeChat Pay's bill and the ledger disagree: found by a run, found again (same id, same decision)
    by later runs of its day, mended through the ordinary lifecycle or decided by finance. Never deleted.

    No payer identity from the bill is kept (its 用户标识 column is never read): the order, by id, names the parent."""

    bill_date = pw.DateField()
    kind = pw.CharField(max_length=8)  # payment | refund
    ref = pw.CharField(max_length=64)  # out_trade_no (payment) or out_refund_no (refund): the row within its day
    category = pw.CharField(max_length=24)  # missing_in_ledger | missing_at_wechat | amount_mismatch
    out_trade_no = pw.CharField(max_length=64, null=True)
    out_refund_no = pw.CharField(max_length=64, null=True)
    transaction_id = pw.CharField(max_length=64, null=True)
    wechat_status = pw.CharField(max_length=32, null=True)
    ledger_status = pw.CharField(max_length=32, null=True)
    wechat_amount_fen = pw.BigIntegerField(null=True)
    ledger_amount_fen = pw.BigIntegerField(null=True)
    order = pw.ForeignKeyField(PaymentOrder, column_name="order_id", null=True)
    resolution = pw.CharField(max_length=16, null=True)  # mended | accepted | written_off
    resolved_by = pw.ForeignKeyField(Operator, column_name="resolved_by", null=True)
    resolved_at = UTCDateTimeField(null=True)
    note = pw.CharField(max_length=500, null=True)
    first_run_id = pw.BigIntegerField()
    last_run_id = pw.BigIntegerField()
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "bill_discrepancies"
        indexes = ((("bill_date", "kind", "ref"), True), (("last_run_id",), False))
