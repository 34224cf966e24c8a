-- At most one run per (DAG, logical date), enforced here so that a restart, a second scheduler
-- started by mistake, or a backfill of dates that already ran can never duplicate a run.
-- Databases from before this rule may hold manual runs that share a logical date; each later
-- one takes the time it was queued (to the microsecond) as its logical date, so the rule can
-- hold.
CREATE TEMP TABLE shifted AS
SELECT id, (SELECT COUNT(*) FROM runs AS older
            WHERE older.dag_id = runs.dag_id
              AND older.logical_date = runs.logical_date
              AND older.id < runs.id) AS rank
FROM runs;
UPDATE runs
SET logical_date = queued_at
WHERE (SELECT rank FROM shifted WHERE shifted.id = runs.id) > 0;
DROP TABLE shifted;
CREATE UNIQUE INDEX runs_one_per_logical_date ON runs (dag_id, logical_date);
CREATE INDEX runs_by_state ON runs (state, id);

-- The vane process that executes a run, so that recovery after a crash adopts only runs whose
-- process is gone (the start time tells a reused pid apart).
ALTER TABLE runs ADD COLUMN owner_host TEXT;
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN owner_start_time INTEGER;

-- Every schedule tick the scheduler decided on, run or not, so silence is never ambiguous.
CREATE TABLE ticks (
    dag_id       TEXT NOT NULL,
    logical_date TEXT NOT NULL,
    decision     TEXT NOT NULL CHECK (decision IN ('run', 'skipped')),
    reason       TEXT,
    run_id       INTEGER REFERENCES runs (id),
    decided_at   TEXT NOT NULL,
    PRIMARY KEY (dag_id, logical_date)
);

-- Per-DAG switches people flip from the CLI.
CREATE TABLE dag_state (
    dag_id     TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
