"""The Native-pay QR code under attack: asked for again and again (each once cost a pure-Python render on the event
loop), and a crowd of first renders at once (bounded: a quick 503 beyond, never a queue)."""
from __future__ import annotations

import asyncio
import io
import os
import time

import pytest
import qrcode
from qrcode.image.pure import PyPNGImage

from tests.api import Api
from tests.harness import ServiceProcess


def _service(service_env, name):
    env = dict(service_env)
    env.pop("PORT")
    return ServiceProcess(env, name=name)


def _cpu_seconds(pid) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _one_render_cpu(code_url) -> float:
    """What one render of this code URL costs here (the library's own work, timed in this process)."""
    started = time.process_time()
    for _ in range(10):
        qrcode.make(code_url, image_factory=PyPNGImage, box_size=8, border=2).save(io.BytesIO())
    return (time.process_time() - started) / 10


async def _qr(api, token, order_id):
    return await api.call("GET", f"/api/v1/payment/wxpay/qrcode/{order_id}", token=token)


@pytest.mark.gen_test(timeout=120)
async def test_a_qr_code_asked_300_times_is_built_once(service_env, sandbox, db):
    service = _service(service_env, "qr-cache")
    try:
        api = Api(service.url, sandbox)
        sid = await api.schedule()
        token, _ = await api.login()
        _, order = await api.order(token, sid)
        status, first, headers = await _qr(api, token, order["order_id"])
        assert status == 200 and headers["Content-Type"] == "image/png" and first.startswith(b"\x89PNG")
        code_url = (await api.control("GET", f"/sandbox/orders/{order['order_id']}"))["code_url"]
        before = _cpu_seconds(service.proc.pid)
        for _ in range(10):
            answers = await asyncio.gather(*[_qr(api, token, order["order_id"]) for _ in range(30)])
            assert all(status == 200 and png == first for status, png, _ in answers)
        spent = _cpu_seconds(service.proc.pid) - before
    finally:
        service.stop()
    render = _one_render_cpu(code_url)
    # Rendered each time, 300 answers would cost at least 300 renders of CPU; served from the cache, far less.
    assert spent < 0.5 * 300 * render, f"{spent:.2f} s of CPU for 300 answers; one render costs {render * 1000:.1f} ms"


@pytest.mark.gen_test(timeout=180)
async def test_a_crowd_of_first_renders_is_bounded_and_answered_at_once(service_env, sandbox, db):
    """40 orders whose WeChat Pay orders exist, their QR codes asked for all at once from a freshly started process
    (nothing cached): one render thread, four admitted, the rest 503 with Retry-After at once; each is served on a
    retry."""
    first = _service(service_env, "qr-setup")
    try:
        api = Api(first.url, sandbox)
        sid = await api.schedule(capacity=40)
        orders = []
        for _ in range(40):
            token, _ = await api.login()
            _, order = await api.order(token, sid)
            assert (await _qr(api, token, order["order_id"]))[0] == 200  # the WeChat Pay order placed
            orders.append((token, order["order_id"]))
    finally:
        first.stop()
    fresh = _service(service_env, "qr-crowd")
    try:
        api = Api(fresh.url, sandbox)
        answers = await asyncio.gather(*[_qr(api, token, order_id) for token, order_id in orders])
        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {200, 503} and 503 in statuses and statuses.count(200) >= 4
        assert all(headers.get("Retry-After") == "1" for status, _, headers in answers if status == 503)
        for (token, order_id), (status, _, _) in zip(orders, answers):
            while status == 503:  # the parent's page asks again
                await asyncio.sleep(0.05)  # a client's retry pacing, not a wait for a condition
                status, png, _ = await _qr(api, token, order_id)
            assert status == 200
    finally:
        fresh.stop()
