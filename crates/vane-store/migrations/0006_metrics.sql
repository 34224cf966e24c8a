-- Numbers a task attempt reported, or vane measured for it (a sensor's wait).
CREATE TABLE metrics (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    value       REAL NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, name)
);
CREATE INDEX metrics_by_name ON metrics (name, run_id);
