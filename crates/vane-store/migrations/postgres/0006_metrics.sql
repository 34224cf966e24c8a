-- Numbers a task attempt reported, or vane measured for it (a sensor's wait).
CREATE TABLE metrics (
    run_id      bigint NOT NULL REFERENCES runs (id),
    task_id     text NOT NULL,
    attempt     bigint NOT NULL,
    name        text NOT NULL,
    value       double precision NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, name)
);
CREATE INDEX metrics_by_name ON metrics (name, run_id);
