-- The read model: jobs projected from JobSubmitted, executions from ExecutionCompleted.

CREATE TABLE jobs (
    job_id              text PRIMARY KEY,
    spec_sha256         text        NOT NULL,
    expected_executions integer     NOT NULL CHECK (expected_executions > 0),
    submitted_at        timestamptz NOT NULL,
    deadline            timestamptz NOT NULL,
    -- The whole JobSubmitted event: questions with texts, models, regions, parameters.
    spec                jsonb       NOT NULL,
    event_id            uuid        NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_newest_first ON jobs (submitted_at DESC, job_id DESC);

-- No foreign key to jobs: the two events travel on different topics and may arrive in either order.
CREATE TABLE executions (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id             text        NOT NULL,
    region             text        NOT NULL,
    model_id           text        NOT NULL,
    question_id        text,  -- NULL: a job without questions, one execution per (region, model)
    provider           text        NOT NULL,
    provider_model     text,
    status             text        NOT NULL CHECK (status IN ('completed', 'failed', 'timeout')),
    classification     text        NOT NULL CHECK (classification IN ('answered', 'refused', 'empty', 'error')),
    classifier_version text        NOT NULL,
    answer             text,
    -- Evidence for the classification, every attempt with its error text, token counts.
    output             jsonb       NOT NULL,
    receipt            jsonb       NOT NULL,
    started_at         timestamptz NOT NULL,
    completed_at       timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    event_id           uuid        NOT NULL,
    -- One row per cell. NULLS NOT DISTINCT (PostgreSQL 15+) makes the no-question row dedup too;
    -- without it two NULL question_ids would count as different and duplicates would slip in.
    CONSTRAINT executions_one_per_cell UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id)
);
