"""Finance's decision on a discrepancy that was not mended: `accepted` or `written_off`, with a note, audited.

A decision may be changed (each change audited with the one before); a mended discrepancy needs none and takes
none (409 DISCREPANCY_MENDED)."""
from __future__ import annotations

import errors
from models import BillDiscrepancy, PaymentOrder, utcnow

from .. import audit
from ..uow import run_in_transaction
from .terms import DECISIONS, MAX_NOTE, MENDED
from .views import discrepancy, operators_of


def _parse(body: dict):
    resolution, note = body.get("resolution"), body.get("note")
    if resolution not in DECISIONS:
        raise errors.invalid_request("resolution 必须是 accepted 或 written_off", field="resolution")
    if not isinstance(note, str) or not note.strip() or len(note.strip()) > MAX_NOTE:
        raise errors.invalid_request(f"note 必填，1 到 {MAX_NOTE} 个字", field="note")
    return resolution, note.strip()


async def _decide(uow, discrepancy_id, resolution, note, operator, actor):
    row = await BillDiscrepancy.select().where(BillDiscrepancy.id == discrepancy_id).for_update().aio_first()
    if row is None:
        raise errors.not_found("对账差异不存在")
    if row.resolution == MENDED:
        raise errors.ServiceError(409, "DISCREPANCY_MENDED", "该差异已按微信支付的查询结果自动修复，无需处理")
    old = row.resolution
    now = utcnow()
    await BillDiscrepancy.update(resolution=resolution, note=note, resolved_by=operator.id, resolved_at=now,
                                 updated_at=now).where(BillDiscrepancy.id == row.id).aio_execute()
    order = await PaymentOrder.select().where(PaymentOrder.id == row.order_id).aio_first() if row.order_id else None
    await audit.record(f"bill_discrepancy_{resolution}", actor, order=order, entity="bill", old_status=old,
                       new_status=resolution,
                       detail=f"{row.bill_date} {row.kind} {row.category} {row.ref}: {note}"[:2000])
    return row.id


async def decide(ctx, discrepancy_id: int, body: dict, operator, actor) -> dict:
    """PATCH /api/v1/admin/bills/discrepancies/{id}: record the decision; the discrepancy as it now stands."""
    resolution, note = _parse(body)
    did = await run_in_transaction(ctx, _decide, discrepancy_id, resolution, note, operator, actor)
    row = await BillDiscrepancy.select().where(BillDiscrepancy.id == did).aio_get()
    return discrepancy(row, await operators_of([row]))
