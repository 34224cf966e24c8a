-- Schedulers on this database, one row per `vane scheduler` process, rewritten by its heartbeat.
-- `vane serve` reads them for /metrics and `vane status`, so a scheduler's health is visible
-- from any process without asking the scheduler itself.
CREATE TABLE schedulers (
    -- host:pid:start (UTC, to the second): unique per process, readable as a Prometheus label.
    id                TEXT PRIMARY KEY,
    host              TEXT NOT NULL,
    pid               INTEGER NOT NULL,
    started_at        TEXT NOT NULL,
    last_heartbeat    TEXT NOT NULL,
    -- Set by a clean shutdown; a scheduler killed without one is told apart by its heartbeat age.
    stopped_at        TEXT,
    passes            INTEGER NOT NULL,
    pass_seconds_sum  REAL NOT NULL,
    -- The histogram of pass durations, cumulative: counts[i] passes took at most bounds[i]
    -- seconds. JSON arrays, so a row keeps the bounds it was counted with across upgrades.
    pass_bounds       TEXT NOT NULL,
    pass_counts       TEXT NOT NULL,
    last_pass_seconds REAL
);
