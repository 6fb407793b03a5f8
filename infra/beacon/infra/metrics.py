"""Prometheus metrics, declared once. Each process serves its own at GET /metrics: the recorder the
projection's, the reader the reads', the runner's are counted (and visible in its logs)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("beacon_events_consumed_total", "Events read from a topic", ["topic"])
EVENTS_PRODUCED = Counter("beacon_events_produced_total", "Events written to a topic", ["topic"])
BATCH_SIZE = Histogram(
    "beacon_recorder_batch_size", "Events per recorder batch", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000)
)
WRITE_SECONDS = Histogram(
    "beacon_recorder_write_seconds",
    "Time to write one batch to PostgreSQL (one transaction)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ROWS_INSERTED = Counter("beacon_recorder_rows_inserted_total", "Execution rows inserted")
DUPLICATES = Counter("beacon_recorder_duplicates_suppressed_total", "Events whose cell was already recorded")
STRAY_RESULTS = Counter(
    "beacon_recorder_stray_results_total",
    "Results and expansions dead-lettered as no cell of a known job (reason: wrong_topic, key_mismatch, "
    "producer_region, out_of_spec, job_never_arrived)",
    ["reason"],
)
RESULTS_WAITING = Gauge("beacon_recorder_results_waiting_for_job", "Results held until their JobSubmitted arrives")
KAFKA_RESTARTS = Counter(
    "beacon_kafka_restarts_total", "Consumer loops started again after a transient Kafka failure", ["component"]
)
DEAD_LETTERS = Counter("beacon_dead_letters_total", "Messages parked on a dead-letter topic", ["topic"])
CONSUMER_LAG = Gauge(
    "beacon_consumer_lag", "Messages not yet consumed (high watermark - position)", ["topic", "partition"]
)
READ_REQUESTS = Counter("beacon_read_requests_total", "Read API requests answered", ["route", "status"])
READ_SECONDS = Histogram(
    "beacon_read_seconds",
    "Time to answer one read API request",
    ["route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
