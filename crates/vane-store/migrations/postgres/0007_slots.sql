-- Slots of pools (and of the global task limit, pool '*') that tasks hold or wait for, shared
-- by every vane process on the database. A waiting row keeps its place in line: higher class
-- (backfill runs are class 0, others 1), then higher priority, then the longest wait.
CREATE TABLE slots (
    pool         text NOT NULL,
    run_id       bigint NOT NULL REFERENCES runs (id),
    task_id      text NOT NULL,
    held         boolean NOT NULL,
    class        bigint NOT NULL,
    priority     bigint NOT NULL,
    since        timestamptz NOT NULL,
    holder_host  text NOT NULL,
    holder_pid   bigint NOT NULL,
    holder_start bigint,
    PRIMARY KEY (pool, run_id, task_id)
);
