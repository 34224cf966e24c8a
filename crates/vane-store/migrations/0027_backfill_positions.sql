-- A backfill's next run takes the position after its last (MAX(position)), and its runs are
-- read in position order: without this index both scanned every run of the backfill, so
-- planning a backfill of N runs read N²/2 rows (an hourly DAG's year, 8,760 runs, took 6.5 s
-- on SQLite and 20 s on PostgreSQL before its first run started).
CREATE INDEX backfill_runs_by_position ON backfill_runs (backfill_id, position);
