-- `vane stop`: who asked for a run to stop, why and when. The process executing the run looks
-- for requests on the runs it owns and stops them itself, so a stop works whichever host
-- executes the run and survives the asker's exit.
ALTER TABLE runs ADD COLUMN stop_requested_at timestamptz;
ALTER TABLE runs ADD COLUMN stop_requested_by text;
ALTER TABLE runs ADD COLUMN stop_reason text;
