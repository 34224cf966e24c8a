-- A backfill that may promote models trained on past dates (`vane backfill --redeploy-past`):
-- by default a deploy task of a run older than the one that put the production model in place
-- promotes nothing.
ALTER TABLE backfills ADD COLUMN redeploy_past boolean NOT NULL DEFAULT false;
