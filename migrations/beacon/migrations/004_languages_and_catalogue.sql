-- Issue 14: a cell is (job, region, model, question, language); which catalogue a job's words came from;
-- which regions a runner has picked a job up in, and which models it has no route for.

-- NULL: a result from before languages (its job asked each cell once, in the one language there was).
ALTER TABLE executions ADD COLUMN language text;
ALTER TABLE executions DROP CONSTRAINT executions_one_per_cell;
ALTER TABLE executions ADD CONSTRAINT executions_one_per_cell
    UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id, language);

ALTER TABLE classifications ADD COLUMN language text;
ALTER TABLE classifications DROP CONSTRAINT classifications_one_per_version;
ALTER TABLE classifications ADD CONSTRAINT classifications_one_per_version
    UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id, language, classifier_version);

-- "sha256:<16 hex>" of the catalogue the job's texts came from; NULL for jobs from before versions.
ALTER TABLE jobs ADD COLUMN catalogue_version text;

-- Projected from JobExpanded (one per job and region): a runner of that region has scheduled the job's
-- cells. A region of a job with no row here has no runner (yet).
CREATE TABLE job_regions (
    job_id      text        NOT NULL,
    region      text        NOT NULL,
    spec_sha256 text        NOT NULL,
    cells       integer     NOT NULL,
    providers   jsonb       NOT NULL,  -- model id → provider
    unrouted    jsonb       NOT NULL,  -- model ids with no route of their own in that region
    expanded_at timestamptz NOT NULL,
    event_id    uuid        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, region)
);
