"""recorder: consume events in batches (main.py) → turn them into rows (project.py) → one Postgres
transaction per batch (store.py) → commit offsets. Reading the projection: queries.py, status.py."""
