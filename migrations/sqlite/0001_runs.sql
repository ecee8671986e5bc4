-- jobrun state, schema version 1: the run history and the tick claims.
--
-- One row per claimed (job, tick) or manual run. The UNIQUE index on (job, tick)
-- is what makes "at most one run per job per tick" hold across every jobrun
-- process sharing the state directory: a second claim of the same tick fails.
-- Times are RFC 3339 UTC text in one fixed format, so text order is time order.

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job          TEXT    NOT NULL,
    trigger      TEXT    NOT NULL,
    tick         TEXT,              -- the scheduled instant; NULL for manual runs
    claimed_at   TEXT    NOT NULL,
    started_at   TEXT,              -- NULL when the command never started
    finished_at  TEXT,
    duration_ms  INTEGER,
    status       TEXT    NOT NULL CHECK (status IN (
                     'running', 'succeeded', 'failed', 'timed_out', 'killed',
                     'skipped', 'interrupted', 'abandoned')),
    exit_code    INTEGER,
    signal       INTEGER,
    pid          INTEGER,
    host         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,  -- the jobrun process that claimed the run: host:pid:instant
    output_bytes INTEGER NOT NULL DEFAULT 0,
    output_tail  BLOB,
    error        TEXT
);

CREATE UNIQUE INDEX runs_job_tick ON runs (job, tick) WHERE tick IS NOT NULL;
CREATE INDEX runs_job_id ON runs (job, id);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
