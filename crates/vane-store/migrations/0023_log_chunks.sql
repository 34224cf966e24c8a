-- The log of an attempt run by an agent, as the chunks shipped to shared storage (S3 or a
-- shared folder): the bodies live there, never in the database, which keeps only where each
-- chunk is and in what order it was written. A chunk counts once its row exists, and an agent
-- writes the row under its token, so what a fenced-off agent ships later is never read.
CREATE TABLE log_chunks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    -- The dispatch whose process wrote it; NULL for a line the run's owner added.
    dispatch_id INTEGER REFERENCES dispatches (id),
    -- The object's key in the storage.
    object_key  TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    written_at  TEXT NOT NULL
);
CREATE INDEX log_chunks_by_attempt ON log_chunks (run_id, task_id, attempt, id);
