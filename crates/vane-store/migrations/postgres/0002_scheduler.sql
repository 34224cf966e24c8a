-- At most one run per (DAG, logical date), enforced here so that a restart, a second scheduler,
-- or a backfill of dates that already ran can never duplicate a run. (SQLite's migration first
-- shifts duplicates from before this rule; a PostgreSQL database never held any.)
CREATE UNIQUE INDEX runs_one_per_logical_date ON runs (dag_id, logical_date);
CREATE INDEX runs_by_state ON runs (state, id);

-- The vane process that executes a run, so that recovery after a crash adopts only runs whose
-- process is gone (the start time tells a reused pid apart).
ALTER TABLE runs ADD COLUMN owner_host text;
ALTER TABLE runs ADD COLUMN owner_pid bigint;
ALTER TABLE runs ADD COLUMN owner_start_time bigint;

-- Every schedule tick the scheduler decided on, run or not, so silence is never ambiguous.
CREATE TABLE ticks (
    dag_id       text NOT NULL,
    logical_date timestamptz NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('run', 'skipped')),
    reason       text,
    run_id       bigint REFERENCES runs (id),
    decided_at   timestamptz NOT NULL,
    PRIMARY KEY (dag_id, logical_date)
);

-- Per-DAG switches people flip from the CLI.
CREATE TABLE dag_state (
    dag_id     text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL
);
