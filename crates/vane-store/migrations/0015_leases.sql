-- Liveness as a lease. Every vane process that executes runs (a scheduler, `vane run`, a
-- backfill) holds one row here and renews it; it is alive while `expires_at` is ahead of the
-- database's clock. A process on another host cannot be asked whether a pid lives, and hosts'
-- clocks disagree, so the database alone judges expiry. A lease that expired is never renewed:
-- its holder takes a new one, so runs owned under the old one stay adoptable.
CREATE TABLE leases (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    -- scheduler, run, backfill, clear: what kind of process holds it, for `vane status`.
    role        TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    -- Unix seconds on the database's clock, so comparing it with "now" is one expression.
    expires_at  REAL NOT NULL,
    -- Set by a clean exit: nothing it owned is left to adopt.
    released_at TEXT
);

-- The lease under which a run's owner executes it, and a fencing token: raised by every claim
-- and adoption, and required by every write the owner makes, so an owner that lost the run
-- (paused VM, healed partition) has its late writes refused.
ALTER TABLE runs ADD COLUMN owner_lease TEXT;
ALTER TABLE runs ADD COLUMN owner_token INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_by_owner_lease ON runs (owner_lease) WHERE owner_lease IS NOT NULL;

-- The lease a scheduler currently holds, for `vane status`.
ALTER TABLE schedulers ADD COLUMN lease_id TEXT;
