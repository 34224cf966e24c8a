-- Params a person changed on a run to rerun its logical date (`vane clear RUN --param`): the
-- run keeps one row per (DAG, logical date), and this history keeps what it ran with before,
-- who changed it and when.
CREATE TABLE run_param_changes (
    id         bigserial PRIMARY KEY,
    run_id     bigint NOT NULL REFERENCES runs (id),
    at         timestamptz NOT NULL,
    changed_by text NOT NULL,
    before     jsonb NOT NULL,
    after      jsonb NOT NULL
);
CREATE INDEX run_param_changes_by_run ON run_param_changes (run_id, id);
