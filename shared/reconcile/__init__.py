"""Source 3, reconcile: list WorkOS's state and repair the store by the same write rule, within WorkOS's limits.

`run` runs one directory's phases (`phases`) with a checkpoint (`checkpoint`) and a lease, writing through `writes`
(the apply stage's write rule); `jobs` plans waves (`wave_budget`) and runs work-queue jobs; `health` records each
directory's state at WorkOS; `deletion_guard` holds deletions without evidence or past the limits; `report` its
metrics. May import the model, the apply stage's write rule and purge, and the cross-cutting lease and key check.
"""
