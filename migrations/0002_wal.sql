-- Continuous WAL archiving: the WAL files of each source that are in the
-- repository, and the named restore points found in them.
--
-- LSNs are TEXT in PostgreSQL's form, upper-case hexadecimal ('0/3A000028'),
-- as in the backups table: they do not sort as strings, so ordering uses
-- (timeline, segno).

CREATE TABLE wal_files (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id       INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    -- The file's name in the repository: a segment ('000000010000000000000003'),
    -- a piece of a partial segment ('000000010000000000000003.partial.00A3C000',
    -- its first 0xA3C000 bytes) or a timeline history file ('00000002.history').
    name            TEXT    NOT NULL CHECK (name <> ''),
    kind            TEXT    NOT NULL CHECK (kind IN ('segment', 'partial', 'history')),
    timeline        INTEGER NOT NULL CHECK (timeline > 0),
    -- Segment number (the segment starts at segno * segment size); NULL for
    -- history files.
    segno           INTEGER CHECK (segno >= 0),
    -- The WAL the file holds: [start_lsn, end_lsn). NULL for history files.
    start_lsn       TEXT    CHECK (start_lsn <> ''),
    end_lsn         TEXT    CHECK (end_lsn <> ''),
    size            INTEGER NOT NULL CHECK (size > 0),
    -- What archiving the file added to the repository.
    stored_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
    -- Commit records in the file, and the commit times of the first and last.
    commits         INTEGER NOT NULL DEFAULT 0 CHECK (commits >= 0),
    first_commit_at TEXT,
    last_commit_at  TEXT,
    -- Rows of wal_restore_points that point to this file.
    restore_points  INTEGER NOT NULL DEFAULT 0 CHECK (restore_points >= 0),
    via             TEXT    NOT NULL CHECK (via IN ('stream', 'push')),
    archived_at     TEXT    NOT NULL,
    UNIQUE (source_id, name),
    CHECK ((kind = 'history') = (segno IS NULL)),
    CHECK ((kind = 'history') = (start_lsn IS NULL)),
    CHECK ((kind = 'history') = (end_lsn IS NULL)),
    CHECK ((commits = 0) = (first_commit_at IS NULL)),
    CHECK ((first_commit_at IS NULL) = (last_commit_at IS NULL)),
    CHECK (first_commit_at <= last_commit_at),
    CHECK (kind <> 'history' OR (commits = 0 AND restore_points = 0))
) STRICT;

-- One row per segment of a timeline: the complete segment, or the newest
-- piece of its partial, never both (store.RecordWAL replaces a piece with a
-- longer one and deletes it when the segment arrives). NULLs (history files)
-- never collide. This index also serves listing in (timeline, segno) order.
CREATE UNIQUE INDEX wal_files_segment ON wal_files (source_id, timeline, segno);

CREATE TABLE wal_restore_points (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    timeline    INTEGER NOT NULL CHECK (timeline > 0),
    -- As given to pg_create_restore_point(): at most 63 bytes.
    name        TEXT    NOT NULL CHECK (name <> '' AND length(CAST(name AS BLOB)) < 64),
    -- Start of the restore point's WAL record.
    lsn         TEXT    NOT NULL CHECK (lsn <> ''),
    -- The time written in the record.
    at          TEXT    NOT NULL,
    -- The newest WAL file that holds the record; NULL if that file's row is
    -- gone.
    wal_file_id INTEGER REFERENCES wal_files (id) ON DELETE SET NULL,
    UNIQUE (source_id, timeline, lsn)
) STRICT;

CREATE INDEX wal_restore_points_name ON wal_restore_points (source_id, name);
CREATE INDEX wal_restore_points_file ON wal_restore_points (wal_file_id);
