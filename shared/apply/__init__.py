"""The one write path: apply a batch of events to the store so that no order, duplicate or stale retry moves it back.

`applier` orchestrates a batch: `planning` decides the records, writes, cascades and jobs it implies, `execution`
performs them (reads per directory, parallel writes, jobs, cascades, read-back); `write_rule` is the conditional
write and the membership cascade every source and sink shares; `ports` the store, queues, errors and outcomes;
`read_back` closes the races of concurrent lanes; `overflow` moves a throttled directory to its own queue; `purge`
erases a deleted directory. May import the model only.
"""
