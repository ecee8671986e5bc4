-- jobrun state, schema version 6: crontab jobs' names follow the job (issue 12).
--
-- A crontab job's name is derived from its command (src/plan/names.rs), and
-- runs are recorded under that name. `job_names` remembers, by the job's
-- identity (a hash of its merge key: user, command, shell, standard input,
-- environment, directory), the name its runs are recorded under; when the
-- job's name changes, a daemon or `jobrun run` moves its runs to the new
-- name (`Store::follow_names`), so `history`, `list`, catch-up and the
-- (job, tick) claims keep finding them.
--
-- Runs recorded before this version were named by jobrun's earlier rule
-- (`run-parts-2`, `sleep` for certbot's line). `legacy_names` holds the
-- last such run's id: when a job is first recorded in `job_names`, its runs
-- up to that id are moved from the name that rule gave it (computed by
-- src/plan/names/legacy.rs) to its current one. Later runs are never taken
-- for a legacy job's.

CREATE TABLE job_names (
    key  TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE legacy_names (upto INTEGER NOT NULL);
INSERT INTO legacy_names (upto) SELECT coalesce(max(id), 0) FROM runs;
