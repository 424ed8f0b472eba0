"""Service configuration: every variable of contract §1, read once from the environment into a frozen dataclass."""
from __future__ import annotations

import ipaddress
import os
import re
import sys
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from redis.asyncio.connection import parse_url as parse_redis_py_url

from models.personal_data import parse_key


class SettingsError(Exception):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class DatabaseURL:
    """The parts of a mysql:// URL."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int
    name: str


@dataclass(frozen=True)
class RedisURL:
    """REDIS_URL, parsed: one server (`url`, as redis-py reads it) or Sentinels that name the master (contract §1)."""

    url: str = field(repr=False)  # the whole value, which may carry a password; a server URL goes to redis-py whole
    # The Sentinel form only:
    sentinels: tuple = ()  # ((host, port), ...); empty for a server URL
    master: str | None = None  # the name the Sentinels monitor
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def uses_sentinel(self) -> bool:
        """True when the master is found through Sentinels."""
        return bool(self.sentinels)


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    host: str
    port: int
    database: DatabaseURL
    redis_url: str = field(repr=False)  # may carry a password
    redis: RedisURL
    secret_key: str = field(repr=False)
    wechat_appid: str
    wechat_app_secret: str = field(repr=False)
    wechat_api_base: str
    wechatpay_mchid: str
    wechatpay_cert_serial_no: str
    wechatpay_private_key: str = field(repr=False)
    wechatpay_apiv3_key: str = field(repr=False)
    wechatpay_apiv3_key_previous: str | None = field(repr=False)
    wechatpay_public_key: str | None = field(repr=False)
    wechatpay_public_key_id: str | None
    wechatpay_cert_dir: str
    wechatpay_gateway: str
    data_key: bytes = field(repr=False)  # DATA_KEY_FILE: encrypts personal data at rest (models/personal_data.py)
    data_key_previous: bytes | None = field(repr=False)  # DATA_KEY_PREVIOUS_FILE: still read during a key change
    audit_key: bytes = field(repr=False)  # AUDIT_KEY_FILE: seals the audit trail (services/audit_trail/)
    audit_checkpoint_dir: str  # AUDIT_CHECKPOINT_DIR: the daily checkpoints of the trail, outside the database
    audit_verify_interval_seconds: float  # AUDIT_VERIFY_INTERVAL_SECONDS: how often the sealer verifies the trail
    personal_data_retention_days: int  # PERSONAL_DATA_RETENTION_DAYS
    wechatpay_notify_url: str
    wechatpay_refund_notify_url: str
    trial_price_fen: int
    seat_hold_seconds: int
    order_expire_seconds: int
    notify_tolerance_seconds: int
    reconcile_interval_seconds: float
    rate_limit_per_minute: int
    operator_login_max_failures: int
    max_body_bytes: int
    subscribe_template_id: str
    refund_template_id: str
    waitlist_template_id: str
    waitlist_offer_seconds: int
    reschedule_template_id: str
    payment_failed_template_id: str  # WECHAT_PAYMENT_FAILED_TEMPLATE_ID: 支付失败 (issue 16; the contract names none)
    order_expired_template_id: str  # WECHAT_ORDER_EXPIRED_TEMPLATE_ID: 订单已过期 (likewise)
    trusted_proxies: tuple
    workers: int
    log_format: str
    log_level: str
    event_loop: str
    metrics_allow: tuple
    reconcile_batch: int
    bill_reconcile_hour: int
    bill_retry_seconds: float
    message_lease_seconds: float
    ws_ping_interval_seconds: float
    db_pool_max: int
    admission_limit: int
    admission_queue: int
    admission_wait_seconds: float
    admission_retry_after_seconds: int
    admission_notify_limit: int
    dev_mode: bool
    run_jobs: bool

    @property
    def public_key_mode(self) -> bool:
        """True when notifications and answers are verified with the platform public key (PUB_KEY_ID_...)."""
        return bool(self.wechatpay_public_key and self.wechatpay_public_key_id)


def _required(env, name):
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set")
    return value


def _int(env, name, default, minimum=0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


OPERATOR_LOGIN_MAX_FAILURES_MAX = 1000  # the failures of one window are kept in one row (services/accounts/lockout.py)


def _operator_login_max_failures(env) -> int:
    value = _int(env, "OPERATOR_LOGIN_MAX_FAILURES", 10, minimum=1)
    if value > OPERATOR_LOGIN_MAX_FAILURES_MAX:
        raise SettingsError(f"OPERATOR_LOGIN_MAX_FAILURES must be <= {OPERATOR_LOGIN_MAX_FAILURES_MAX}, got {value}")
    return value


def _float(env, name, default, minimum=0.0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= minimum:
        raise SettingsError(f"{name} must be > {minimum}, got {value}")
    return value


def _hour(env, name, default):
    value = _int(env, name, default)
    if value > 23:
        raise SettingsError(f"{name} must be an hour from 0 to 23, got {value}")
    return value


def _url(env, name, default=None, schemes=("http", "https")):
    raw = env.get(name, "").strip() or default
    if not raw:
        raise SettingsError(f"{name} is not set")
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise SettingsError(f"{name} must be a {'/'.join(schemes)} URL, got {raw!r}")
    return raw.rstrip("/")


def parse_database_url(env):
    raw = _required(env, "DATABASE_URL")
    parsed = urlparse(raw)
    name = parsed.path.lstrip("/")
    if parsed.scheme not in ("mysql", "mariadb") or not parsed.hostname or not name:
        raise SettingsError("DATABASE_URL must look like mysql://user:password@host:port/dbname")
    try:
        port = parsed.port or 3306
    except ValueError:
        raise SettingsError("DATABASE_URL has a malformed port") from None
    from urllib.parse import unquote

    return DatabaseURL(unquote(parsed.username or ""), unquote(parsed.password or ""), parsed.hostname, port, name)


# Admission control (services/admission.py), per worker; the defaults come from bench/overload.py
# (docs/benchmarks.md, "Overload").
ADMISSION_LIMIT = 8
ADMISSION_QUEUE = 32
ADMISSION_WAIT_SECONDS = 0.25
ADMISSION_NOTIFY_LIMIT = 8

REDIS_URL_MAX = 2048
SENTINELS_MAX = 16
REDIS_DB_MAX = 65535
SENTINEL_SHAPE = "redis+sentinel://host:port[,host:port...]/master-name/db"
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,5}")


def parse_redis_url(env) -> RedisURL:
    """REDIS_URL: `redis://host:port/db` (rediss://, unix:// too) or `redis+sentinel://...`; never echoes a password."""
    raw = _required(env, "REDIS_URL")
    if len(raw) > REDIS_URL_MAX:
        raise SettingsError(f"REDIS_URL is longer than {REDIS_URL_MAX} characters")
    if raw.startswith("redis+sentinel://"):
        return _sentinel_url(raw)
    if not _server_url_is_valid(raw):
        raise SettingsError(f"REDIS_URL must look like redis://host:port/db (a port 1-65535, a db 0-{REDIS_DB_MAX}) "
                            f"or {SENTINEL_SHAPE}")
    return RedisURL(url=raw)


def _server_url_is_valid(raw) -> bool:
    parsed = urlparse(raw)
    try:
        if parsed.scheme == "unix":
            valid = bool(parsed.path)
        else:
            db = parsed.path.strip("/")
            valid = (parsed.scheme in ("redis", "rediss") and bool(parsed.hostname) and parsed.port != 0
                     and (not db or _db(db) is not None))
        if valid:
            parse_redis_py_url(raw)  # redis-py's own reading: its options (?socket_timeout=...) must make sense too
        return valid
    except ValueError:  # a port that is not a number or over 65535, or an option redis-py cannot read
        return False


def _db(text):
    """A database number within bounds, else None."""
    return int(text) if _DIGITS.fullmatch(text) and int(text) <= REDIS_DB_MAX else None


def _sentinel_url(raw) -> RedisURL:
    bad = SettingsError(f"REDIS_URL must look like {SENTINEL_SHAPE}")
    rest = raw[len("redis+sentinel://"):]
    if any(c in rest for c in "?#") or any(c.isspace() for c in rest):
        raise bad
    authority, _, path = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    parts = hosts.split(",", SENTINELS_MAX)
    if len(parts) > SENTINELS_MAX:
        raise SettingsError(f"REDIS_URL names more than {SENTINELS_MAX} Sentinels")
    sentinels = tuple(_host_port(part, bad) for part in parts)
    if len(set(sentinels)) != len(sentinels):
        raise SettingsError("REDIS_URL names a Sentinel twice")
    names = path.split("/")
    if len(names) not in (1, 2) or not _MASTER_NAME.fullmatch(names[0]):
        raise SettingsError(f"REDIS_URL must look like {SENTINEL_SHAPE} (a master name of letters, digits, ._-)")
    db = _db(names[1]) if len(names) == 2 else 0
    if db is None:
        raise SettingsError(f"REDIS_URL: the db must be a number from 0 to {REDIS_DB_MAX}")
    return RedisURL(url=raw, sentinels=sentinels, master=names[0], db=db, username=username, password=password)


def _host_port(text, bad):
    """One Sentinel's `host:port` (`[v6]:port`; the port defaults to 26379)."""
    if text.startswith("["):
        host, close, port = text[1:].partition("]")
        if not close or port and not port.startswith(":"):
            raise bad
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
        port = port[1:]
    else:
        host, _, port = text.partition(":")
        if not _HOSTNAME.fullmatch(host):
            raise bad
    if not port:
        return host, 26379
    if not _DIGITS.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise SettingsError("REDIS_URL: a Sentinel's port must be a number from 1 to 65535")
    return host, int(port)


def _read_file(env, name, required=True):
    path = env.get(name, "").strip()
    if not path:
        if required:
            raise SettingsError(f"{name} is not set")
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as e:
        raise SettingsError(f"{name}: cannot read {path}: {e.strerror}") from None


def _apiv3_key(env, name="WECHATPAY_APIV3_KEY", required=True):
    key = env.get(name, "").strip()
    if not key:
        content = _read_file(env, f"{name}_FILE", required=False)
        if content is None:
            if not required:
                return None
            raise SettingsError(f"{name} or {name}_FILE is not set")
        key = content.strip()
    if len(key.encode()) != 32:
        raise SettingsError(f"{name} must be 32 bytes")
    return key


def _data_key(env, name, required=True):
    """A data key file: 32 random bytes, or 64 hex characters (contract §1)."""
    path = env.get(name, "").strip()
    if not path:
        if required:
            raise SettingsError(f"{name} is not set")
        return None
    try:
        with open(path, "rb") as fh:
            raw = fh.read(4096)
    except OSError as e:
        raise SettingsError(f"{name}: cannot read {path}: {e.strerror}") from None
    try:
        return parse_key(raw)
    except ValueError as e:
        raise SettingsError(f"{name} {e}") from None


def load_data_keys(env=None) -> tuple[bytes, bytes | None]:
    """(DATA_KEY_FILE's key, DATA_KEY_PREVIOUS_FILE's or None), for the commands that need no other setting."""
    env = dict(os.environ if env is None else env)
    return _data_key(env, "DATA_KEY_FILE"), _data_key(env, "DATA_KEY_PREVIOUS_FILE", required=False)


def load_audit_trail(env=None) -> tuple[bytes, str]:
    """(AUDIT_KEY_FILE's key: 32 random bytes or 64 hex characters, as a data key; AUDIT_CHECKPOINT_DIR), for the
    commands that need no other setting."""
    env = dict(os.environ if env is None else env)
    return (_data_key(env, "AUDIT_KEY_FILE"),
            env.get("AUDIT_CHECKPOINT_DIR", "").strip() or os.path.join("var", "audit-checkpoints"))


def _networks(env, name, default):
    raw = env.get(name)
    raw = default if raw is None else raw
    nets = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not a CIDR") from None
    return tuple(nets)


def _choice(env, name, default, choices):
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _bool(env, name, default):
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def load(env=None) -> Settings:
    """Read and validate the environment; raises SettingsError naming the first bad variable."""
    env = dict(os.environ if env is None else env)
    host = env.get("HOST", "").strip() or "127.0.0.1"
    port = _int(env, "PORT", 8000, minimum=0)
    if port > 65535:
        raise SettingsError(f"PORT must be <= 65535, got {port}")
    public_key = _read_file(env, "WECHATPAY_PUBLIC_KEY_FILE", required=False)
    public_key_id = env.get("WECHATPAY_PUBLIC_KEY_ID", "").strip() or None
    if bool(public_key) != bool(public_key_id):
        raise SettingsError("WECHATPAY_PUBLIC_KEY_FILE and WECHATPAY_PUBLIC_KEY_ID must be set together")
    if public_key_id and not public_key_id.startswith("PUB_KEY_ID_"):
        raise SettingsError("WECHATPAY_PUBLIC_KEY_ID must start with PUB_KEY_ID_")
    secret_key = _required(env, "SECRET_KEY")
    if len(secret_key) < 16:
        raise SettingsError("SECRET_KEY must be at least 16 characters")
    base = f"http://{host}:{port}"
    seat_hold = _int(env, "SEAT_HOLD_SECONDS", 900, minimum=1)
    order_expire = _int(env, "ORDER_EXPIRE_SECONDS", 1800, minimum=1)
    if order_expire < seat_hold:
        raise SettingsError("ORDER_EXPIRE_SECONDS must be >= SEAT_HOLD_SECONDS")
    redis = parse_redis_url(env)
    data_key, data_key_previous = load_data_keys(env)
    audit_key, audit_checkpoint_dir = load_audit_trail(env)
    db_pool_max = _int(env, "DB_POOL_MAX", 20, minimum=2)
    # Below the pool, so that what takes no slot (notifications, sockets, readiness) always finds a connection.
    admission_limit = _int(env, "ADMISSION_LIMIT", min(ADMISSION_LIMIT, db_pool_max // 2), minimum=1)
    if admission_limit >= db_pool_max:
        raise SettingsError("ADMISSION_LIMIT must be below DB_POOL_MAX (notifications, sockets and readiness "
                            "need connections of their own)")
    return Settings(
        host=host,
        port=port,
        database=parse_database_url(env),
        redis_url=redis.url,
        redis=redis,
        secret_key=secret_key,
        wechat_appid=_required(env, "WECHAT_APPID"),
        wechat_app_secret=_required(env, "WECHAT_APP_SECRET"),
        wechat_api_base=_url(env, "WECHAT_API_BASE", "https://api.weixin.qq.com"),
        wechatpay_mchid=_required(env, "WECHATPAY_MCHID"),
        wechatpay_cert_serial_no=_required(env, "WECHATPAY_CERT_SERIAL_NO"),
        wechatpay_private_key=_read_file(env, "WECHATPAY_PRIVATE_KEY_FILE"),
        wechatpay_apiv3_key=_apiv3_key(env),
        wechatpay_apiv3_key_previous=_apiv3_key(env, "WECHATPAY_APIV3_KEY_PREVIOUS", required=False),
        wechatpay_public_key=public_key,
        wechatpay_public_key_id=public_key_id,
        wechatpay_cert_dir=env.get("WECHATPAY_CERT_DIR", "").strip() or os.path.join("var", "wechatpay-certs"),
        wechatpay_gateway=_url(env, "WECHATPAY_GATEWAY", "https://api.mch.weixin.qq.com"),
        data_key=data_key,
        data_key_previous=data_key_previous,
        audit_key=audit_key,
        audit_checkpoint_dir=audit_checkpoint_dir,
        audit_verify_interval_seconds=_float(env, "AUDIT_VERIFY_INTERVAL_SECONDS", 900.0),
        personal_data_retention_days=_int(env, "PERSONAL_DATA_RETENTION_DAYS", 365, minimum=0),
        wechatpay_notify_url=_url(env, "WECHATPAY_NOTIFY_URL", f"{base}/api/v1/payment/wxpay/callback"),
        wechatpay_refund_notify_url=_url(
            env, "WECHATPAY_REFUND_NOTIFY_URL", f"{base}/api/v1/payment/wxpay/refund-callback"
        ),
        trial_price_fen=_int(env, "TRIAL_PRICE_FEN", 20000, minimum=1),
        seat_hold_seconds=seat_hold,
        order_expire_seconds=order_expire,
        notify_tolerance_seconds=_int(env, "NOTIFY_TOLERANCE_SECONDS", 300, minimum=1),
        reconcile_interval_seconds=_float(env, "RECONCILE_INTERVAL_SECONDS", 60.0),
        rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 60),
        operator_login_max_failures=_operator_login_max_failures(env),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 65536, minimum=1),
        subscribe_template_id=env.get("WECHAT_SUBSCRIBE_TEMPLATE_ID", "").strip() or "TRIAL_BOOKED_TEMPLATE",
        refund_template_id=env.get("WECHAT_REFUND_TEMPLATE_ID", "").strip() or "TRIAL_REFUNDED_TEMPLATE",
        waitlist_template_id=env.get("WECHAT_WAITLIST_TEMPLATE_ID", "").strip() or "WAITLIST_OFFER_TEMPLATE",
        waitlist_offer_seconds=_int(env, "WAITLIST_OFFER_SECONDS", 900, minimum=1),
        reschedule_template_id=env.get("WECHAT_RESCHEDULE_TEMPLATE_ID", "").strip() or "BOOKING_RESCHEDULED_TEMPLATE",
        payment_failed_template_id=env.get("WECHAT_PAYMENT_FAILED_TEMPLATE_ID", "").strip() or "PAYMENT_FAILED_TEMPLATE",
        order_expired_template_id=env.get("WECHAT_ORDER_EXPIRED_TEMPLATE_ID", "").strip() or "ORDER_EXPIRED_TEMPLATE",
        trusted_proxies=_networks(env, "TRUSTED_PROXIES", ""),
        workers=_int(env, "WORKERS", 1, minimum=1),
        log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        event_loop=_choice(env, "EVENT_LOOP", "uvloop", ("uvloop", "asyncio")),
        metrics_allow=_networks(env, "METRICS_ALLOW", "127.0.0.1/32,::1/128"),
        reconcile_batch=_int(env, "RECONCILE_BATCH", 100, minimum=1),
        bill_reconcile_hour=_hour(env, "BILL_RECONCILE_HOUR", 10),
        bill_retry_seconds=_float(env, "BILL_RETRY_SECONDS", 900.0),
        message_lease_seconds=_float(env, "MESSAGE_LEASE_SECONDS", 30.0),
        ws_ping_interval_seconds=_float(env, "WS_PING_INTERVAL_SECONDS", 20.0),
        db_pool_max=db_pool_max,
        admission_limit=admission_limit,
        admission_queue=_int(env, "ADMISSION_QUEUE", ADMISSION_QUEUE),
        admission_wait_seconds=_float(env, "ADMISSION_WAIT_SECONDS", ADMISSION_WAIT_SECONDS),
        admission_retry_after_seconds=_int(env, "ADMISSION_RETRY_AFTER_SECONDS", 1, minimum=1),
        admission_notify_limit=_int(env, "ADMISSION_NOTIFY_LIMIT", ADMISSION_NOTIFY_LIMIT, minimum=1),
        dev_mode=_bool(env, "DEV_MODE", False),
        run_jobs=_bool(env, "RUN_JOBS", True),
    )


def load_or_exit(env=None) -> Settings:
    """Load the settings or stop the process with one line naming the bad variable."""
    try:
        return load(env)
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
