-- `vane stop RUN --task T`: who asked for one task of a run to be stopped, why and when. The
-- run's owner kills that task's process group; the task fails without a retry and the run goes
-- on, what depends on the task following its trigger rule.
CREATE TABLE task_stops (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    task_id    TEXT NOT NULL,
    stopped_by TEXT NOT NULL,
    reason     TEXT,
    at         TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
