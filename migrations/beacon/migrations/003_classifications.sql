-- Re-derived classifications (`beacon reclassify`), one per cell and classifier version, beside the
-- classification recorded with the execution. No model is called to fill it.
CREATE TABLE classifications (
    job_id             text        NOT NULL,
    region             text        NOT NULL,
    model_id           text        NOT NULL,
    question_id        text,
    classifier_version text        NOT NULL,
    classification     text        NOT NULL CHECK (classification IN ('answered', 'refused', 'empty', 'error')),
    evidence           text,
    event_id           uuid        NOT NULL,  -- the ExecutionCompleted whose answer was classified
    classified_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT classifications_one_per_version
        UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id, classifier_version)
);
