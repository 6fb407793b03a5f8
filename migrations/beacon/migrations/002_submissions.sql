-- The submitter's registry of job ids: the one place that decides whether a submission is new, a
-- repeat of the same spec (accepted idempotently) or a conflicting reuse of an id (refused).
-- `event` is the JobSubmitted exactly as first emitted, re-sent on a repeat so that a crash between
-- registering and emitting heals itself; downstream, a repeat is a no-op.
CREATE TABLE submissions (
    job_id       text PRIMARY KEY,
    spec_sha256  text        NOT NULL,
    event        jsonb       NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now()
);
