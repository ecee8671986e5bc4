-- jobrun PostgreSQL state, schema version 2: what `status` shows of each
-- member, and crontab jobs' names followed across renames (as SQLite's 0006).

-- This host's clock minus the server's at its last heartbeat, in
-- milliseconds (NULL until measured): `status` warns above 1 s.
ALTER TABLE daemons ADD COLUMN clock_offset_ms BIGINT;

-- What registered: a `daemon`, or a `run` (`jobrun run`, a member only
-- while its run goes). `status` lists the daemons.
ALTER TABLE daemons ADD COLUMN kind TEXT NOT NULL DEFAULT 'daemon'
    CHECK (kind IN ('daemon', 'run'));

-- Each crontab job's current name under its identity: when the derived name
-- changes, its runs and claims move to the new name (src/store/postgres/names.rs).
CREATE TABLE job_names (
    key  TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

-- Claims outlive history pruning (issue 14, guarantee 10), with a table that
-- stays bounded: when pruning removes runs, each job's floor is raised to
-- the newest tick among their claims (never lowered), and the claims at or
-- before it whose run is gone are deleted. Every tick at or before a job's
-- floor counts as claimed (src/store/postgres/claims.rs). One row per job.
-- Conservative: a tick older than what retention keeps that was genuinely
-- missed can no longer be caught up. A renamed job's floor moves with it.
CREATE TABLE claim_floors (
    job  TEXT        PRIMARY KEY,
    tick TIMESTAMPTZ NOT NULL
);
