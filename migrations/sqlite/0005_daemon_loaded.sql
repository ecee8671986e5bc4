-- jobrun state, schema version 5: what each daemon loaded (issue 12).
--
-- `jobrun status` needs nothing but the state: the daemon records, at start
-- and after each reload, the names of the jobs it runs and the errors and
-- warnings of its sources (JSON, see src/store/daemons.rs `Loaded`). NULL for
-- a daemon of an older version, which recorded nothing.

ALTER TABLE daemons ADD COLUMN loaded TEXT;
