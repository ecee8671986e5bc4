-- jobrun state, schema version 4: the `missed` run status.
--
-- A tick that jobrun could not claim or start through a failure of its own
-- (out of descriptors, the state directory unwritable or full) is recorded
-- `missed`, with the reason in `error`, so that no tick ends without a row
-- (issue 11). SQLite cannot change a CHECK constraint in place: the table is
-- rebuilt with the same columns, rows and indexes, and the wider CHECK. On a
-- large history this copies the table once, at the first start of this
-- version.

CREATE TABLE runs_new (
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
                     'skipped', 'interrupted', 'abandoned', 'missed')),
    exit_code    INTEGER,
    signal       INTEGER,
    pid          INTEGER,
    host         TEXT    NOT NULL,
    owner        TEXT    NOT NULL,  -- the jobrun process that claimed the run: host:pid:instant
    output_bytes INTEGER NOT NULL DEFAULT 0,
    output_tail  BLOB,
    error        TEXT,
    parent_id    INTEGER,
    attempt      INTEGER NOT NULL DEFAULT 1
);

INSERT INTO runs_new (id, job, trigger, tick, claimed_at, started_at, finished_at, duration_ms,
                      status, exit_code, signal, pid, host, owner, output_bytes, output_tail,
                      error, parent_id, attempt)
    SELECT id, job, trigger, tick, claimed_at, started_at, finished_at, duration_ms,
           status, exit_code, signal, pid, host, owner, output_bytes, output_tail,
           error, parent_id, attempt
    FROM runs;

DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE UNIQUE INDEX runs_job_tick ON runs (job, tick, attempt) WHERE tick IS NOT NULL;
CREATE INDEX runs_job_id ON runs (job, id);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
