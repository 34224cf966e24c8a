-- A run's predecessors by logical date ("the last good run before this one", `vane why`) are
-- found by this index, however long the history.
CREATE INDEX runs_by_dag_and_date ON runs (dag_id, logical_date);
