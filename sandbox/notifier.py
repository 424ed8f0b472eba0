"""Signed, encrypted notifications to merchants, redelivered on WeChat Pay's schedule until acknowledged.

Every notification is kept in the store with its attempts, its place in the schedule and the time of its next
attempt, so that deliveries still under way when the sandbox stops carry on when it starts again.
"""
import asyncio
import base64
import json
import secrets
import logging
import time
from datetime import datetime

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from . import clock
from .crypto import encrypt_resource, random_text, signed_headers
from .errors import SandboxError

log = logging.getLogger("sandbox.notifier")

# Seconds between attempts after the first one (15 retries, 24h4m), multiplied by --time-scale.
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
ATTEMPT_TIMEOUT = 5.0  # seconds the merchant has to answer; real seconds, not scaled
ACTIONS = ("drop", "duplicate", "delay")
INTERRUPTED = "沙箱停止，未等到应答"  # an attempt in flight when the process stopped


class Notification:
    """One event (one id) and every attempt made to deliver it."""

    FIELDS = ("id", "event_type", "summary", "original_type", "notify_url", "subject", "plaintext", "status",
              "rule", "attempts", "probe", "retries", "next_attempt_at")

    def __init__(self, event_type, summary, original_type, plaintext, notify_url, subject, probe=False):
        self.id = "EV-" + clock.now().strftime("%Y%m%d%H%M%S") + random_text(8, "0123456789")
        self.event_type = event_type
        self.summary = summary
        self.original_type = original_type
        self.notify_url = notify_url
        self.subject = subject
        self.plaintext = plaintext
        self.created_at = clock.now()
        self.status = "pending"
        self.rule = None
        self.attempts = []
        self.probe = probe
        self.retries = 0  # scheduled redeliveries made so far (an index into RETRY_SCHEDULE)
        self.next_attempt_at = None  # time.time() of the next scheduled attempt, while one is waited for
        self.body = None
        self.apiv3_key_generation = 1  # which APIv3 key (sandbox/key_changes.py) encrypted the body

    def record(self):
        """The notification as a JSON-able dict for the store."""
        record = {name: getattr(self, name) for name in self.FIELDS}
        record.update(created_at=self.created_at.isoformat(), body=self.body.decode("utf-8"),
                      apiv3_key_generation=self.apiv3_key_generation)
        return record

    @classmethod
    def from_record(cls, record):
        """Rebuild a stored notification; an attempt that never got its answer is marked interrupted."""
        note = cls.__new__(cls)
        for name in cls.FIELDS:
            setattr(note, name, record[name])
        note.created_at = datetime.fromisoformat(record["created_at"])
        note.body = record["body"].encode("utf-8")
        note.apiv3_key_generation = record.get("apiv3_key_generation", 1)  # rows written before key changes
        for attempt in note.attempts:
            if "elapsed_ms" not in attempt:
                attempt.update(status=None, error=INTERRUPTED, elapsed_ms=None)
        return note

    def view(self):
        """JSON for the control API."""
        due = None if self.next_attempt_at is None else round(max(0.0, self.next_attempt_at - time.time()), 3)
        return {
            "id": self.id, "event_type": self.event_type, "notify_url": self.notify_url,
            "status": self.status, "rule": self.rule, "created_at": clock.iso(self.created_at),
            "next_attempt_in_seconds": due, "retries": self.retries, "attempts": list(self.attempts),
            "plaintext": self.plaintext, "body": self.body.decode("utf-8"), "probe": self.probe,
            "apiv3_key_generation": self.apiv3_key_generation, **self.subject,
        }


