"""submitter: validate a job and build its JobSubmitted (decide.py, pure) → claim its id and emit the event
(publish.py), with the producer and pool bootstrap.py makes; `beacon submit` and POST /jobs (http.py, served
by `beacon-submitter-api`, __main__.py, or `beacon submitter-api`) share all three."""
