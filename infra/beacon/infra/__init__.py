"""Shared pieces of Beacon's services: settings, logging, topics, Kafka and Postgres plumbing, the CLI."""
