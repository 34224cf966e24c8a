-- Agents: `vane agent` processes that run tasks on hosts other than the scheduler's. Each
-- holds a lease (role `agent`) and is alive while the lease is; its labels and slots are what
-- it offers.
CREATE TABLE agents (
    lease_id   text PRIMARY KEY,
    host       text NOT NULL,
    labels     jsonb NOT NULL,
    slots      integer NOT NULL,
    started_at timestamptz NOT NULL
);

-- An attempt handed to agents: the run's owner puts it here, an agent with the labels claims
-- it under its lease (FOR UPDATE SKIP LOCKED) with a token raised by every claim and every
-- reaping, and each write the agent makes about it carries the token. The run's owner reads
-- the outcome back and records the attempt as it records a local one.
CREATE TABLE dispatches (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES runs (id),
    task_id        text NOT NULL,
    attempt        integer NOT NULL,
    -- A sensor's attempt runs one check after another: each is dispatched on its own.
    poke           integer NOT NULL DEFAULT 0,
    needs          jsonb NOT NULL,
    priority       bigint NOT NULL DEFAULT 0,
    job            text NOT NULL,
    state          text NOT NULL,
    agent_lease    text,
    token          bigint NOT NULL DEFAULT 0,
    enqueued_at    timestamptz NOT NULL,
    claimed_at     timestamptz,
    started_at     timestamptz,
    ended_at       timestamptz,
    pid            bigint,
    pid_start_time bigint,
    outcome        text,
    cancel         boolean NOT NULL DEFAULT false,
    UNIQUE (run_id, task_id, attempt, poke)
);
CREATE INDEX dispatches_queued ON dispatches (priority DESC, id) WHERE state = 'queued';
CREATE INDEX dispatches_by_agent ON dispatches (agent_lease) WHERE state = 'running';
