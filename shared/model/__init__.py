"""The model: what a WorkOS event is, what the store holds and how it is keyed. Every stage speaks it.

`events` parses `dsync.*` events; `records` turns them into items with the max-register version (`vkey`); `schema`
names the single table's keys and indexes; `lanes` splits a directory into FIFO groups. Imports nothing of ours.
"""
