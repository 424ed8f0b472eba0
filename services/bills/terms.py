"""The words of the reconciliation (contract §2 Operators), defined once: a run's statuses, the discrepancies'
kinds, categories and resolutions."""
from __future__ import annotations

# A reconciliation's status.
MATCHED, DISCREPANCIES, NO_TRADES, NOT_READY, FAILED = "matched", "discrepancies", "no_trades", "not_ready", "failed"
RUNNING = "running"  # a run under way (never answered: a day's last run is one that ended)
RUN_STATUSES = (MATCHED, DISCREPANCIES, NO_TRADES, NOT_READY, FAILED)
# The runs that compared the bill with the ledger: the day is reconciled (the job stops trying it).
COMPARED = (MATCHED, DISCREPANCIES, NO_TRADES)

PAYMENT, REFUND = "payment", "refund"
KINDS = (PAYMENT, REFUND)

MISSING_IN_LEDGER, MISSING_AT_WECHAT, AMOUNT_MISMATCH = "missing_in_ledger", "missing_at_wechat", "amount_mismatch"
CATEGORIES = (MISSING_IN_LEDGER, MISSING_AT_WECHAT, AMOUNT_MISMATCH)

MENDED, ACCEPTED, WRITTEN_OFF = "mended", "accepted", "written_off"
DECISIONS = (ACCEPTED, WRITTEN_OFF)  # what a person may record
RESOLUTIONS = (MENDED, *DECISIONS)

MAX_NOTE = 500
