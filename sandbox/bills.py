"""Trade bills: which rows a day's bill holds, the signed answer of /v3/bill/tradebill, the files behind its
download_url, and the controls that make a day not ready, give it foreign rows, leave rows off or spoil its file.

A day's bill is made from the orders paid and the refunds succeeded on that Beijing day, as of the moment it is
asked for (today's included), plus the foreign rows added by the control API. What is handed out at a
download_url is frozen when the URL is issued, as WeChat Pay's files are. Day controls, foreign rows and issued
files are kept in the store; /sandbox/reset forgets the controls and the foreign rows.
"""
import calendar
import hashlib
import re
import secrets
import string
import time
from datetime import date, datetime, timedelta

from . import clock, fundflow
from .billfile import COLUMNS, columns_of, detail_values, render, select, summary, tampered
from .crypto import random_text
from .errors import SandboxError, invalid_request
from .trades import PAID_STATES
from .validation import OUT_REFUND_NO, OUT_TRADE_NO

DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$")
DIGITS = re.compile(r"^[0-9]{1,32}$")
MAX_AMOUNT = 10 ** 10  # fen; a row above 100 million yuan is a typo, not a test
CONTROLS = ("ready", "corrupt_download", "unbalanced", "reordered")
DEFAULT_CONTROLS = {"ready": True, "corrupt_download": False, "unbalanced": False, "reordered": False}
ENTRY_TIMES = ("time", "refund_created")


def query_error(field, label, rule, value=None):
    """400 PARAM_ERROR for a query parameter, worded like WeChat Pay's field checks."""
    detail = {"location": "query", "field": field}
    if value is not None:
        detail["value"] = value
    return SandboxError(400, "PARAM_ERROR", f"输入源“/query/{field}”映射到值字段“{label}”{rule}", detail)


