-- Retention: each source's policy (its backup schedule, the recovery window it
-- promises and the backups it keeps beyond it), the runs of its schedule, pins
-- (legal hold), what expiry deleted and why, and the repository's size over time.

CREATE TABLE policies (
    source_id      INTEGER PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    -- Full backups: a cron expression (five fields, or a descriptor such as
    -- '@daily'), read in time_zone; NULL for none.
    backup_cron    TEXT CHECK (backup_cron <> ''),
    -- An IANA time zone name: the schedule's, and the one in which retention
    -- counts days, weeks, months and years.
    time_zone      TEXT    NOT NULL CHECK (time_zone <> ''),
    -- Every second of the last window_seconds stays restorable; 0 for none.
    window_seconds INTEGER NOT NULL CHECK (window_seconds >= 0),
    keep_last      INTEGER NOT NULL CHECK (keep_last >= 0),
    keep_daily     INTEGER NOT NULL CHECK (keep_daily >= 0),
    keep_weekly    INTEGER NOT NULL CHECK (keep_weekly >= 0),
    keep_monthly   INTEGER NOT NULL CHECK (keep_monthly >= 0),
    keep_yearly    INTEGER NOT NULL CHECK (keep_yearly >= 0),
    -- The newest min_keep complete backups are never expired, however old.
    min_keep       INTEGER NOT NULL CHECK (min_keep >= 0),
    -- One backup a month is kept for archive_years years (without the WAL
    -- after it).
    archive_years  INTEGER NOT NULL CHECK (archive_years >= 0),
    -- When the schedule (cron or time zone) last changed: runs due before it
    -- are not owed.
    schedule_since TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    updated_by     TEXT    NOT NULL
) STRICT;

-- One row per scheduled run: when it was due and when it was queued. A run
-- queued more than a minute after it was due (Backstop was down, or busy) is
-- late; runs missed while Backstop was down are run once, on start-up.
CREATE TABLE schedule_runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id  INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('backup', 'verify', 'drill')),
    due_at     TEXT    NOT NULL,
    queued_at  TEXT    NOT NULL,
    late       INTEGER NOT NULL CHECK (late IN (0, 1)),
    -- How many earlier due times were missed and folded into this run.
    missed     INTEGER NOT NULL DEFAULT 0 CHECK (missed >= 0),
    job_id     INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    -- Why no job was queued (a backup already running), or NULL.
    note       TEXT,
    UNIQUE (source_id, kind, due_at)
) STRICT;

CREATE INDEX schedule_runs_source ON schedule_runs (source_id, kind, due_at);

-- A pinned backup is never expired (legal hold).
ALTER TABLE backups ADD COLUMN pinned_at TEXT;
ALTER TABLE backups ADD COLUMN pinned_by TEXT;
ALTER TABLE backups ADD COLUMN pin_note TEXT;

-- What expiry deleted, and the rule that allowed it. The catalog rows go at
-- once; the repository objects when pruning has deleted them (done_at), so a
-- run that stopped in between is finished by the next one.
CREATE TABLE expirations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    kind        TEXT    NOT NULL CHECK (kind IN ('backup', 'wal')),
    -- The backup's manifest id, or the WAL file's name, in the repository.
    name        TEXT    NOT NULL CHECK (name <> ''),
    system_id   TEXT    NOT NULL,
    -- For a backup: its catalog id and consistency time; for WAL: its range.
    backup_id   INTEGER,
    start_lsn   TEXT,
    end_lsn     TEXT,
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    reason      TEXT    NOT NULL CHECK (reason <> ''),
    job_id      INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    expired_at  TEXT    NOT NULL,
    done_at     TEXT,
    UNIQUE (kind, system_id, name)
) STRICT;

CREATE INDEX expirations_pending ON expirations (done_at) WHERE done_at IS NULL;

-- The repository's size, sampled after backups and pruning.
CREATE TABLE storage_samples (
    at          TEXT    PRIMARY KEY,
    packs       INTEGER NOT NULL CHECK (packs >= 0),
    bytes       INTEGER NOT NULL CHECK (bytes >= 0),
    -- What tombstoned packs still hold, deleted by a later prune.
    dead_bytes  INTEGER NOT NULL CHECK (dead_bytes >= 0)
) STRICT;
