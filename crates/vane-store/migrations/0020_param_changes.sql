-- Params a person changed on a run to rerun its logical date (`vane clear RUN --param`): the
-- run keeps one row per (DAG, logical date), and this history keeps what it ran with before,
-- who changed it and when.
CREATE TABLE run_param_changes (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    at         TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    before     TEXT NOT NULL,
    after      TEXT NOT NULL
);
CREATE INDEX run_param_changes_by_run ON run_param_changes (run_id, id);
