"""The SQL sink: the directory mirror kept in the app's own PostgreSQL, under the mirror's write rule.

- `migrate`: the schema (`migrations/NNNN_*.sql`), applied idempotently by `dsync sql migrate`;
- `rows`: what a mirror item (or its image in the table's stream) is as a sink row, at its version;
- `writer`: the one write rule, an upsert that lands only when its version is newer; one call, one transaction;
- `reader`: the live views read back in the export's shape.
"""
