"""recorder (`beacon-recorder`, __main__.py, or `beacon recorder`): consume events in batches (main.py) →
turn them into rows (project.py, pure) → one Postgres transaction per batch (store.py) → commit offsets;
beside it, the deadline clock (deadlines.py), rebuilding the projection from the log (replay.py) and
labelling recorded answers again (reclassify.py). bootstrap.py makes its Kafka clients and connections.
Reading the projection is the reader's job."""
