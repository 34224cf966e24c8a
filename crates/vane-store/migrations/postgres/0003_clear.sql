-- `vane clear` reruns a task as new attempts with its full retry budget: the budget counts the
-- attempts made since the last clear.
ALTER TABLE task_instances ADD COLUMN retry_base bigint NOT NULL DEFAULT 0;
