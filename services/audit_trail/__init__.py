"""The sealed audit trail (contract §2 Operators, "The audit trail is tamper-evident").

The hot paths write `payment_audit_log` rows unsealed, in their own transactions, as before (services/audit.py):
nothing on a request's path waits for the seal or touches a shared row. One sealer across every process (the
holder of the `audit-seal` job lease, services/leases.py) then seals the committed rows in id order, about once a
second:

- `personal_digest` = HMAC(personal key, the row's personal parts: ip_address, user_agent, request_data,
  response_data, as the stored strings: they may be encrypted or masked values, the digest does not care);
- `seal` = HMAC(seal key, previous row's seal | the row's other columns | personal_digest), the first row chained to
  GENESIS; `audit_seal_head` keeps the last sealed id, its seal and the count.

So a sealed row changed, removed (the next row's seal no longer follows) or inserted among the sealed ones (an
unsealed row below the head, or a seal that does not chain) shows in `verify` (seal.py, verify.py), which the API
(`GET /api/v1/admin/audit/verify`), `manage.py verify-audit`, the back office and the sealer's periodic check share.
The personal parts enter the seal only as their digest, so that the retention job (retention.py) can erase them
after PERSONAL_DATA_RETENTION_DAYS and every seal still verifies: an erased row is accepted where a sealed
`personal_data_erased` row covers it. Once a day the head (seal and count) is written outside the database
(checkpoints.py: the log and a file in AUDIT_CHECKPOINT_DIR), so that even a rewrite of the tail and of the head row
together shows against the checkpoint.

Modules: `seal` (keys, the canonical row, digest and seal), `sealer` (the job), `verify`, `checkpoints`,
`retention`.
"""
