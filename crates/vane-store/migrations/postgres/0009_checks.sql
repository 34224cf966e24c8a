-- Data validation: check results, column profiles, and runs a person marked good.

-- One evaluation per validate attempt: its verdict and the dataset's column profile.
CREATE TABLE check_evaluations (
    run_id       bigint NOT NULL REFERENCES runs (id),
    task_id      text NOT NULL,
    attempt      bigint NOT NULL,
    dag_id       text NOT NULL,
    -- true when no check of severity `error` failed.
    passed       boolean NOT NULL,
    profile      jsonb NOT NULL,
    evaluated_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
);
CREATE INDEX check_evaluations_by_task ON check_evaluations (dag_id, task_id, run_id);

CREATE TABLE check_results (
    run_id          bigint NOT NULL,
    task_id         text NOT NULL,
    attempt         bigint NOT NULL,
    position        bigint NOT NULL,
    name            text NOT NULL,
    column_name     text,
    severity        text NOT NULL CHECK (severity IN ('error', 'warn')),
    status          text NOT NULL CHECK (status IN ('pass', 'warn', 'fail', 'learning')),
    observed        double precision,
    bound           text,
    derivation      text,
    detail          text NOT NULL,
    -- A list of [row number, value shown].
    offending       jsonb NOT NULL,
    -- Hex SHA-256 of the check's canonical definition: a series of comparable values.
    definition_hash text NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, name),
    FOREIGN KEY (run_id, task_id, attempt) REFERENCES check_evaluations (run_id, task_id, attempt)
);
CREATE INDEX check_results_by_series ON check_results (name, definition_hash);

-- Runs whose values `auto` bounds and drift baselines may learn from although they failed.
CREATE TABLE good_runs (
    run_id    bigint PRIMARY KEY REFERENCES runs (id),
    marked_by text NOT NULL,
    marked_at timestamptz NOT NULL,
    reason    text
);
