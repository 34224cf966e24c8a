-- Model registry: model versions, the stage ledger, gate evidence and approvals.

-- The stage each model version is in now. A version is a row of artifact_versions (name =
-- the model's name); it gets a row here when a rollout first registers it.
CREATE TABLE model_stages (
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    artifact_id INTEGER NOT NULL REFERENCES artifact_versions (id),
    -- registered | a stage name (…, production) | archived | failed
    stage       TEXT NOT NULL,
    since       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    run_id      INTEGER REFERENCES runs (id),
    PRIMARY KEY (model, version)
);
-- Exactly one production version per model at a time.
CREATE UNIQUE INDEX model_stages_one_production ON model_stages (model) WHERE stage = 'production';

-- Every stage change, append-only.
CREATE TABLE model_ledger (
    id          INTEGER PRIMARY KEY,
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    from_stage  TEXT,
    to_stage    TEXT NOT NULL,
    at          TEXT NOT NULL,
    -- "run 12" or "user alice"
    actor       TEXT NOT NULL,
    run_id      INTEGER REFERENCES runs (id),
    reason      TEXT,
    -- JSON: what the gate saw (metric values and bounds), or what a person approved.
    evidence    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX model_ledger_by_model ON model_ledger (model, at);

-- Evaluation metrics of a model version, per eval-data hash ('' without eval data).
CREATE TABLE model_metrics (
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    eval_hash   TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       REAL NOT NULL,
    run_id      INTEGER REFERENCES runs (id),
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (model, version, eval_hash, name)
);

-- The decision of each stage of a rollout: what the gate found, and what a person said.
CREATE TABLE rollout_stages (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    task_id     TEXT NOT NULL,
    stage       TEXT NOT NULL,
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    -- waiting | passed | approved | rejected | failed
    status      TEXT NOT NULL,
    -- What it waits for, or why it failed.
    detail      TEXT,
    evidence    TEXT NOT NULL DEFAULT '{}',
    decided_by  TEXT,
    reason      TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, stage)
);
