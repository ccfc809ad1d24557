"""The one write path: apply a batch of events to the store so that no order, duplicate or stale retry moves it back.

`applier` plans and writes a batch (the max-register rule, cascades, jobs); `read_back` closes the races of
concurrent lanes; `overflow` moves a throttled directory to its own queue; `purge` erases a deleted directory. May
import the model only.
"""
