-- Schedulers on this database, one row per `vane scheduler` process, rewritten by its heartbeat.
-- `vane serve` reads them for /metrics and `vane status`, so a scheduler's health is visible
-- from any process without asking the scheduler itself.
CREATE TABLE schedulers (
    -- host:pid:start (UTC, to the second): unique per process, readable as a Prometheus label.
    id                text PRIMARY KEY,
    host              text NOT NULL,
    pid               bigint NOT NULL,
    started_at        timestamptz NOT NULL,
    last_heartbeat    timestamptz NOT NULL,
    -- Set by a clean shutdown; a scheduler killed without one is told apart by its heartbeat age.
    stopped_at        timestamptz,
    passes            bigint NOT NULL,
    pass_seconds_sum  double precision NOT NULL,
    -- The histogram of pass durations, cumulative: counts[i] passes took at most bounds[i]
    -- seconds. Arrays, so a row keeps the bounds it was counted with across upgrades.
    pass_bounds       jsonb NOT NULL,
    pass_counts       jsonb NOT NULL,
    last_pass_seconds double precision
);