def parse_day(text, field="bill_date"):
    """The date of a YYYY-MM-DD string, or PARAM_ERROR."""
    if not text:
        raise query_error(field, "账单日期", "必填性规则校验失败，此字段为必填项")
    try:
        if not DAY.match(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise query_error(field, "账单日期", "字符串规则校验失败，格式须为yyyy-MM-DD", text) from None


def earliest_day(today):
    """The oldest day whose bill may be asked for: three calendar months back, and never fewer than 90 days
    (so that a client keeping to 'the last 90 days' is never refused)."""
    year, month = (today.year, today.month - 3) if today.month > 3 else (today.year - 1, today.month + 9)
    months_back = date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    return min(months_back, today - timedelta(days=90))


def check_in_range(day):
    """INVALID_REQUEST for a day in the future (Beijing time) or older than three months."""
    today = clock.now().date()
    if day > today:
        raise invalid_request("参数错误，请检查bill_date：账单日期不能晚于今天", {"bill_date": day.isoformat()})
    if day < earliest_day(today):
        raise invalid_request("参数错误，请检查bill_date：仅支持下载三个月内的账单", {"bill_date": day.isoformat()})


def bad_control(field):
    """400 for a control-API field that is missing or not of its kind."""
    return SandboxError(400, "INVALID_REQUEST", f"字段 {field} 取值无效", {"field": field})


class BillBook:
    """The bills of the sandbox's one merchant, made from its TradeBook and RefundBook."""

    def __init__(self, creds, trades, refunds, config, store):
        self.creds, self.trades, self.refunds, self.config, self.store = creds, trades, refunds, config, store
        self.days = {record["bill_date"]: record for record in store.load("bill_day")}
        self.foreign = {}
        for record in store.load("bill_row"):
            self.foreign[record["id"]] = self._entry_from_record(record)
        self.files = {record["token"]: record for record in store.load("bill_file")}

    # --- what a day holds ---

    def entries(self, day=None):
        """Every row of `day` (Beijing), or of all days: orders paid then, refunds succeeded then, foreign rows."""
        rows = []
        for order in self.trades.orders.values():
            if order.trade_state in PAID_STATES and order.success_time and \
                    day in (None, self._day_of(order.success_time)):
                rows.append(self._order_entry(order))
        for refund in self.refunds.refunds.values():
            if refund.status == "SUCCESS" and refund.success_time and day in (None, self._day_of(refund.success_time)):
                rows.append(self._refund_entry(refund))
        rows = [e for e in rows if not self._omitted(e)]
        rows.extend(e for e in self.foreign.values() if day in (None, self._day_of(e["time"])))
        return rows

    def _omitted(self, entry):
        record = self.days.get(self._day_of(entry["time"]).isoformat(), {})
        number = entry["out_refund_no"] if entry["kind"] == "refund" else entry["out_trade_no"]
        return number in record.get("omitted", {}).get(entry["kind"], ())

    @staticmethod
    def _day_of(moment):
        return moment.astimezone(clock.BEIJING).date()

    def _order_entry(self, order):
        return {"kind": "payment", "time": order.success_time, "appid": order.appid, "mchid": order.mchid,
                "transaction_id": order.transaction_id, "out_trade_no": order.out_trade_no,
                "openid": order.paid_openid or order.payer_openid or "", "trade_type": order.trade_type,
                "bank_type": order.bank_type or "OTHERS", "currency": order.currency,
                "description": order.description, "attach": order.attach, "total": order.total}

    def _refund_entry(self, refund):
        entry = self._order_entry(self.trades.orders[refund.out_trade_no])
        entry.update(kind="refund", time=refund.success_time, refund=refund.refund, refund_id=refund.refund_id,
                     out_refund_no=refund.out_refund_no, refund_created=refund.created_at)
        return entry

    def controls(self, day):
        """The day's controls: ready, corrupt_download, unbalanced, reordered (the trade bill's columns)."""
        record = self.days.get(day.isoformat(), {})
        return {name: record.get(name, DEFAULT_CONTROLS[name]) for name in CONTROLS}

    # --- the WeChat Pay API ---

    def trade_bill(self, bill_date, bill_type, tar_type, base_url):
        """The signed answer of GET /v3/bill/tradebill: hash_type, hash_value, download_url; or its refusal."""
        day = parse_day(bill_date)
        if bill_type not in COLUMNS:
            raise query_error("bill_type", "账单类型", "枚举规则校验失败，取值须为ALL、SUCCESS或REFUND", bill_type)
        controls = self._ready(day, tar_type)
        entries = select(self.entries(day), bill_type)
        layout = (bill_type, controls["unbalanced"], controls["reordered"])
        text = render(entries, *layout) if entries else None
        served = render(tampered(entries), *layout) if entries and controls["corrupt_download"] else text
        return self._answer(day, bill_type, tar_type, text, served, base_url)

    def fund_flow_bill(self, bill_date, account_type, tar_type, base_url):
        """The signed answer of GET /v3/bill/fundflowbill (the basic account's movements; the operation and fee
        accounts never move here), or its refusal."""
        day = parse_day(bill_date)
        if account_type not in fundflow.ACCOUNT_TYPES:
            raise query_error("account_type", "资金账户类型", "枚举规则校验失败，取值须为BASIC、OPERATION或FEES",
                              account_type)
        controls = self._ready(day, tar_type)
        entries = self.entries() if account_type == "BASIC" else []
        text = fundflow.render(entries, day, controls["unbalanced"])
        served = text
        if text and controls["corrupt_download"]:
            others = [e for e in entries if self._day_of(e["time"]) != day]
            served = fundflow.render(others + tampered([e for e in entries if self._day_of(e["time"]) == day]), day,
                                     controls["unbalanced"])
        return self._answer(day, "FUNDFLOW_" + account_type, tar_type, text, served, base_url)

    def _ready(self, day, tar_type):
        """The day's controls once the request may be answered: tar_type known, day in range, bill ready."""
        if tar_type not in (None, "GZIP"):
            raise query_error("tar_type", "压缩类型", "枚举规则校验失败，取值须为GZIP", tar_type)
        check_in_range(day)
        controls = self.controls(day)
        if not controls["ready"]:
            raise SandboxError(400, "STATEMENT_CREATING", "账单生成中")
        return controls

    def _answer(self, day, bill_type, tar_type, text, served, base_url):
        """hash_type, hash_value (of `text`) and the download_url of `served` (`text` unless the day's download
        is corrupt); NO_STATEMENT_EXIST when there is no text."""
        if text is None:
            raise SandboxError(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在")
        token = self._issue(day, bill_type, tar_type, served)
        url = f"{base_url}/v3/billdownload/file?token={token}" + ("&tartype=gzip" if tar_type == "GZIP" else "")
        return {"hash_type": "SHA1", "hash_value": hashlib.sha1(text.encode("utf-8")).hexdigest(),
                "download_url": url}

    def _issue(self, day, bill_type, tar_type, text):
        now = time.time()
        with self.store.atomic():
            for token in [t for t, f in self.files.items() if f["expires_at"] <= now]:
                del self.files[token]
                self.store.delete("bill_file", token)
            token = secrets.token_urlsafe(48)
            record = {"token": token, "bill_date": day.isoformat(), "bill_type": bill_type, "tar_type": tar_type,
                      "text": text, "expires_at": now + self.config.bill_url_ttl_seconds}
            self.files[token] = record
            self.store.put("bill_file", token, record)
        return token

    def download(self, token):
        """(the file's bytes, unzipped, its tar_type) behind a download_url; 400 when unknown or expired."""
        if not token:
            raise query_error("token", "下载令牌", "必填性规则校验失败，此字段为必填项")
        record = self.files.get(token)
        if record is None or record["expires_at"] <= time.time():
            raise invalid_request("下载地址无效或已过期，请重新申请账单")
        return record["text"].encode("utf-8"), record["tar_type"]

    # --- the control API ---

    def view(self, day, bill_type="ALL"):
        """A day's bill for the control API and the dashboard: status, controls, rows by header name, summary,
        the text whose SHA1 is signed, and the SHA1 of what its download serves."""
        if bill_type not in COLUMNS:
            raise bad_control("bill_type")
        controls = self.controls(day)
        entries = select(self.entries(day), bill_type)
        layout = (bill_type, controls["unbalanced"], controls["reordered"])
        text = render(entries, *layout)
        served = render(tampered(entries), *layout) if controls["corrupt_download"] else text
        status = "not_ready" if not controls["ready"] else "ready" if entries else "no_statement"
        totals = summary(entries, controls["unbalanced"])
        columns, summary_columns = columns_of(bill_type, controls["reordered"])
        return {
            "bill_date": day.isoformat(), "bill_type": bill_type, "status": status, "controls": controls,
            "columns": columns, "summary_columns": summary_columns,
            "rows": [self._row_view(e, columns) for e in entries],
            "summary": totals, "text": text, "sha1": hashlib.sha1(text.encode("utf-8")).hexdigest(),
            "served_sha1": hashlib.sha1(served.encode("utf-8")).hexdigest(),
            "foreign_rows": [self._entry_view(e) for e in self.foreign.values() if self._day_of(e["time"]) == day],
            "omitted": self.days.get(day.isoformat(), {}).get("omitted", {}),
        }

    @staticmethod
    def _row_view(entry, columns):
        values = detail_values(entry)
        return {**{name: values[name] for name in columns}, "foreign": "id" in entry}

    def set_controls(self, day, changes):
        """Change some of a day's controls ({"ready": bool, "corrupt_download": bool, "unbalanced": bool,
        "reordered": bool})."""
        for name, value in changes.items():
            if name not in CONTROLS or not isinstance(value, bool):
                raise bad_control(name)
        self._save_day(day, changes)
        return self.controls(day)

    def omit(self, day, spec):
        """Leave an order's payment ({"out_trade_no"}) or a refund ({"out_refund_no"}) off the day's bills, as if
        WeChat Pay had lost it (foreign rows are not left off) → the day's omitted numbers by kind."""
        kinds = {"out_trade_no": "payment", "out_refund_no": "refund"}
        if len(spec) != 1 or next(iter(spec)) not in kinds:
            raise bad_control("out_trade_no")
        [(field, number)] = spec.items()
        if not isinstance(number, str) or not 0 < len(number) <= 64:
            raise bad_control(field)
        omitted = {kind: list(numbers) for kind, numbers in self.days.get(day.isoformat(), {}).get("omitted",
                                                                                                   {}).items()}
        numbers = omitted.setdefault(kinds[field], [])
        if number not in numbers:
            numbers.append(number)
        self._save_day(day, {"omitted": omitted})
        return omitted

    def _save_day(self, day, changes):
        record = {**self.days.get(day.isoformat(), {}), **changes, "bill_date": day.isoformat()}
        self.days[day.isoformat()] = record
        self.store.put("bill_day", day.isoformat(), record)

    def add_foreign(self, day, spec):
        """Add a row WeChat Pay 'made' that the merchant never created: {"kind": "payment" | "refund",
        "amount": fen, "time"?: "HH:MM:SS", "out_trade_no"?, "out_refund_no"?, "transaction_id"?, "description"?}.
        Its time must not be in the future; without one: now for today, noon for an earlier day."""
        kind = spec.get("kind")
        amount = spec.get("amount")
        if kind not in ("payment", "refund"):
            raise bad_control("kind")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
            raise bad_control("amount")
        moment = self._foreign_time(day, spec.get("time"))
        stamp = moment.strftime("%Y%m%d")
        entry = {
            "id": secrets.token_hex(8), "kind": kind, "time": moment, "appid": self.creds.appid,
            "mchid": self.creds.mchid,
            "transaction_id": self._field(spec, "transaction_id", DIGITS,
                                          "42000" + stamp + random_text(15, string.digits)),
            "out_trade_no": self._field(spec, "out_trade_no", OUT_TRADE_NO, "FX" + secrets.token_hex(12)),
            "openid": "o" + random_text(27), "trade_type": "JSAPI", "bank_type": "OTHERS", "currency": "CNY",
            "description": self._field(spec, "description", None, "沙箱外来交易"), "attach": "", "total": amount,
        }
        if kind == "refund":
            entry.update(refund=amount, refund_created=moment,
                         refund_id="50" + stamp + random_text(19, string.digits),
                         out_refund_no=self._field(spec, "out_refund_no", OUT_REFUND_NO, "FXR" + secrets.token_hex(12)))
        self.foreign[entry["id"]] = entry
        self.store.put("bill_row", entry["id"], self._entry_record(entry))
        return self._entry_view(entry)

    @staticmethod
    def _field(spec, name, pattern, default):
        value = spec.get(name)
        if value is None or value == "":
            return default
        if not isinstance(value, str) or len(value) > 127 or (pattern is not None and not pattern.match(value)):
            raise bad_control(name)
        return value

    @staticmethod
    def _foreign_time(day, text):
        now = clock.now()
        if text is None or text == "":
            moment = now.replace(microsecond=0) if day == now.date() else \
                datetime(day.year, day.month, day.day, 12, tzinfo=clock.BEIJING)
        elif isinstance(text, str) and CLOCK_TIME.match(text):
            hour, minute, second = map(int, text.split(":"))
            moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=clock.BEIJING)
        else:
            raise bad_control("time")
        if moment > now:
            raise SandboxError(400, "INVALID_REQUEST", "外来账单行的时间不能晚于现在", {"field": "time"})
        return moment

    @staticmethod
    def _entry_record(entry):
        return {k: (v.isoformat() if k in ENTRY_TIMES and v else v) for k, v in entry.items()}

    @staticmethod
    def _entry_from_record(record):
        return {k: (datetime.fromisoformat(v) if k in ENTRY_TIMES and v else v) for k, v in record.items()}

    def _entry_view(self, entry):
        view = {k: entry.get(k) for k in ("id", "kind", "transaction_id", "out_trade_no", "out_refund_no",
                                          "refund_id", "description")}
        view.update(time=clock.iso(entry["time"]), bill_date=self._day_of(entry["time"]).isoformat(),
                    amount=entry["refund"] if entry["kind"] == "refund" else entry["total"])
        return view

    def reset(self):
        """Forget every day control and foreign row (orders, refunds and issued files stay)."""
        with self.store.atomic():
            for key in self.days:
                self.store.delete("bill_day", key)
            for key in self.foreign:
                self.store.delete("bill_row", key)
        self.days.clear()
        self.foreign.clear()
