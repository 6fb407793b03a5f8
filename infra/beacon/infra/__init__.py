"""Shared infrastructure of Beacon's services (beacon-infra): settings.py (every setting), logs.py, kafka.py
(clients, reading a topic, transient vs fatal, supervised loops, dead letters), topics.py (declaring and
creating the topics), dlq.py (`beacon dlq`), db.py (connections, migrations) and projection.py (the tables'
columns, COPY) with the `[db]` extra, http.py (uvicorn limits, health) with the `[web]` extra, metrics.py,
redact.py, terminal.py, catalogues.py (reading the default or a user's catalogue file) and service.py (how a
long-lived service runs and stops, and its own command's start-up errors).

It imports only beacon.schemas and beacon.domain: no provider, no service, no CLI."""
