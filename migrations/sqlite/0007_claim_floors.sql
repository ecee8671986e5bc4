-- jobrun state, schema version 7: claims outlive history pruning (issue 14,
-- guarantee 10).
--
-- A tick's claim is its `runs` row (the UNIQUE (job, tick, attempt) index),
-- so pruning a run would free its tick to be claimed again: after a clock
-- step back or at a restart's catch-up, it could run twice. When pruning
-- removes runs, each job's floor is raised to the newest tick among its
-- removed runs (never lowered), and every tick at or before a job's floor
-- counts as claimed (src/store/sqlite/floors.rs). One row per job: the
-- table stays as small as the list of jobs.
--
-- Conservative: a tick older than what retention keeps that was genuinely
-- missed can no longer be caught up.

CREATE TABLE claim_floors (
    job  TEXT PRIMARY KEY,
    tick TEXT NOT NULL
);
