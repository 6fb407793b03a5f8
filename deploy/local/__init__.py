"""Local, real infrastructure for the demo and the tests: Kafka (KRaft, from Maven Central jars) and
PostgreSQL 15 (initdb/pg_ctl), both under the project's state folder `.beacon/`."""
