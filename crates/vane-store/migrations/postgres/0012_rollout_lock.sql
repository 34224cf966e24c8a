-- Rollout decisions are per candidate version: a retried attempt that rolls out another
-- version must not inherit the gates the first one passed. (SQLite rebuilds the table for
-- this; PostgreSQL changes the key in place.)
ALTER TABLE rollout_stages DROP CONSTRAINT rollout_stages_pkey;
ALTER TABLE rollout_stages ADD CONSTRAINT rollout_stages_pkey PRIMARY KEY (run_id, task_id, stage, version);
COMMENT ON COLUMN rollout_stages.status IS 'running | waiting | passed | approved | rejected | failed | expired';

-- One rollout of a model at a time: the attempt holding it. Two runs putting two versions
-- through the same stages at once would each roll back to a production the other replaced.
CREATE TABLE rollout_locks (
    model   text PRIMARY KEY,
    run_id  bigint NOT NULL REFERENCES runs (id),
    task_id text NOT NULL,
    attempt bigint NOT NULL,
    since   timestamptz NOT NULL
);

-- A registered model version takes its producer from the output with the same content.
CREATE INDEX artifact_versions_by_hash ON artifact_versions (hash);
