-- Rollout decisions are per candidate version: a retried attempt that rolls out another
-- version must not inherit the gates the first one passed.
CREATE TABLE rollout_stages_by_version (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    task_id     TEXT NOT NULL,
    stage       TEXT NOT NULL,
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    -- running | waiting | passed | approved | rejected | failed | expired
    status      TEXT NOT NULL,
    detail      TEXT,
    evidence    TEXT NOT NULL DEFAULT '{}',
    decided_by  TEXT,
    reason      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, stage, version)
);
INSERT INTO rollout_stages_by_version
    SELECT run_id, task_id, stage, model, version, status, detail, evidence, decided_by, reason, updated_at
    FROM rollout_stages ORDER BY rowid;
DROP TABLE rollout_stages;
ALTER TABLE rollout_stages_by_version RENAME TO rollout_stages;

-- One rollout of a model at a time: the attempt holding it. Two runs putting two versions
-- through the same stages at once would each roll back to a production the other replaced.
CREATE TABLE rollout_locks (
    model   TEXT PRIMARY KEY,
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    since   TEXT NOT NULL
);

-- A registered model version takes its producer from the output with the same content.
CREATE INDEX artifact_versions_by_hash ON artifact_versions (hash);
