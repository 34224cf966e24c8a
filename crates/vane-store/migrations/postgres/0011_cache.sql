-- The cache key each attempt of a `cache = true` task ran with: a later attempt with the same
-- key can reuse the outputs of one that succeeded.
CREATE TABLE cache_keys (
    run_id      bigint NOT NULL REFERENCES runs (id),
    task_id     text NOT NULL,
    attempt     bigint NOT NULL,
    dag_id      text NOT NULL,
    -- Hex SHA-256 over the command, env, params, input versions and output names.
    key         text NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
);
CREATE INDEX cache_keys_by_key ON cache_keys (dag_id, task_id, key);
