-- Backstop catalog, first schema.
--
-- Conventions:
--   * Every table is STRICT, so a value of the wrong type is an error rather
--     than silently stored.
--   * Timestamps are TEXT in one fixed format, UTC with microseconds:
--     2026-11-25T09:47:35.123456Z. They sort and compare as strings, and
--     SQLite's date functions read them.
--   * Ids that appear in URLs, the audit trail or pagination use
--     AUTOINCREMENT so that a deleted id is never handed out again.
--   * JSON columns are checked with json_valid.

CREATE TABLE sources (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    dsn               TEXT    NOT NULL CHECK (dsn <> ''),
    system_identifier TEXT    NOT NULL CHECK (system_identifier <> ''),
    pg_version        INTEGER NOT NULL CHECK (pg_version > 0), -- server_version_num
    timeline          INTEGER CHECK (timeline > 0),
    data_checksums    INTEGER CHECK (data_checksums IN (0, 1)),
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL
) STRICT;

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL CHECK (kind <> ''),
    source_id        INTEGER REFERENCES sources (id) ON DELETE CASCADE,
    lock_key         TEXT    CHECK (lock_key <> ''),
    args             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    heartbeat_at     TEXT,
    owner_host       TEXT,
    owner_pid        INTEGER,
    owner_id         TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    phase            TEXT,
    bytes_done       INTEGER NOT NULL DEFAULT 0 CHECK (bytes_done >= 0),
    bytes_total      INTEGER NOT NULL DEFAULT 0 CHECK (bytes_total >= 0), -- 0: unknown
    error            TEXT,
    result           TEXT    CHECK (json_valid(result)),
    requested_by     TEXT,
    -- A job is finished exactly when it is in a final state, and a running
    -- job has been started.
    CHECK ((state IN ('queued', 'running')) = (finished_at IS NULL)),
    CHECK (state <> 'running' OR (started_at IS NOT NULL AND heartbeat_at IS NOT NULL))
) STRICT;

-- At most one queued or running job per lock key, across every process that
-- opens the catalog: this is how "one backup per source at a time" holds.
CREATE UNIQUE INDEX jobs_active_lock_key ON jobs (lock_key)
    WHERE state IN ('queued', 'running') AND lock_key IS NOT NULL;
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_source ON jobs (source_id, id);

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at      TEXT    NOT NULL,
    level   TEXT    NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    phase   TEXT,
    message TEXT    NOT NULL
) STRICT;

CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE backups (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id               INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    -- NULL once the job is pruned, and for backups read back from the
    -- repository by a catalog rebuild.
    job_id                  INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    repo_id                 TEXT    NOT NULL UNIQUE CHECK (repo_id <> ''),
    state                   TEXT    NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'cancelled', 'interrupted')),
    label                   TEXT,
    started_at              TEXT    NOT NULL,
    finished_at             TEXT,
    start_lsn               TEXT,
    end_lsn                 TEXT,
    timeline                INTEGER CHECK (timeline > 0),
    pg_version              INTEGER CHECK (pg_version > 0),
    system_identifier       TEXT,
    -- Statistics are 0 until the backup completes.
    source_bytes            INTEGER NOT NULL DEFAULT 0,
    stored_bytes_new        INTEGER NOT NULL DEFAULT 0,
    stored_bytes_referenced INTEGER NOT NULL DEFAULT 0,
    wal_bytes               INTEGER NOT NULL DEFAULT 0,
    wal_stored_bytes_new    INTEGER NOT NULL DEFAULT 0,
    file_count              INTEGER NOT NULL DEFAULT 0,
    block_count             INTEGER NOT NULL DEFAULT 0,
    block_count_new         INTEGER NOT NULL DEFAULT 0,
    error                   TEXT,
    CHECK ((state = 'running') = (finished_at IS NULL)),
    CHECK (state <> 'complete' OR (start_lsn IS NOT NULL AND end_lsn IS NOT NULL))
) STRICT;

CREATE INDEX backups_source_started ON backups (source_id, started_at);
CREATE INDEX backups_job ON backups (job_id);

CREATE TABLE backup_files (
    backup_id INTEGER NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    path      TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    mode      INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    blocks    INTEGER NOT NULL,
    PRIMARY KEY (backup_id, path)
) STRICT, WITHOUT ROWID;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL, -- bcrypt
    role          TEXT    NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'auditor')),
    created_at    TEXT    NOT NULL,
    last_login_at TEXT
) STRICT;

CREATE TABLE sessions (
    -- Hex SHA-256 of the cookie token; the token itself is never stored.
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL,
    user_agent   TEXT,
    ip           TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL CHECK (actor <> ''),  -- user name, or "cli:<os user>"
    action TEXT NOT NULL CHECK (action <> ''), -- e.g. "source.create", "user.login_failed"
    target TEXT,
    detail TEXT CHECK (json_valid(detail)),
    ip     TEXT
) STRICT;
