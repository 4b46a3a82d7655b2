-- Restored instances: what a point-in-time restore produced, so that it can be listed,
-- started, stopped and deleted.
CREATE TABLE restores (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id    INTEGER NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
    job_id       INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    backup_id    INTEGER REFERENCES backups (id) ON DELETE SET NULL,
    -- The target as the operator gave it, normalized: 'latest', 'immediate',
    -- 'time 2026-11-25 09:30:00.000000+00', 'lsn 0/3A000028', 'name before-x'.
    target       TEXT    NOT NULL CHECK (target <> ''),
    data_dir     TEXT    NOT NULL CHECK (data_dir <> ''),
    -- The TCP port on 127.0.0.1 of a started instance; NULL for a directory only.
    port         INTEGER CHECK (port BETWEEN 1 AND 65535),
    pg_major     INTEGER NOT NULL CHECK (pg_major > 0),
    state        TEXT    NOT NULL CHECK (state IN ('restoring', 'running', 'stopped', 'ready', 'failed', 'deleted')),
    -- Where replay stopped, as the server logged it, and the last commit restored.
    stop_line    TEXT,
    last_commit_at TEXT,
    error        TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
) STRICT;

CREATE INDEX restores_source ON restores (source_id, id);
-- Two live restores never share a data directory or a port.
CREATE UNIQUE INDEX restores_live_dir ON restores (data_dir) WHERE state <> 'deleted';
CREATE UNIQUE INDEX restores_live_port ON restores (port) WHERE state IN ('restoring', 'running', 'stopped') AND port IS NOT NULL;
