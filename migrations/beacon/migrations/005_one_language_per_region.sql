-- Issue 19, events v1: a cell is (job_id, region, model_id, question_id) again. The language is a property of
-- (job, region), so it leaves the unique index; every result names one (no more "from before languages").
-- Only a cell of a known job is a row: executions and job_regions reference jobs, and a result whose job has
-- not arrived yet waits in pending_results (the recorder dead-letters it if the job never comes).

-- Refuse, saying what to do, rather than fail on a constraint halfway: rows recorded under the old shapes.
DO $$
DECLARE
    twice   bigint;
    orphans bigint;
    unnamed bigint;
BEGIN
    SELECT count(*) INTO twice FROM (
        SELECT 1 FROM executions GROUP BY job_id, region, model_id, question_id HAVING count(*) > 1) d;
    SELECT count(*) INTO orphans FROM (
        SELECT job_id FROM executions UNION ALL SELECT job_id FROM job_regions) x
        WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = x.job_id);
    SELECT count(*) INTO unnamed FROM executions WHERE language IS NULL;
    IF twice > 0 OR orphans > 0 OR unnamed > 0 THEN
        RAISE EXCEPTION
            'this database holds results that events v1 cannot have: % cells recorded more than once under (job_id, region, model_id, question_id) (a region asked in several languages), % results or expansions of jobs it does not hold, % results without a language', twice, orphans, unnamed
            USING HINT = 'Nothing was changed. These come from events before v1, which were never released: '
                'recreate the database (make down; rm -rf .beacon/postgres; make up) and submit the jobs again, '
                'or delete those rows (executions and job_regions whose job_id is not in jobs, executions without a '
                'language, all but one row of each duplicated cell) and start the service again.';
    END IF;
    IF EXISTS (SELECT 1 FROM jobs WHERE catalogue_version IS NULL)
       OR EXISTS (SELECT 1 FROM jobs, jsonb_array_elements(spec->'regions') r WHERE NOT r ? 'language') THEN
        RAISE EXCEPTION 'this database holds jobs from before events v1 (without a catalogue version, or asking a region in a list of languages)'
            USING HINT = 'Nothing was changed. Recreate the database (make down; rm -rf .beacon/postgres; make up) '
                'or delete those jobs and their rows, then start the service again.';
    END IF;
END $$;

ALTER TABLE executions DROP CONSTRAINT executions_one_per_cell;
ALTER TABLE executions ADD CONSTRAINT executions_one_per_cell
    UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id);
ALTER TABLE executions ALTER COLUMN language SET NOT NULL;
ALTER TABLE executions ADD CONSTRAINT executions_of_a_job FOREIGN KEY (job_id) REFERENCES jobs (job_id);

-- A classification is of a cell; its language is the cell's (executions.language).
ALTER TABLE classifications DROP CONSTRAINT classifications_one_per_version;
ALTER TABLE classifications DROP COLUMN language;
ALTER TABLE classifications ADD CONSTRAINT classifications_one_per_version
    UNIQUE NULLS NOT DISTINCT (job_id, region, model_id, question_id, classifier_version);

ALTER TABLE jobs ALTER COLUMN catalogue_version SET NOT NULL;

ALTER TABLE job_regions ADD CONSTRAINT job_regions_of_a_job FOREIGN KEY (job_id) REFERENCES jobs (job_id);

-- Results (ExecutionCompleted) and expansions (JobExpanded) whose JobSubmitted the recorder has not seen yet:
-- the topics are not ordered with each other. Kept as the Kafka record, so once the job arrives they are
-- projected exactly as if they had come after it, in their own partition's order; after the recorder's
-- stated wait (BEACON_ORPHAN_WAIT_SECONDS) without the job, or once found not to be a cell of it
-- (`verdict`), they are dead-lettered and deleted.
CREATE TABLE pending_results (
    topic        text        NOT NULL,
    "partition"  integer     NOT NULL,
    "offset"     bigint      NOT NULL,
    job_id       text        NOT NULL,
    key          bytea,
    value        bytea       NOT NULL,
    "timestamp"  bigint      NOT NULL,
    held_since   timestamptz NOT NULL DEFAULT now(),
    verdict      text,  -- set when the job arrived and the result is not one of its cells: dead-letter it
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX pending_results_by_job ON pending_results (job_id);
