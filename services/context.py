"""What the service functions share: settings and the clients opened once at start."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

log = logging.getLogger("gym")


@dataclass
class AppContext:
    """Settings plus the long-lived clients; built by server.open_context()."""

    settings: object
    gateway: object = None  # services.wechatpay.WeChatPayGateway
    verifier: object = None  # services.wechatpay_notify.NotificationVerifier
    redis: object = None  # redis.asyncio.Redis
    open_api: object = None  # services.wechat_open.WeChatOpenAPI
    publisher: object = None  # realtime publisher: async publish(events)
    notices: object = None  # services.notices.BookingNotices
    hub: object = None  # realtime.hub.Hub
    reconciler: object = None  # services.reconcile.Reconciler
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{id(object())}")

    async def publish(self, events):
        """Hand committed status changes to the realtime publisher; never raises."""
        if not events or self.publisher is None:
            return
        try:
            await self.publisher.publish(events)
        except Exception:  # noqa: BLE001 - a push that cannot go out never undoes the committed state
            log.exception("publishing %d status events failed", len(events))
        if self.notices is not None and any(e["status"] == "paid" for e in events):
            self.notices.kick()
