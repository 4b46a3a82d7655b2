-- CREATE TABLESPACE records found in archived WAL. Recovery replays one by
-- creating the tablespace at the path the source gave it, wherever the
-- restored data directory is: on the source's host, inside the source's own
-- live tablespace directory. The restore planner refuses a plan whose WAL
-- holds one, and the source page lists them.
--
-- LSNs are TEXT in PostgreSQL's form, upper-case hexadecimal, as elsewhere.

CREATE TABLE wal_tablespaces (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id      INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    -- The timeline in the header of the WAL page the record starts on (a new
    -- timeline's first segment begins with its parent's WAL, whose pages keep
    -- the parent's timeline).
    timeline       INTEGER NOT NULL CHECK (timeline > 0),
    -- Start of the record, of the record after it, and of the one before it
    -- (a recovery_target_lsn there, inclusive, stops just before it).
    lsn            TEXT    NOT NULL CHECK (lsn <> ''),
    end_lsn        TEXT    NOT NULL CHECK (end_lsn <> ''),
    prev_lsn       TEXT    NOT NULL CHECK (prev_lsn <> ''),
    -- The tablespace's OID and LOCATION ('' for an in-place tablespace).
    oid            INTEGER NOT NULL CHECK (oid > 0 AND oid <= 4294967295),
    location       TEXT    NOT NULL,
    -- The commit time of the last commit before the record in the WAL file it
    -- was found in; NULL when the file holds none before it.
    prev_commit_at TEXT,
    -- The WAL file (repository name) it was first recorded from.
    wal_file       TEXT    NOT NULL CHECK (wal_file <> ''),
    recorded_at    TEXT    NOT NULL,
    UNIQUE (source_id, timeline, lsn)
) STRICT;
