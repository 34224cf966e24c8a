-- Data validation: check results, column profiles, and runs a person marked good.

-- One evaluation per validate attempt: its verdict and the dataset's column profile (JSON).
CREATE TABLE check_evaluations (
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    dag_id       TEXT NOT NULL,
    -- 1 when no check of severity `error` failed.
    passed       INTEGER NOT NULL,
    profile      TEXT NOT NULL,
    evaluated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt)
);
CREATE INDEX check_evaluations_by_task ON check_evaluations (dag_id, task_id, run_id);

CREATE TABLE check_results (
    run_id          INTEGER NOT NULL,
    task_id         TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    name            TEXT NOT NULL,
    column_name     TEXT,
    severity        TEXT NOT NULL CHECK (severity IN ('error', 'warn')),
    status          TEXT NOT NULL CHECK (status IN ('pass', 'warn', 'fail', 'learning')),
    observed        REAL,
    bound           TEXT,
    derivation      TEXT,
    detail          TEXT NOT NULL,
    -- JSON list of [row number, value shown].
    offending       TEXT NOT NULL,
    -- Hex SHA-256 of the check's canonical definition: a series of comparable values.
    definition_hash TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, name),
    FOREIGN KEY (run_id, task_id, attempt) REFERENCES check_evaluations (run_id, task_id, attempt)
);
CREATE INDEX check_results_by_series ON check_results (name, definition_hash);

-- Runs whose values `auto` bounds and drift baselines may learn from although they failed.
CREATE TABLE good_runs (
    run_id    INTEGER PRIMARY KEY REFERENCES runs (id),
    marked_by TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    reason    TEXT
);
