"""EVENT_LOOP: the service runs on uvloop by default and on the standard library's asyncio loop when asked; both
carry a payment end to end (order, prepay, WeChat Pay's notification, the push on the WebSocket)."""
import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from tests.api import Api
from tests.harness import ServiceProcess


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
@pytest.mark.gen_test(timeout=60)
async def test_a_payment_end_to_end_on_either_event_loop(event_loop, service_env, sandbox, db):
    env = {**service_env, "EVENT_LOOP": event_loop}
    env.pop("PORT")
    service = ServiceProcess(env, name=f"loop-{event_loop}")
    try:
        with open(service.log_path, encoding="utf-8") as fh:
            assert f"serving on the {event_loop} event loop" in fh.read()
        api = Api(service.url, sandbox)
        _, token, _, order, params = await api.order_in_payment()
        assert params["package"].startswith("prepay_id=")
        conn = await websocket_connect(service.url.replace("http://", "ws://") + "/ws/orders?token=" + token)
        conn.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
        assert json.loads(await asyncio.wait_for(conn.read_message(), 10))["status"] == "pending"
        await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
        while True:
            frame = json.loads(await asyncio.wait_for(conn.read_message(), 15))
            if frame.get("status") == "paid":
                break
        assert frame["reservation_status"] == "confirmed"
        conn.close()
    finally:
        service.stop()


def test_an_unknown_event_loop_is_refused(service_env):
    import settings as settings_module

    with pytest.raises(settings_module.SettingsError, match="EVENT_LOOP"):
        settings_module.load({**service_env, "EVENT_LOOP": "trio"})


def test_the_default_is_uvloop(service_env):
    import settings as settings_module

    env = {k: v for k, v in service_env.items() if k != "EVENT_LOOP"}
    assert settings_module.load(env).event_loop == "uvloop"
