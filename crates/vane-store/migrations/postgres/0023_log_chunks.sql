-- The log of an attempt run by an agent, as the chunks shipped to shared storage (S3 or a
-- shared folder): the bodies live there, never in the database, which keeps only where each
-- chunk is and in what order it was written. A chunk counts once its row exists, and an agent
-- writes the row under its token, so what a fenced-off agent ships later is never read.
CREATE TABLE log_chunks (
    id          bigserial PRIMARY KEY,
    run_id      bigint NOT NULL REFERENCES runs (id),
    task_id     text NOT NULL,
    attempt     integer NOT NULL,
    -- The dispatch whose process wrote it; NULL for a line the run's owner added.
    dispatch_id bigint REFERENCES dispatches (id),
    -- The object's key in the storage.
    object_key  text NOT NULL,
    bytes       bigint NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX log_chunks_by_attempt ON log_chunks (run_id, task_id, attempt, id);
