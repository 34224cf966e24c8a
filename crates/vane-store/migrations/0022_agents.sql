-- Agents: `vane agent` processes that run tasks on hosts other than the scheduler's. Each
-- holds a lease (role `agent`) and is alive while the lease is; its labels and slots are what
-- it offers.
CREATE TABLE agents (
    lease_id   TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    -- JSON object of label = value.
    labels     TEXT NOT NULL,
    slots      INTEGER NOT NULL,
    started_at TEXT NOT NULL
);

-- An attempt handed to agents: the run's owner puts it here, an agent with the labels claims
-- it under its lease with a token raised by every claim and every reaping, and each write the
-- agent makes about it carries the token. The run's owner reads the outcome back and records
-- the attempt as it records a local one.
CREATE TABLE dispatches (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES runs (id),
    task_id        TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    -- A sensor's attempt runs one check after another: each is dispatched on its own.
    poke           INTEGER NOT NULL DEFAULT 0,
    -- JSON object: the labels an agent must have.
    needs          TEXT NOT NULL,
    priority       INTEGER NOT NULL DEFAULT 0,
    -- JSON: command, env, cwd, log path, timeout, kill grace.
    job            TEXT NOT NULL,
    -- queued | running | done
    state          TEXT NOT NULL,
    agent_lease    TEXT,
    token          INTEGER NOT NULL DEFAULT 0,
    enqueued_at    TEXT NOT NULL,
    claimed_at     TEXT,
    started_at     TEXT,
    ended_at       TEXT,
    pid            INTEGER,
    pid_start_time INTEGER,
    -- JSON: how the process ended, set with state `done`.
    outcome        TEXT,
    -- Set by the run's owner when the attempt is to be killed (`vane stop`, a lost run).
    cancel         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, task_id, attempt, poke)
);
CREATE INDEX dispatches_queued ON dispatches (priority DESC, id) WHERE state = 'queued';
CREATE INDEX dispatches_by_agent ON dispatches (agent_lease) WHERE state = 'running';
