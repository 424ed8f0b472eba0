"""The Native-pay QR images. A WeChat Pay code URL never changes, so its PNG is built once, in a thread of its own
(qrcode renders in pure Python: tens of milliseconds that would otherwise hold the event loop), with at most
ADMITTED renders admitted at once (beyond, 503 at once), and kept in a bounded in-process cache."""
from __future__ import annotations

import asyncio
import io
from collections import OrderedDict

import qrcode
from qrcode.image.pure import PyPNGImage

import errors

from ..offload import BoundedThreads

CACHE_SIZE = 2048  # a PNG is about 300 bytes
ADMITTED = 4
_threads = BoundedThreads("qrcode", 1, ADMITTED, lambda: errors.service_unavailable("二维码生成繁忙，请稍后重试"))
_cache = OrderedDict()  # code_url -> PNG bytes, least recently used first
_rendering = {}  # code_url -> the render under way (one render however many ask at once)


def render(code_url: str) -> bytes:
    """The QR code of code_url as PNG bytes."""
    buffer = io.BytesIO()
    qrcode.make(code_url, image_factory=PyPNGImage, box_size=8, border=2).save(buffer)
    return buffer.getvalue()


async def png_of(code_url: str) -> bytes:
    """The PNG of code_url: from the cache, or rendered in the QR thread; 503 when ADMITTED renders are under way."""
    png = _cache.get(code_url)
    if png is not None:
        _cache.move_to_end(code_url)
        return png
    task = _rendering.get(code_url)
    if task is None:
        task = _rendering[code_url] = asyncio.ensure_future(_threads.run(render, code_url))
        task.add_done_callback(lambda _: _rendering.pop(code_url, None))
    png = await asyncio.shield(task)
    _cache[code_url] = png
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return png
