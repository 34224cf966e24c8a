-- Versioned artifacts: every file or folder a task read or wrote, content-addressed.
CREATE TABLE artifact_versions (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    -- 1, 2, ... per name, in the order versions were first seen.
    version     INTEGER NOT NULL,
    -- Hex SHA-256 of the content (of a folder: of its sorted paths and their files' hashes).
    hash        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
    size        INTEGER NOT NULL,
    -- Where the content was when first seen.
    path        TEXT NOT NULL,
    -- Its copy in the content store, if one was kept.
    stored      TEXT,
    created_at  TEXT NOT NULL,
    -- The attempt that first produced it; NULL for content first seen as an input.
    run_id      INTEGER REFERENCES runs (id),
    task_id     TEXT,
    attempt     INTEGER,
    UNIQUE (name, hash),
    UNIQUE (name, version)
);

-- Which versions each attempt read (input) and wrote (output).
CREATE TABLE attempt_artifacts (
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    direction   TEXT NOT NULL CHECK (direction IN ('input', 'output')),
    artifact_id INTEGER NOT NULL REFERENCES artifact_versions (id),
    path        TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, direction, artifact_id)
);
CREATE INDEX attempt_artifacts_by_artifact ON attempt_artifacts (artifact_id, direction);
