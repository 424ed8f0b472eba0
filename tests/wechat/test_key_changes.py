"""Key changes drop nothing: WeChat Pay (the sandbox) changes each kind of key in the middle of a notification
storm, the operator reconfigures the service as docs/deploy.md says, and every payment is applied exactly once;
random serials cannot make the service download certificates without end; the previous APIv3 key is what saves a
notification encrypted before a key change.

The reconciler is kept out of the way (RECONCILE_INTERVAL_SECONDS=3600): notifications alone must carry every
payment here, so that one dropped during a change would show.
"""
import asyncio
import os
import re
import secrets
import subprocess
import sys
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization

from services.wechat.notification_verifier import PREVIOUS_KEY_REASON
from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, notifications, orders_in_payment,
)
from tests.forge import Forger
from tests.harness import ROOT, http_json, read_env_file

RECONCILE = "3600"
PER_STEP = 6
CALLBACK = "/api/v1/payment/wxpay/callback"
NO_PUBLIC_KEY = {"WECHATPAY_PUBLIC_KEY_FILE": None, "WECHATPAY_PUBLIC_KEY_ID": None}


class Operator:
    """Runs the service as an operator would: one process on one port (the notify URL WeChat Pay knows), restarted
    with new settings when a change needs it, the new values read from the sandbox as from the merchant platform."""

    def __init__(self, services, sandbox, env):
        self.services, self.sandbox, self.env = services, sandbox, env
        self.process = None

    def start(self, name, **changes):
        """(Re)start the service with these settings changed (None removes one)."""
        port = None
        if self.process is not None:
            port = self.process.port
            self.process.stop()
        self.env = {k: v for k, v in {**self.env, **changes}.items() if v is not None}
        self.process = self.services(self.env, name, port=port)
        return self.process

    def from_sandbox(self, *names):
        """These settings as the sandbox gives them now (its service.env, rewritten at each key change)."""
        fresh = read_env_file(os.path.join(self.sandbox.state_dir, "service.env"))
        return {name: fresh.get(name) for name in names}

    def metric(self, name, **labels):
        """A sample of the service's /metrics (0 when absent)."""
        _, text, _ = http_json("GET", self.process.url + "/metrics")
        text = text.decode() if isinstance(text, bytes) else str(text)
        for found, value in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.M):
            if dict(re.findall(r'(\w+)="([^"]*)"', found)) == labels:
                return float(value)
        return 0.0


async def pay(api, order_ids):
    """The payers pay, a few milliseconds apart: WeChat Pay sends each payment's notification."""
    for order_id in order_ids:
        await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        await asyncio.sleep(0.02)


async def first_attempts_answered(api, order_ids):
    """Every one of these orders' notifications has had its first attempt answered; their statuses."""
    notes = await notifications(api, order_ids)
    answered = [n["attempts"][0].get("status") for n in notes if n["attempts"] and "elapsed_ms" in n["attempts"][0]]
    return answered if len(answered) == len(order_ids) else None


async def step(api, sid, change, react=None, queued=2, queued_seconds=1.5):
    """PER_STEP orders paid around one key change; their ids once every notification was acknowledged.

    The first half is paid before `change`, the first `queued` of them held back `queued_seconds` (created before
    the change, sent after it) and the next one delivered twice at once; the second half is paid after it; then
    `react(second_half)` is the operator's reaction.
    """
    ids = [order_id for _, order_id in await orders_in_payment(api, sid, PER_STEP)]
    await api.control("POST", "/sandbox/notifications/next",
                      {"action": "delay", "count": queued, "delay_seconds": queued_seconds})
    await api.control("POST", "/sandbox/notifications/next", {"action": "duplicate", "count": 2, "copies": 2})
    half = PER_STEP // 2
    await pay(api, ids[:half])
    await change()
    await pay(api, ids[half:])
    if react is not None:
        await react(ids[half:])
    await eventually(lambda: all_delivered(api, ids), timeout=60, what="every notification of the step acknowledged")
    return ids


async def key_change(api, kind):
    """WeChat Pay changes a key (the merchant did it on the merchant platform)."""
    return await api.control("POST", f"/sandbox/keys/{kind}", {})


def sandbox_config(api, **config):
    """A coroutine function setting the sandbox's signing modes."""
    return lambda: api.control("POST", "/sandbox/config", config)


