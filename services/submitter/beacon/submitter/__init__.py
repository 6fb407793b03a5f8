"""submitter: validate a job (decide.py) → emit JobSubmitted (publish.py); CLI and HTTP share both."""
