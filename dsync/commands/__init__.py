"""The operator's commands behind `dsync`, one module per family; `dsync.cli` parses and dispatches to them.

`mirror` (status, export), `redrive`, `webhooks` (send-test-event), `reconcile` (reconcile, check-key) and `replay`.
Each works on the local stack and on a deployed one (`dsync.targets`).
"""
