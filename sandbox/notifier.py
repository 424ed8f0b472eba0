"""Signed, encrypted notifications to merchants, redelivered on WeChat Pay's schedule until acknowledged."""
import asyncio
import base64
import json
import secrets
import logging
import time

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from . import clock
from .crypto import encrypt_resource, random_text, signed_headers

log = logging.getLogger("sandbox.notifier")

# Seconds between attempts after the first one (15 retries, 24h4m), multiplied by --time-scale.
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
ATTEMPT_TIMEOUT = 5.0  # seconds the merchant has to answer; real seconds, not scaled
ACTIONS = ("drop", "duplicate", "delay")


class Notification:
    """One event (one id) and every attempt made to deliver it."""

    def __init__(self, event_type, summary, original_type, plaintext, notify_url, subject):
        self.id = "EV-" + clock.now().strftime("%Y%m%d%H%M%S") + random_text(8, "0123456789")
        self.event_type = event_type
        self.notify_url = notify_url
        self.subject = subject
        self.plaintext = plaintext
        self.created_at = clock.now()
        self.status = "pending"
        self.rule = None
        self.attempts = []
        self.next_attempt_in = None
        self.body = None
        self.summary = summary
        self.original_type = original_type
        self.probe = False

    def view(self):
        """JSON for the control API."""
        return {
            "id": self.id, "event_type": self.event_type, "notify_url": self.notify_url,
            "status": self.status, "rule": self.rule, "created_at": clock.iso(self.created_at),
            "next_attempt_in_seconds": self.next_attempt_in, "attempts": list(self.attempts),
            "plaintext": self.plaintext, "body": self.body.decode("utf-8") if self.body else None,
            "probe": self.probe, **self.subject,
        }


class Notifier:
    """Builds, signs and delivers notifications in the background; rules can drop, duplicate or delay them."""

    def __init__(self, creds, config, time_scale):
        self.creds = creds
        self.config = config
        self.time_scale = time_scale
        self.notifications = []
        self.rules = []
        self._tasks = set()
        self._http = AsyncHTTPClient(force_instance=True, max_clients=100)

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
        note = Notification(event_type, summary, original_type, plaintext, notify_url, subject)
        note.probe = probe
        resource = encrypt_resource(self.creds.apiv3_key, json.dumps(plaintext, ensure_ascii=False,
                                                                      separators=(",", ":")), original_type)
        resource["original_type"] = original_type
        envelope = {
            "id": note.id, "create_time": clock.iso(note.created_at), "resource_type": "encrypt-resource",
            "event_type": event_type, "summary": summary, "resource": resource,
        }
        note.body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        note.rule = None if probe else self._take_rule()
        self.notifications.append(note)
        task = asyncio.get_running_loop().create_task(self._deliver(note))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return note

    async def _deliver(self, note):
        rule = note.rule or {}
        if note.probe:
            await self._attempt(note)
            note.status = "probed"
            return
        if rule.get("action") == "drop":
            note.status = "dropped"
            return
        if rule.get("action") == "delay":
            note.next_attempt_in = rule["delay_seconds"]
            await asyncio.sleep(rule["delay_seconds"])
        copies = rule["copies"] if rule.get("action") == "duplicate" else 1
        results = await asyncio.gather(*(self._attempt(note) for _ in range(copies)))
        for wait in RETRY_SCHEDULE:
            if any(results):
                break
            note.next_attempt_in = wait * self.time_scale
            await asyncio.sleep(wait * self.time_scale)
            results = [await self._attempt(note)]
        note.next_attempt_in = None
        note.status = "delivered" if any(results) else "failed"

    async def _attempt(self, note):
        """One signed POST (fresh timestamp and nonce, same body); True on a 2xx answer."""
        mode = self.config.notify_key_mode
        key, serial = self.creds.signing_key(mode)
        headers = signed_headers(key, serial, note.body)
        if note.probe:
            headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + base64.b64encode(secrets.token_bytes(192)).decode()
        headers.update({"Content-Type": "application/json", "User-Agent": "Mozilla/4.0"})
        record = {"number": len(note.attempts) + 1, "at": clock.iso(clock.now()), "at_unix": time.time(),
                  "key_mode": mode, "serial": serial, "timestamp": headers["Wechatpay-Timestamp"]}
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
        ok = record["status"] is not None and 200 <= record["status"] < 300
        log.info("notification %s attempt %s -> %s", note.id, record["number"], record["status"])
        return ok

    def find(self, **subject):
        """Notifications whose subject fields (out_trade_no, out_refund_no) match."""
        return [n for n in self.notifications if all(n.subject.get(k) == v for k, v in subject.items() if v)]

    async def close(self):
        """Stop every delivery still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._http.close()
