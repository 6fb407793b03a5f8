"""recorder: consume events in batches (main.py) → turn them into rows (project.py) → one Postgres
transaction per batch (store.py) → commit offsets; beside it, the deadline clock (deadlines.py) and
rebuilding the projection from the log (replay.py). Reading the projection is the reader's job."""
