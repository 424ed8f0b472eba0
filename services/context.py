"""What the service functions share: settings and the clients opened once at start."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from telemetry import metrics

from .lifecycle.statuses import PAID, REFUND_COUNTED, SUCCESS

log = logging.getLogger("gym")


@dataclass
class AppContext:
    """Settings plus the long-lived clients; built by server.open_context()."""

    settings: object
    gateway: object = None  # services.wechat.pay_gateway.WeChatPayGateway
    verifier: object = None  # services.wechat.notification_verifier.NotificationVerifier
    redis: object = None  # redis.asyncio.Redis: redis_clients.requests (rate limits, readiness)
    redis_clients: object = None  # services.redis_client.RedisClients (closed with the context)
    open_api: object = None  # services.wechat.open_api.WeChatOpenAPI
    messages: object = None  # services.messages.subscribe_messages.MessageSender
    hub: object = None  # realtime.hub.Hub
    reconciler: object = None  # services.jobs.reconcile.Reconciler
    audit_sealer: object = None  # services.audit_trail.sealer.AuditSealer
    audit_verifier: object = None  # services.audit_trail.verify.Verifier
    bill_job: object = None  # services.jobs.bills.BillJob
    admission: object = None  # services.admission.Admission: this worker's budgets of expensive requests
    in_flight: int = 0  # HTTP requests being served (a draining worker waits for them)
    forwarded_for: object = None  # handlers.clientip.ForwardedForWatch (X-Forwarded-For from an untrusted peer)

    def count_message(self, kind, result):
        """A subscribe message was sent, will be retried, or failed for good."""
        metrics.SUBSCRIBE_MESSAGES.labels(kind, result).inc()

    def count_notification(self, kind, outcome):
        """A WeChat Pay notification ended with `outcome`."""
        metrics.NOTIFICATIONS.labels(kind, outcome).inc()

    async def committed(self, uow):
        """After a commit: count it, push the status changes, wake the message sender; never raises."""
        events = uow.events
        metrics.committed(uow, self.settings.reconcile_interval_seconds, REFUND_COUNTED)
        if events and self.hub is not None:
            try:
                await self.hub.publish(events)
            except Exception:  # noqa: BLE001 - a push that cannot go out never undoes the committed state
                log.exception("publishing %d status events failed", len(events))
        if self.messages is not None and (uow.messages_queued or any(e["status"] == PAID for e in events)
                                          or SUCCESS in uow.refunds):
            self.messages.kick()
