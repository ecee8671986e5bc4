-- jobrun PostgreSQL state, schema version 1: several hosts, one schedule (issue 14).
--
-- Every time below is written by the server's now(), never by a host's clock.
-- The version itself lives in jobrun_migrations (src/store/postgres/migrate.rs).

-- One row per daemon start (and per re-registration after it was fenced).
-- `epoch` is the fencing token: every claim, start, finish and heartbeat names
-- it and is refused once the row is dead or stopped. The lease is the row's
-- `lease_until`, renewed by each heartbeat; a live peer declares a daemon dead
-- once `lease_until < now()`.
CREATE TABLE daemons (
    epoch       BIGSERIAL   PRIMARY KEY,
    host        TEXT        NOT NULL,          -- host name or --host-id
    instance    TEXT        NOT NULL,          -- random per start (every container is PID 1)
    pid         INTEGER     NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_beat   TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL,
    stopped_at  TIMESTAMPTZ,                   -- a clean shutdown
    dead_at     TIMESTAMPTZ,                   -- declared dead by a peer: fenced
    dead_reason TEXT,
    loaded      TEXT                           -- what it loaded (JSON), as SQLite's daemons.loaded
);
CREATE INDEX daemons_live ON daemons (lease_until) WHERE dead_at IS NULL AND stopped_at IS NULL;

-- The definition of each job each daemon claims with: a fingerprint of its
-- schedule, zone, command, user and environment. Among live daemons the
-- earliest declaration of a job wins; a claim with another fingerprint is
-- refused (configuration drift is reported, never run twice).
CREATE TABLE definitions (
    epoch       BIGINT      NOT NULL,
    job         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    declared_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (epoch, job)
);
CREATE INDEX definitions_job ON definitions (job, declared_at);

-- The tick claims: at most one per (job, tick, attempt) across the fleet.
-- Kept apart from runs so that pruning the history never deletes what
-- at-most-once depends on.
CREATE TABLE claims (
    job         TEXT        NOT NULL,
    tick        TIMESTAMPTZ NOT NULL,
    attempt     INTEGER     NOT NULL,
    owner_epoch BIGINT      NOT NULL,
    fingerprint TEXT        NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    run_id      BIGINT,
    PRIMARY KEY (job, tick, attempt)
);

-- The run history of every host, with the columns of SQLite's runs table.
CREATE TABLE runs (
    id           BIGSERIAL   PRIMARY KEY,
    job          TEXT        NOT NULL,
    trigger      TEXT        NOT NULL,
    tick         TIMESTAMPTZ,                  -- NULL for runs that claim no tick
    attempt      INTEGER     NOT NULL DEFAULT 1,
    parent_id    BIGINT,
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,                  -- NULL when the command never started
    finished_at  TIMESTAMPTZ,
    duration_ms  BIGINT,
    status       TEXT        NOT NULL CHECK (status IN (
                     'running', 'succeeded', 'failed', 'timed_out', 'killed',
                     'skipped', 'interrupted', 'abandoned', 'missed')),
    exit_code    INTEGER,
    signal       INTEGER,
    pid          INTEGER,
    host         TEXT        NOT NULL,
    owner_epoch  BIGINT      NOT NULL,
    forbid       BOOLEAN     NOT NULL DEFAULT false,  -- the job's concurrency was forbid
    output_bytes BIGINT      NOT NULL DEFAULT 0,
    output_tail  BYTEA,
    error        TEXT,
    -- `concurrency: replace` on another host asked this run to stop.
    stop_requested_at TIMESTAMPTZ,
    stop_requested_by TEXT
);
-- `concurrency: forbid`, decided by the database: a second running run of the
-- job cannot be inserted while one is running, on any host.
CREATE UNIQUE INDEX runs_forbid ON runs (job) WHERE status = 'running' AND forbid;
CREATE INDEX runs_job_id ON runs (job, id);
CREATE INDEX runs_running ON runs (owner_epoch) WHERE status = 'running';
