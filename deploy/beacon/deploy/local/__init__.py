"""Local, real infrastructure for the demo and the tests: Kafka (KRaft, from Maven Central jars) and
PostgreSQL 15 (initdb/pg_ctl), both under the project's state folder `.beacon/` (as root, PostgreSQL's
cluster lives in a folder of the postgres user's that `.beacon/pg` points to; see postgres.py)."""
