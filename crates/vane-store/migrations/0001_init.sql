-- Every DAG file content a run ever used, so any run can show the exact DAG it ran.
CREATE TABLE dag_versions (
    id           INTEGER PRIMARY KEY,
    dag_id       TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    path         TEXT NOT NULL,
    source       TEXT NOT NULL,
    first_seen   TEXT NOT NULL,
    UNIQUE (dag_id, content_hash)
);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    dag_id         TEXT NOT NULL,
    dag_version_id INTEGER NOT NULL REFERENCES dag_versions (id),
    logical_date   TEXT NOT NULL,
    trigger        TEXT NOT NULL CHECK (trigger IN ('manual', 'scheduled', 'backfill')),
    params         TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed')),
    reason         TEXT,
    git_commit     TEXT,
    git_dirty      INTEGER,
    host           TEXT NOT NULL,
    queued_at      TEXT NOT NULL,
    started_at     TEXT,
    ended_at       TEXT
);
CREATE INDEX runs_by_dag ON runs (dag_id, id);

-- The current state of each task of a run. History lives in attempts, which are never rewritten.
CREATE TABLE task_instances (
    run_id     INTEGER NOT NULL REFERENCES runs (id),
    task_id    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('queued', 'running', 'success', 'failed', 'upstream_failed', 'skipped')),
    reason     TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
);

CREATE TABLE attempts (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs (id),
    task_id        TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('running', 'success', 'failed')),
    command        TEXT NOT NULL,
    host           TEXT NOT NULL,
    log_path       TEXT NOT NULL,
    pid            INTEGER,
    pid_start_time INTEGER,
    exit_code      INTEGER,
    signal         INTEGER,
    reason         TEXT,
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    UNIQUE (run_id, task_id, attempt),
    FOREIGN KEY (run_id, task_id) REFERENCES task_instances (run_id, task_id)
);
