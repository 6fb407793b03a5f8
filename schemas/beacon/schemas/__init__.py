"""Beacon's contracts, what crosses a process boundary: the events (events.py), the submit command
(commands.py), the topic and consumer-group names (topics.py) and the shape of an id (ids.py); and, as package
data, the documents `make schemas` generates from them (json/, openapi/, asyncapi/). The catalogue and the
rest of the pure domain are beacon.domain, in the same distribution (beacon-schemas)."""
