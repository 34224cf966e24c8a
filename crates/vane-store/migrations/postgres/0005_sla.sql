-- A scheduled run, or one of its tasks, that was not finished by its deadline (logical date +
-- `sla`). `task_id` is '' for the run itself.
CREATE TABLE sla_misses (
    run_id      bigint NOT NULL REFERENCES runs (id),
    task_id     text NOT NULL,
    deadline    timestamptz NOT NULL,
    detected_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
