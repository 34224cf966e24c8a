-- A backfill: the runs of a DAG for every tick in a date range, driven by `vane backfill`.
CREATE TABLE backfills (
    id           INTEGER PRIMARY KEY,
    dag_id       TEXT NOT NULL,
    from_date    TEXT NOT NULL,
    to_date      TEXT NOT NULL,
    reverse      INTEGER NOT NULL,
    rerun_failed INTEGER NOT NULL,
    max_active   INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'done')),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- The runs a backfill drives, in the order it runs them. A run the backfill found already
-- there (a failed one it reruns) is linked too.
CREATE TABLE backfill_runs (
    backfill_id INTEGER NOT NULL REFERENCES backfills (id),
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    position    INTEGER NOT NULL,
    PRIMARY KEY (backfill_id, run_id)
);
CREATE INDEX backfill_runs_by_run ON backfill_runs (run_id);

-- `vane clear` may rerun tasks with a newer version of the DAG than the run started with:
-- each attempt records the version it ran.
ALTER TABLE attempts ADD COLUMN dag_version_id INTEGER REFERENCES dag_versions (id);