class Notifier:
    """Builds, signs and delivers notifications in the background; rules can drop, duplicate or delay them."""

    def __init__(self, creds, config, time_scale, store):
        self.creds = creds
        self.config = config
        self.time_scale = time_scale
        self.store = store
        self.notifications = [Notification.from_record(r) for r in store.load("notification")]
        self.by_id = {note.id: note for note in self.notifications}
        self.rules = []
        self._tasks = set()
        self._http = AsyncHTTPClient(force_instance=True, max_clients=100)

    def save(self, note):
        """Write the notification to the store."""
        self.store.put("notification", note.id, note.record())

    def resume(self):
        """Carry on delivering every notification that was still pending when the sandbox last stopped."""
        pending = [note for note in self.notifications if note.status == "pending"]
        for note in pending:
            self._start(note)
        return len(pending)

    def add_rule(self, action, count=1, copies=2, delay_seconds=1.0):
        """Apply `action` to the next `count` notifications."""
        rule = {"action": action, "remaining": count, "copies": copies, "delay_seconds": delay_seconds}
        self.rules.append(rule)
        return rule

    def clear_rules(self):
        """Forget every pending rule."""
        self.rules.clear()

    def _take_rule(self):
        for rule in self.rules:
            if rule["remaining"] > 0:
                rule["remaining"] -= 1
                taken = dict(rule)
                if rule["remaining"] == 0:
                    self.rules.remove(rule)
                taken.pop("remaining")
                return taken
        return None

    def send(self, event_type, summary, original_type, plaintext, notify_url, subject, probe=False):
        """Create a notification and start delivering it; returns at once.

        A probe is signed with a `WECHATPAY/SIGNTEST/` signature, as WeChat Pay's signature probes are, is sent
        once and takes no notification rule: a merchant must refuse it (non-2xx).
        """
        note = Notification(event_type, summary, original_type, plaintext, notify_url, subject, probe)
        # Encrypted once, now: every redelivery resends these bytes, whatever APIv3 key change comes later.
        note.apiv3_key_generation = len(self.creds.apiv3_keys)
        resource = encrypt_resource(self.creds.apiv3_key, json.dumps(plaintext, ensure_ascii=False,
                                                                      separators=(",", ":")), original_type)
        resource["original_type"] = original_type
        envelope = {
            "id": note.id, "create_time": clock.iso(note.created_at), "resource_type": "encrypt-resource",
            "event_type": event_type, "summary": summary, "resource": resource,
        }
        note.body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        note.rule = None if probe else self._take_rule()
        if (note.rule or {}).get("action") == "drop":
            note.status = "dropped"
        self.notifications.append(note)
        self.by_id[note.id] = note
        self.save(note)
        if note.status == "pending":
            self._start(note)
        return note

    def _start(self, note):
        task = asyncio.get_running_loop().create_task(self._deliver(note))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, note):
        """First delivery (with its rule), then the retry schedule from wherever `note` stands in it."""
        if not note.attempts:
            await self._first_delivery(note)
        if note.probe:
            note.status = "probed"
            self.save(note)
            return
        while note.status == "pending" and note.retries < len(RETRY_SCHEDULE):
            if note.next_attempt_at is None:
                note.next_attempt_at = time.time() + RETRY_SCHEDULE[note.retries] * self.time_scale
                self.save(note)
            await asyncio.sleep(max(0.0, note.next_attempt_at - time.time()))
            if note.status != "pending":
                break  # a redelivery by hand was acknowledged meanwhile
            note.retries += 1
            note.next_attempt_at = None
            await self._attempt(note)
        if note.status == "pending":
            note.status = "failed"
            self.save(note)

    async def _first_delivery(self, note):
        rule = note.rule or {}
        if rule.get("action") == "delay":
            if note.next_attempt_at is None:
                note.next_attempt_at = time.time() + rule["delay_seconds"]
                self.save(note)
            await asyncio.sleep(max(0.0, note.next_attempt_at - time.time()))
            note.next_attempt_at = None
        copies = rule["copies"] if rule.get("action") == "duplicate" else 1
        await asyncio.gather(*(self._attempt(note) for _ in range(copies)))

    async def redeliver(self, notification_id):
        """Send the same event once more now (fresh timestamp, nonce and signature); returns the attempt.

        A 2xx ends a pending, failed or dropped notification as delivered; otherwise a pending one keeps its
        schedule and the others keep their status.
        """
        note = self.get(notification_id)
        return note, await self._attempt(note, redelivery=True)

    def get(self, notification_id):
        """The notification with this id, or 404."""
        note = self.by_id.get(notification_id)
        if note is None:
            raise SandboxError(404, "NOTIFICATION_NOT_EXIST", "通知不存在", {"id": notification_id})
        return note

    async def _attempt(self, note, redelivery=False):
        """One signed POST (fresh timestamp and nonce, same body), recorded and stored; returns the record."""
        mode, key, serial = self.creds.signer(self.config.notify_key_mode)
        headers = signed_headers(key, serial, note.body)
        if note.probe:
            headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + base64.b64encode(secrets.token_bytes(192)).decode()
        headers.update({"Content-Type": "application/json", "User-Agent": "Mozilla/4.0"})
        record = {"number": len(note.attempts) + 1, "at": clock.iso(clock.now()), "at_unix": time.time(),
                  "key_mode": mode, "serial": serial, "timestamp": headers["Wechatpay-Timestamp"]}
        if redelivery:
            record["redelivery"] = True
        note.attempts.append(record)
        request = HTTPRequest(note.notify_url, method="POST", body=note.body, headers=headers,
                              connect_timeout=ATTEMPT_TIMEOUT, request_timeout=ATTEMPT_TIMEOUT,
                              follow_redirects=False)
        started = time.monotonic()
        try:
            response = await self._http.fetch(request, raise_error=False)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a failed attempt
            record.update(status=None, error=str(exc))
        else:
            record["status"] = response.code if response.code != 599 else None
            record["body"] = (response.body or b"")[:2000].decode("utf-8", "replace")
            if response.code == 599:
                record["error"] = str(response.error)
        record["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        acknowledged = record["status"] is not None and 200 <= record["status"] < 300
        if acknowledged and not note.probe and note.status in ("pending", "failed", "dropped"):
            note.status, note.next_attempt_at = "delivered", None
        self.save(note)
        log.info("notification %s attempt %s -> %s", note.id, record["number"], record["status"])
        return record

    def find(self, **subject):
        """Notifications whose subject fields (out_trade_no, out_refund_no) match."""
        return [n for n in self.notifications if all(n.subject.get(k) == v for k, v in subject.items() if v)]

    async def close(self):
        """Stop every delivery still running (each stays pending in the store, to resume at the next start)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._http.close()
