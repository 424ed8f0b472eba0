"""A lean server-side WebSocket (RFC 6455) on a Tornado IOStream taken over after the HTTP handshake.

Why not tornado.websocket.WebSocketHandler: an idle socket of it keeps the whole handshake alive — the request and
its headers, the handler's dict, the response headers — and a chain of eight suspended coroutines (the handler's
`get`, the accept, the frame loop, the read) plus, with pings, a task per socket: about 15 KiB each (tracemalloc,
`bench/ws_heap.py`). Here the handshake handler finishes and is gone; a socket is this object (slots), its stream
and one pending read whose callback continues the parsing: a few KiB.

What it speaks: text and binary messages, fragmented or not, at most `max_message_size` bytes (a bigger one is
refused from its header, unread, with 1009); ping (answered pong), pong, close (echoed, then the TCP connection is
closed; ours waits CLOSE_WAIT_SECONDS for the client's). Masked or not, as Tornado accepts. No extension is
negotiated, so a frame with a reserved bit set ends the connection. The next frame is read only once the last
message's handler has finished (its coroutine included): one socket's messages are served one at a time.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct

from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask

log = logging.getLogger("gym.ws")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_WAIT_SECONDS = 5.0  # how long a close we started waits for the client's before the connection is cut
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest()).decode()


def _retrieve(future):
    """A write's outcome is not awaited: read it, so a closed stream logs no 'exception never retrieved'."""
    if not future.cancelled():
        future.exception()


class WireSocket:
    """One WebSocket over a detached IOStream. Subclasses implement on_message(message) (which may return an
    awaitable) and on_close()."""

    __slots__ = ("stream", "closing", "closed", "close_code", "pong_due", "_fin", "_opcode", "_masked", "_length",
                 "_fragments", "_fragments_opcode", "_close_timer", "_peer_closed")
    max_message_size = 1 << 20

    def __init__(self, stream):
        self.stream = stream
        self.closing = False  # a close frame was sent
        self.closed = False  # the TCP connection is gone
        self.close_code = None  # the client's close code, once it sent one
        self.pong_due = False  # a ping went out and no pong came back yet (the Hub's keep-alive)
        self._fragments = None
        self._fragments_opcode = None
        self._close_timer = None
        self._peer_closed = False
        stream.set_close_callback(self._stream_closed)

    # -- the hooks --------------------------------------------------------------------------------------------
    def on_message(self, message):
        """A complete text (str) or binary (bytes) message; may return an awaitable, awaited before the next."""

    def on_close(self):
        """The connection is gone."""

    # -- reading ----------------------------------------------------------------------------------------------
    def start(self):
        """Start reading frames."""
        self._read(2, self._on_header)

    def _read(self, n, then):
        if self.closed:
            return
        try:
            self.stream.read_bytes(n).add_done_callback(then)
        except StreamClosedError:
            pass  # _stream_closed runs

    @staticmethod
    def _bytes(future):
        """The bytes read, or None when the stream closed meanwhile."""
        if future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def _on_header(self, future):
        data = self._bytes(future)
        if data is None:
            return
        first, second = data[0], data[1]
        self._fin, self._opcode, self._masked = first & 0x80, first & 0x0F, second & 0x80
        length = second & 0x7F
        if first & 0x70 or (self._opcode & 0x8 and (length >= 126 or not self._fin)):
            self.abort()  # a reserved bit (no extension agreed), or a long or fragmented control frame
        elif length == 126:
            self._read(2, self._on_length)
        elif length == 127:
            self._read(8, self._on_length)
        else:
            self._payload(length)

    def _on_length(self, future):
        data = self._bytes(future)
        if data is not None:
            self._payload(struct.unpack("!H" if len(data) == 2 else "!Q", data)[0])

    def _payload(self, length):
        if length + (len(self._fragments) if self._fragments is not None else 0) > self.max_message_size:
            self.close(1009, "message too big")
            self.abort()
            return
        self._length = length
        if self._masked:
            self._read(4 + length, self._on_payload)
        elif length:
            self._read(length, self._on_payload)
        else:
            self._frame(b"")

    def _on_payload(self, future):
        data = self._bytes(future)
        if data is not None:
            self._frame(_websocket_mask(data[:4], data[4:]) if self._masked else data)

    def _frame(self, data):
        opcode = self._opcode
        if opcode == 0:  # a continuation
            if self._fragments is None:
                return self.abort()
            self._fragments.extend(data)
            if not self._fin:
                return self.start()
            opcode, data, self._fragments = self._fragments_opcode, bytes(self._fragments), None
        elif opcode in (TEXT, BINARY):
            if self._fragments is not None:
                return self.abort()  # a new message before the last one ended
            if not self._fin:
                self._fragments, self._fragments_opcode = bytearray(data), opcode
                return self.start()
        self._message(opcode, data)

    def _message(self, opcode, data):
        if opcode == TEXT:
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return self.abort()
        elif opcode == CLOSE:
            self.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            self._peer_closed = True
            self.close(self.close_code or 1000)  # the echo; then the connection ends
            return self.abort()
        elif opcode == PING:
            self._send(PONG, data)
            return self.start()
        elif opcode == PONG:
            self.pong_due = False
            return self.start()
        elif opcode != BINARY:
            return self.abort()
        if self.closing:
            return self.start()  # reading on only for the client's close
        try:
            handled = self.on_message(data)
        except Exception:  # noqa: BLE001 - as Tornado does: logged, and the connection ends
            log.exception("a WebSocket message handler failed")
            return self.abort()
        if handled is None:
            return self.start()
        asyncio.ensure_future(handled).add_done_callback(self._handled)

    def _handled(self, task):
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("a WebSocket message handler failed", exc_info=task.exception())
            return self.abort()
        self.start()

    # -- writing ----------------------------------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        """Send a text message; False when the connection is closing or gone."""
        return not self.closing and self._send(TEXT, text.encode("utf-8"))

    def ping(self) -> bool:
        """Send a ping; the pong clears pong_due."""
        self.pong_due = True
        return self._send(PING, b"")

    def _send(self, opcode, payload) -> bool:
        n = len(payload)
        head = (struct.pack("!BB", 0x80 | opcode, n) if n < 126 else
                struct.pack("!BBH", 0x80 | opcode, 126, n) if n < 1 << 16 else
                struct.pack("!BBQ", 0x80 | opcode, 127, n))
        try:
            self.stream.write(head + payload).add_done_callback(_retrieve)
        except StreamClosedError:
            return False
        return True

    # -- closing ----------------------------------------------------------------------------------------------
    def close(self, code=1000, reason=""):
        """Start the closing handshake; the connection is cut if the client does not answer in time."""
        if self.closing or self.closed:
            return
        self.closing = True
        self._send(CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:123])
        if not self._peer_closed:
            self._close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT_SECONDS, self.abort)

    def abort(self):
        """Cut the connection now (what was written is flushed first when the socket takes it)."""
        self.stream.close()

    def _stream_closed(self):
        if self.closed:
            return
        self.closed = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.on_close()
