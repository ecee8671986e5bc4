-- jobrun state, schema version 2: daemon heartbeats, for `jobrun status`.
--
-- One row per daemon process (its owner string, as in runs.owner). A daemon
-- beats every 10 seconds and marks its row stopped at a clean shutdown; a row
-- whose beat is old belongs to a daemon that died.

CREATE TABLE daemons (
    owner      TEXT    PRIMARY KEY,
    pid        INTEGER NOT NULL,
    host       TEXT    NOT NULL,
    started_at TEXT    NOT NULL,
    last_beat  TEXT    NOT NULL,
    stopped_at TEXT
);