async def inbox(api, order_ids=None, **filters):
    """The notification inbox as operators see it (GET /api/v1/admin/notifications, every page), only the rows of
    `order_ids` when given."""
    token = await api.admin_token("finance")
    items, cursor = [], None
    while True:
        query = urlencode({**filters, "limit": 200, **({"cursor": cursor} if cursor else {})})
        status, page, _ = await api.call("GET", f"/api/v1/admin/notifications?{query}", token=token)
        assert status == 200, page
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items if order_ids is None else [i for i in items if i["out_trade_no"] in set(order_ids)]


async def last_request(api):
    """The sequence number of the last API request the sandbox answered."""
    return max([r["seq"] for r in (await api.control("GET", "/sandbox/requests"))["items"]] or [0])


async def certificate_downloads(api):
    """How many times the sandbox answered GET /v3/certificates."""
    return len((await api.control("GET", "/sandbox/requests?path_prefix=/v3/certificates"))["items"])


@pytest.mark.gen_test(timeout=400)
async def test_every_key_change_mid_storm_loses_and_doubles_no_payment(keys_sandbox, fault_db, server_env,
                                                                       services, tmp_path):
    op = Operator(services, keys_sandbox, service_env(keys_sandbox, fault_db, server_env["REDIS_URL"],
                                                      tmp_path / "certs", RECONCILE_INTERVAL_SECONDS=RECONCILE))
    keys_sandbox.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
    op.start("keys-cert-mode", **NO_PUBLIC_KEY)
    api = Api(op.process.url, keys_sandbox)
    sid = await api.schedule(capacity=PER_STEP * 8)
    paid = []

    # 1. Certificate mode, a new platform certificate: the service downloads it when it first sees its serial.
    paid += await step(api, sid, lambda: key_change(api, "platform-certificate"))

    # 2. Certificate → public key: the operator configures the public key first, then WeChat Pay signs notifications
    # and answers with either (its gray switch), then with the public key alone.
    op.start("keys-public-key", **op.from_sandbox("WECHATPAY_PUBLIC_KEY_FILE", "WECHATPAY_PUBLIC_KEY_ID"))
    paid += await step(api, sid, sandbox_config(api, notify_key_mode="either", answer_key_mode="either"))

    # 3. A new platform certificate during the switch: in public-key mode, a notification or answer signed with it
    # is verified with the certificate, downloaded on first sight.
    downloads, since = await certificate_downloads(api), await last_request(api)
    paid += await step(api, sid, lambda: key_change(api, "platform-certificate"))
    assert await certificate_downloads(api) > downloads
    answers = (await api.control("GET", "/sandbox/requests?path_prefix=/v3/pay/transactions"))["items"]
    assert {"cert", "pubkey"} <= {a["signed_with"] for a in answers if a["seq"] > since and a["status"] == 200}
    paid += await step(api, sid, sandbox_config(api, notify_key_mode="pubkey", answer_key_mode="request"))

    # 4. A new APIv3 key: notifications made after it are refused (400) until the operator restarts with the new
    # key and the previous one; those made before it, still redelivered, open with the previous key.
    async def restart_with_new_apiv3_key(after):
        assert set(await eventually(lambda: first_attempts_answered(api, after))) == {400}
        op.start("keys-apiv3", **op.from_sandbox("WECHATPAY_APIV3_KEY_FILE", "WECHATPAY_APIV3_KEY_PREVIOUS_FILE"))

    apiv3_step = await step(api, sid, lambda: key_change(api, "apiv3-key"), restart_with_new_apiv3_key,
                            queued_seconds=5)
    paid += apiv3_step
    assert PREVIOUS_KEY_REASON in {r["reason"] for r in await inbox(api, apiv3_step)}
    assert op.metric("gym_wechatpay_apiv3_decrypts_total", what="notification", key="previous") >= 1

    # 5. A new platform public key (a new PUB_KEY_ID): refused (401) until the operator restarts with it.
    async def restart_with_new_public_key(after):
        assert set(await eventually(lambda: first_attempts_answered(api, after))) == {401}
        op.start("keys-new-public-key", **op.from_sandbox("WECHATPAY_PUBLIC_KEY_FILE", "WECHATPAY_PUBLIC_KEY_ID"))

    paid += await step(api, sid, lambda: key_change(api, "public-key"), restart_with_new_public_key)

    # 6. A new merchant certificate: payments go on while the operator restarts with it and revokes the old one.
    old_serial = op.env["WECHATPAY_CERT_SERIAL_NO"]

    async def restart_with_new_merchant_certificate(after):
        op.start("keys-merchant", **op.from_sandbox("WECHATPAY_CERT_SERIAL_NO", "WECHATPAY_PRIVATE_KEY_FILE"))
        await api.control("POST", f"/sandbox/keys/merchant-certificate/{old_serial}/revoke")

    paid += await step(api, sid, lambda: key_change(api, "merchant-certificate"),
                       restart_with_new_merchant_certificate)
    paid += await step(api, sid, lambda: asyncio.sleep(0))  # ordered, prepaid and paid with the new one alone

    await assert_paid_exactly_once(paid)
    receipts = await inbox(api, paid)
    assert len(receipts) == len(paid) and {r["outcome"] for r in receipts} <= {"applied", "duplicate"}
    attempts = [a for n in await notifications(api, paid) for a in n["attempts"]]
    assert {400, 401} <= {a.get("status") for a in attempts} <= {204, 400, 401, None}
    await assert_invariants(float(RECONCILE))
    # At the command's default pace (10 queries a second, for the real WeChat Pay) the 48 queries took 5 s.
    run = subprocess.run([sys.executable, "manage.py", "check-invariants", "--wechatpay", "--days", "1",
                          "--rate", "100"], cwd=ROOT, env={**os.environ, **op.env}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "all invariants hold", run.stdout + run.stderr


@pytest.mark.gen_test(timeout=120)
async def test_an_old_key_notification_needs_the_previous_apiv3_key(keys_sandbox, fault_db, server_env, services,
                                                                    tmp_path):
    op = Operator(services, keys_sandbox, service_env(keys_sandbox, fault_db, server_env["REDIS_URL"],
                                                      tmp_path / "certs", RECONCILE_INTERVAL_SECONDS=RECONCILE))
    op.start("apiv3-before")
    api = Api(op.process.url, keys_sandbox)
    sid = await api.schedule(capacity=2)
    token, old = (await orders_in_payment(api, sid, 1))[0]
    await api.control("POST", "/sandbox/notifications/next", {"action": "delay", "delay_seconds": 4})
    await pay(api, [old])  # encrypted now, with the key of before; sent in 4 s
    await key_change(api, "apiv3-key")

    # Control: the new key alone. The old notification is refused with 400, again and again, and nothing is paid.
    op.start("apiv3-new-key-only", **op.from_sandbox("WECHATPAY_APIV3_KEY_FILE"))
    [note] = await notifications(api, [old])
    assert note["apiv3_key_generation"] == 1

    async def refused_three_times():
        [n] = await notifications(api, [old])
        answered = [a["status"] for a in n["attempts"] if "elapsed_ms" in a]
        assert set(answered) <= {400, None}, answered
        return answered.count(400) >= 3

    await eventually(refused_three_times, timeout=30, what="three refusals of the old-key notification")
    assert (await api.get_order(token, old))["status"] == "pending"
    refused = await inbox(api, outcome="refused")
    assert {(r["http_status"], r["reason"]) for r in refused} == {(400, "resource does not decrypt with the APIv3 key")}
    # A notification made after the change opens with the new key.
    new = (await orders_in_payment(api, sid, 1))[0][1]
    await pay(api, [new])

    # With WECHATPAY_APIV3_KEY_PREVIOUS as well, the next redelivery of the old one is applied.
    op.start("apiv3-with-previous", **op.from_sandbox("WECHATPAY_APIV3_KEY_FILE", "WECHATPAY_APIV3_KEY_PREVIOUS_FILE"))
    await eventually(lambda: all_delivered(api, [old, new]), timeout=30, what="both notifications acknowledged")
    await assert_paid_exactly_once([old, new])
    reasons = {r["out_trade_no"]: r["reason"] for r in await inbox(api, [old, new])}
    assert reasons == {old: PREVIOUS_KEY_REASON, new: None}
    assert op.metric("gym_wechatpay_apiv3_decrypts_total", what="notification", key="previous") == 1
    with open(op.process.log_path, encoding="utf-8") as fh:
        log = fh.read()
    assert PREVIOUS_KEY_REASON in log
    for path in (op.env["WECHATPAY_APIV3_KEY_FILE"], op.env["WECHATPAY_APIV3_KEY_PREVIOUS_FILE"]):
        with open(path, encoding="ascii") as fh:
            assert fh.read().strip() not in log  # which key, never the key


@pytest.mark.gen_test(timeout=120)
async def test_random_serials_cannot_make_the_service_download_certificates_without_end(
        keys_sandbox, fault_db, server_env, services, tmp_path):
    op = Operator(services, keys_sandbox, service_env(keys_sandbox, fault_db, server_env["REDIS_URL"],
                                                      tmp_path / "certs", RECONCILE_INTERVAL_SECONDS=RECONCILE))
    op.start("serial-flood")
    api = Api(op.process.url, keys_sandbox)
    sid = await api.schedule(capacity=3)
    orders = [order_id for _, order_id in await orders_in_payment(api, sid, 2)]
    forger = Forger(keys_sandbox.state_dir, keys_sandbox.env)
    stranger = Forger.stranger_key()
    body = forger.body(forger.transaction(orders[0]))
    serials = [secrets.token_hex(16).upper() for _ in range(100)]

    async def forged(serial):
        status, _, _ = await api.call("POST", CALLBACK, raw=body, headers=forger.headers(body, key=stranger,
                                                                                          serial=serial))
        return status

    flood = [asyncio.ensure_future(forged(s)) for s in serials]
    await pay(api, orders[:1])  # a genuine notification in the middle of the flood
    assert set(await asyncio.gather(*flood)) == {401}
    # The same serials again, and new ones: still refused, and nothing more is downloaded.
    assert set(await asyncio.gather(*[forged(s) for s in serials[:50] + [secrets.token_hex(8) for _ in range(50)]]))\
        == {401}
    assert await certificate_downloads(api) == 1
    await eventually(lambda: all_delivered(api, orders[:1]), what="the genuine notification applied")
    [genuine] = await notifications(api, orders[:1])
    assert [a["status"] for a in genuine["attempts"]] == [204]  # at its first attempt, flood or not

    # WeChat Pay signs with its certificate: the one download of the flood brought it, so no other is needed.
    await api.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
    await pay(api, orders[1:])
    await eventually(lambda: all_delivered(api, orders[1:]), what="the certificate-signed notification applied")
    assert [a["status"] for a in (await notifications(api, orders[1:]))[0]["attempts"]] == [204]
    assert await certificate_downloads(api) == 1
    await assert_paid_exactly_once(orders)
    refused = await inbox(api, outcome="refused")
    assert {r["reason"] for r in refused} == {"unknown platform certificate serial"}
    assert sum(r["deliveries"] for r in refused) == 200


@pytest.mark.gen_test(timeout=120)
async def test_certificate_mode_keeps_every_valid_certificate(keys_sandbox, fault_db, server_env, services,
                                                              tmp_path):
    op = Operator(services, keys_sandbox, service_env(keys_sandbox, fault_db, server_env["REDIS_URL"],
                                                      tmp_path / "certs", RECONCILE_INTERVAL_SECONDS=RECONCILE))
    keys_sandbox.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
    op.start("cert-mode-overlap", **NO_PUBLIC_KEY)
    api = Api(op.process.url, keys_sandbox)
    sid = await api.schedule(capacity=2)
    token, old_signed = (await orders_in_payment(api, sid, 1))[0]
    new_signed = (await orders_in_payment(api, sid, 1))[0][1]
    first = (await api.control("GET", "/sandbox/keys"))["platform_certificates"][0]
    await key_change(api, "platform-certificate")

    # WeChat Pay signs with the new certificate from now on; during the overlap it may still sign with the old one.
    await pay(api, [new_signed])
    await eventually(lambda: all_delivered(api, [new_signed]), what="the new certificate's notification applied")
    placed = await api.control("POST", f"/sandbox/orders/{old_signed}/pay", {"notify": False})
    forger = Forger(keys_sandbox.state_dir, keys_sandbox.env)
    with open(os.path.join(keys_sandbox.state_dir, "platform_cert_private_key.pem"), "rb") as fh:
        old_key = serialization.load_pem_private_key(fh.read(), None)
    body = forger.body(placed["order"]["transaction"])
    status, answer, _ = await api.call("POST", CALLBACK, raw=body,
                                       headers=forger.headers(body, key=old_key, serial=first["serial_no"]))
    assert status == 204, answer
    await assert_paid_exactly_once([old_signed, new_signed])
    assert (await api.get_order(token, old_signed))["status"] == "paid"
