"""Leases in MySQL: one worker per order at a time, one runner per background job at a time."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
from contextlib import asynccontextmanager

from models import JobLease, PaymentOrder, utcnow

import errors


async def try_claim_order(order_pk: int, owner: str, seconds: float) -> bool:
    """Claim the order for `seconds` if nobody holds it; True when claimed."""
    now = utcnow()
    rows = await PaymentOrder.update(lease_owner=owner, lease_until=now + dt.timedelta(seconds=seconds)).where(
        (PaymentOrder.id == order_pk)
        & (PaymentOrder.lease_until.is_null() | (PaymentOrder.lease_until < now) | (PaymentOrder.lease_owner == owner))
    ).aio_execute()
    return rows == 1


async def release_order(order_pk: int, owner: str):
    """Give the order back."""
    await PaymentOrder.update(lease_owner=None, lease_until=None).where(
        (PaymentOrder.id == order_pk) & (PaymentOrder.lease_owner == owner)).aio_execute()


@asynccontextmanager
async def order_lease(order_pk: int, owner: str, seconds: float = 30, wait: float = 10):
    """Hold the order's lease for the block; waits up to `wait` seconds, then 503 SERVICE_UNAVAILABLE."""
    deadline = time.monotonic() + wait
    delay = 0.02
    while not await try_claim_order(order_pk, owner, seconds):
        if time.monotonic() > deadline:
            raise errors.service_unavailable("订单正在处理中，请稍后重试")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)
    try:
        yield
    finally:
        await release_order(order_pk, owner)


async def try_claim_job(name: str, owner: str, seconds: float) -> bool:
    """Claim a background job's lease; True when this process may run it now."""
    now = utcnow()
    await JobLease.insert(name=name, owner=None, lease_until=None).on_conflict(
        update={JobLease.name: JobLease.name}).aio_execute()
    rows = await JobLease.update(owner=owner, lease_until=now + dt.timedelta(seconds=seconds),
                                 runs=JobLease.runs + 1).where(
        (JobLease.name == name)
        & (JobLease.lease_until.is_null() | (JobLease.lease_until < now) | (JobLease.owner == owner))
    ).aio_execute()
    return rows == 1


async def release_job(name: str, owner: str):
    """Let another process take the job at once."""
    await JobLease.update(owner=None, lease_until=None).where(
        (JobLease.name == name) & (JobLease.owner == owner)).aio_execute()
