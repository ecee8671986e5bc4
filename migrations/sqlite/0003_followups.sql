-- jobrun state, schema version 3: runs that follow other runs.
--
-- `parent_id` links a retry to the first attempt of its run, and a chained run
-- (on_success / on_failure) to the run whose outcome started it. `attempt` is
-- 1 for a first run, 2 for the first retry, and so on.
--
-- A retry of a scheduled run keeps that run's tick, so the tick claim becomes
-- (job, tick, attempt): still at most one first run per job and tick, and at
-- most one of each retry.

ALTER TABLE runs ADD COLUMN parent_id INTEGER;
ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;

DROP INDEX runs_job_tick;
CREATE UNIQUE INDEX runs_job_tick ON runs (job, tick, attempt) WHERE tick IS NOT NULL;
