-- Alerts, derived from the recorded history by `vane alerts --evaluate` (or the scheduler).

-- One alert per (rule, DAG, task, subject) while it is not resolved; a recurrence adds to its
-- count instead of opening another.
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    rule             TEXT NOT NULL,
    -- The rule's `on`: run_failed, task_failed, ...
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    dag_id           TEXT NOT NULL,
    -- '' for an alert about a whole run.
    task_id          TEXT NOT NULL,
    -- What inside the task: a check's name, a model; '' when nothing more.
    subject          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    -- What the latest occurrence said.
    summary          TEXT NOT NULL,
    count            INTEGER NOT NULL,
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL,
    first_run        INTEGER REFERENCES runs (id),
    last_run         INTEGER REFERENCES runs (id),
    -- The DAG version of last_run: a later success on another version is a fix.
    last_dag_version INTEGER,
    snoozed_until    TEXT,
    acked_by         TEXT,
    acked_at         TEXT,
    -- Whether it deserved attention: set by a person, or by an action taken on it.
    verdict          TEXT CHECK (verdict IN ('real', 'noise')),
    -- person | clear | rollback | fix
    verdict_source   TEXT,
    resolved_at      TEXT,
    -- "user alice" or "run 12"
    resolved_by      TEXT,
    last_notified_at TEXT
);
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (rule, dag_id, task_id, subject)
    WHERE state != 'resolved';
CREATE INDEX alerts_by_run ON alerts (last_run);

-- Every notification of an alert to a channel (a grouped notification has one row per alert).
CREATE TABLE alert_notifications (
    id        INTEGER PRIMARY KEY,
    alert_id  INTEGER NOT NULL REFERENCES alerts (id),
    rule      TEXT NOT NULL,
    channel   TEXT NOT NULL,
    at        TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    error     TEXT
);
CREATE INDEX alert_notifications_by_rule ON alert_notifications (rule, at);

-- Events already turned into alerts, so two evaluators (or two passes overlapping in time)
-- never count one event twice. Old keys are pruned once they are behind the cursor.
CREATE TABLE alert_events_seen (
    key TEXT PRIMARY KEY,
    at  TEXT NOT NULL
);

-- How far the history has been read: one row.
CREATE TABLE alert_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);

-- The evaluator reads only what changed since its cursor; without these it would scan the whole
-- history on every scheduler pass.
CREATE INDEX runs_by_end ON runs (ended_at);
CREATE INDEX task_instances_by_update ON task_instances (updated_at);
CREATE INDEX attempts_by_end ON attempts (ended_at);
CREATE INDEX check_evaluations_by_time ON check_evaluations (evaluated_at);
CREATE INDEX sla_misses_by_time ON sla_misses (detected_at);
