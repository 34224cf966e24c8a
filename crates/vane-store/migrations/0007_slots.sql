-- Slots of pools (and of the global task limit, pool '*') that tasks hold or wait for, shared
-- by every vane process on the database. A waiting row keeps its place in line: higher class
-- (backfill runs are class 0, others 1), then higher priority, then the longest wait.
CREATE TABLE slots (
    pool         TEXT NOT NULL,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    task_id      TEXT NOT NULL,
    held         INTEGER NOT NULL,
    class        INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    since        TEXT NOT NULL,
    holder_host  TEXT NOT NULL,
    holder_pid   INTEGER NOT NULL,
    holder_start INTEGER,
    PRIMARY KEY (pool, run_id, task_id)
);
