"""Keep-alive: a connection that stops answering pings is closed and forgotten by the Hub."""
import asyncio
import base64
import json
import os
import struct

import pytest

from tests.api import eventually


@pytest.fixture
def overrides():
    return {"WS_PING_INTERVAL_SECONDS": "0.2"}


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked


@pytest.mark.gen_test(timeout=30)
async def test_a_silent_connection_is_dropped(api, ctx, http_port):
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws/orders?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status_line = await reader.readline()
    assert b"101" in status_line
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    writer.write(_masked_text_frame(json.dumps({"op": "subscribe", "order_id": order["order_id"]})))
    await writer.drain()
    await eventually(lambda: ctx.hub.connection_count == 1, what="the subscription")
    # This client never answers the server's pings: within the ping timeout it is closed and unregistered.
    await eventually(lambda: ctx.hub.connection_count == 0, timeout=10, what="the dead connection to be dropped")
    writer.close()
