-- Trust: four roles and disabled accounts, restores that carry the mark Backstop
-- wrote into the directories it created, an interrupted state for restores whose
-- process died, and sources that can be removed while their backups are kept.
--
-- SQLite cannot change a CHECK constraint in place: users and restores are
-- rebuilt. Sessions are dropped first (signing everyone out once) so that
-- dropping the old users table cascades into nothing.

DROP TABLE sessions;

CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL, -- bcrypt
    role          TEXT    NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'operator', 'oncall', 'auditor')),
    created_at    TEXT    NOT NULL,
    last_login_at TEXT,
    -- A disabled user cannot sign in; their sessions are ended when they are disabled.
    disabled_at   TEXT
) STRICT;
INSERT INTO users_new (id, name, password_hash, role, created_at, last_login_at)
    SELECT id, name, password_hash, role, created_at, last_login_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

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

CREATE TABLE restores_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id    INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    job_id       INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    backup_id    INTEGER REFERENCES backups (id) ON DELETE SET NULL,
    target       TEXT    NOT NULL CHECK (target <> ''),
    data_dir     TEXT    NOT NULL CHECK (data_dir <> ''),
    port         INTEGER CHECK (port BETWEEN 1 AND 65535),
    pg_major     INTEGER NOT NULL CHECK (pg_major > 0),
    state        TEXT    NOT NULL CHECK (state IN ('restoring', 'running', 'stopped', 'ready', 'failed', 'interrupted', 'deleted')),
    stop_line    TEXT,
    last_commit_at TEXT,
    error        TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    -- The token written into the marker file Backstop leaves in the data directory
    -- it claimed: a directory is removed only when its marker carries this token.
    -- NULL for restores made before markers existed: those are never removed.
    marker       TEXT    CHECK (marker <> ''),
    -- 1 when the restore created its data directory (so may remove it whole); 0 when
    -- the directory existed before and only what the restore wrote may go.
    created_dir  INTEGER NOT NULL DEFAULT 0 CHECK (created_dir IN (0, 1))
) STRICT;
INSERT INTO restores_new (id, source_id, job_id, backup_id, target, data_dir, port, pg_major, state, stop_line,
        last_commit_at, error, created_at, updated_at)
    SELECT id, source_id, job_id, backup_id, target, data_dir, port, pg_major, state, stop_line,
        last_commit_at, error, created_at, updated_at FROM restores;
DROP TABLE restores;
ALTER TABLE restores_new RENAME TO restores;
CREATE INDEX restores_source ON restores (source_id, id);
CREATE UNIQUE INDEX restores_live_dir ON restores (data_dir) WHERE state NOT IN ('deleted', 'failed', 'interrupted');
CREATE UNIQUE INDEX restores_live_port ON restores (port) WHERE state IN ('restoring', 'running', 'stopped') AND port IS NOT NULL;

-- A removed source streams no WAL and takes no backups; its backups and WAL stay
-- restorable. Its name stays taken while they exist.
ALTER TABLE sources ADD COLUMN removed_at TEXT;

-- Where the source keeps its files on its host (data directory, then tablespaces), as the
-- server told us when it was checked, so that no restore on the same host writes there even
-- while the source is stopped. NULL when the server would not say (a role without
-- pg_read_all_settings does not see data_directory).
ALTER TABLE sources ADD COLUMN dirs TEXT CHECK (dirs IS NULL OR json_valid(dirs));
