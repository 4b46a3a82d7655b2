-- The WAL archiver's state per source, so that health is computed from facts
-- (streaming or not, how far behind, what the slot keeps on the source)
-- rather than from the age of the newest file; the WAL gaps it had to accept
-- when a replication slot was lost; and a row that /healthz rewrites to prove
-- that the catalog can be written.
--
-- LSNs are TEXT in PostgreSQL's form, as elsewhere.

CREATE TABLE archiver_state (
    source_id         INTEGER PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    state             TEXT    NOT NULL CHECK (state IN ('starting', 'streaming', 'behind', 'stopped', 'recovering')),
    -- When the archiver entered state.
    since             TEXT    NOT NULL,
    -- Why it is stopped or recovering, in words for a person; cause is the
    -- kind of problem: 'unreachable', 'slot_lost', 'identity', 'spool', 'error'.
    reason            TEXT,
    cause             TEXT,
    -- What the receiver wrote and fsynced, and the server's WAL flush
    -- position when last seen.
    received_lsn      TEXT,
    flushed_lsn       TEXT,
    server_lsn        TEXT,
    behind_bytes      INTEGER NOT NULL DEFAULT 0 CHECK (behind_bytes >= 0),
    -- When the spool last held everything the server had: behind_seconds
    -- is measured from it.
    caught_up_at      TEXT,
    -- The replication slot, as pg_replication_slots shows it: wal_status
    -- ('reserved', 'extended', 'unreserved', 'lost') and the WAL it keeps on
    -- the source (pg_current_wal_lsn() - restart_lsn).
    slot_name         TEXT,
    slot_wal_status   TEXT,
    slot_retained_bytes INTEGER CHECK (slot_retained_bytes >= 0),
    -- The newest WAL gap accepted when the slot was lost.
    gap_from_lsn      TEXT,
    gap_to_lsn        TEXT,
    gap_at            TEXT,
    -- Set with a gap: the window cannot continue past it until a base backup
    -- completes after it. Cleared then.
    needs_backup_since TEXT,
    recoveries        INTEGER NOT NULL DEFAULT 0 CHECK (recoveries >= 0),
    updated_at        TEXT    NOT NULL,
    CHECK ((state IN ('stopped', 'recovering')) = (reason IS NOT NULL))
) STRICT;

-- WAL lost on a source before Backstop had it: each row is one recovery from
-- a lost replication slot. The window finds the hole from the files anyway;
-- this says why it is there.
CREATE TABLE wal_gaps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    timeline    INTEGER NOT NULL CHECK (timeline > 0),
    -- [from_lsn, to_lsn): from the end of what was archived to where
    -- streaming restarted.
    from_lsn    TEXT    NOT NULL CHECK (from_lsn <> ''),
    to_lsn      TEXT    NOT NULL CHECK (to_lsn <> ''),
    reason      TEXT    NOT NULL CHECK (reason <> ''),
    detected_at TEXT    NOT NULL
) STRICT;

CREATE INDEX wal_gaps_source ON wal_gaps (source_id, id);

-- One row, rewritten by /healthz.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT    NOT NULL
) STRICT;
