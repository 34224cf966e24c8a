-- The time zone a run's logical date was reckoned in (the DAG's `timezone` when the run was
-- made), so every place shows its dates as the schedule reads, even after the DAG's zone
-- changes. NULL for runs made before: shown in UTC.
ALTER TABLE runs ADD COLUMN timezone text;
