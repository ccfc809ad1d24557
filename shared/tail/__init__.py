"""Source 2, the Events API tail: read WorkOS's ordered event stream into the same queue, with a cursor.

`poller` is one invocation's polling loop; `cursor` its compare-and-set cursor, lease and parked events; `report`
its metrics; `replay` re-reads a window on request. May import the model, the ingest stage's message builder, and
the cross-cutting lease and key check.
"""
