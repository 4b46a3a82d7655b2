-- Integrity for on-call: verification runs and what they found, restore drills
-- and what they proved, alerts with their lifecycle, notification channels and
-- deliveries, and samples of each source's archiving lag for charts. The
-- policy gains the schedules of verification and drills and the objectives
-- alerts compare against.

ALTER TABLE policies ADD COLUMN verify_cron TEXT CHECK (verify_cron <> '');
ALTER TABLE policies ADD COLUMN drill_cron TEXT CHECK (drill_cron <> '');
-- Alert when archiving is behind by more than this (the RPO objective).
ALTER TABLE policies ADD COLUMN rpo_seconds INTEGER NOT NULL DEFAULT 60 CHECK (rpo_seconds > 0);
-- Alert when the newest passing drill is older than this.
ALTER TABLE policies ADD COLUMN drill_max_age_seconds INTEGER NOT NULL DEFAULT 691200 CHECK (drill_max_age_seconds > 0);
-- A routine verification re-reads every object at least once in this period.
ALTER TABLE policies ADD COLUMN verify_period_seconds INTEGER NOT NULL DEFAULT 2592000 CHECK (verify_period_seconds > 0);

CREATE TABLE verify_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    -- The source whose backups and WAL were checked; the packs are the
    -- repository's, shared by every source.
    source_id        INTEGER REFERENCES sources (id) ON DELETE CASCADE,
    deep             INTEGER NOT NULL CHECK (deep IN (0, 1)),
    state            TEXT    NOT NULL CHECK (state IN ('running', 'clean', 'findings', 'failed')),
    started_at       TEXT    NOT NULL,
    finished_at      TEXT,
    packs_checked    INTEGER NOT NULL DEFAULT 0,
    packs_total      INTEGER NOT NULL DEFAULT 0,
    bytes_read       INTEGER NOT NULL DEFAULT 0,
    blobs_checked    INTEGER NOT NULL DEFAULT 0,
    manifests_checked INTEGER NOT NULL DEFAULT 0,
    wal_checked      INTEGER NOT NULL DEFAULT 0,
    -- Where the next routine run continues its rotation through the packs
    -- (repository-wide: packs are shared by every source), and from when it
    -- reads new packs whole.
    cursor           TEXT,
    next_since       TEXT,
    error            TEXT,
    CHECK ((state = 'running') = (finished_at IS NULL))
) STRICT;

CREATE INDEX verify_runs_source ON verify_runs (source_id, id);

CREATE TABLE verify_findings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES verify_runs (id) ON DELETE CASCADE,
    source_id   INTEGER REFERENCES sources (id) ON DELETE CASCADE,
    -- The backup whose file references the object, NULL for WAL or a pack.
    backup_id   INTEGER REFERENCES backups (id) ON DELETE SET NULL,
    kind        TEXT    NOT NULL CHECK (kind <> ''),
    object      TEXT    NOT NULL,
    pack        TEXT,
    -- The file in the backup, or the WAL file's name.
    path        TEXT,
    -- For a WAL gap: the missing range.
    from_lsn    TEXT,
    to_lsn      TEXT,
    reason      TEXT    NOT NULL CHECK (reason <> '')
) STRICT;

CREATE INDEX verify_findings_run ON verify_findings (run_id);

-- A backup's last verification: when it was last checked whole, and the result.
ALTER TABLE backups ADD COLUMN verified_at TEXT;
ALTER TABLE backups ADD COLUMN verify_state TEXT CHECK (verify_state IN ('ok', 'corrupt'));

CREATE TABLE drills (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id      INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    job_id         INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    state          TEXT    NOT NULL CHECK (state IN ('running', 'passed', 'failed')),
    -- The second the drill restored to (and so proved restorable).
    target_at      TEXT    NOT NULL,
    backup_id      INTEGER REFERENCES backups (id) ON DELETE SET NULL,
    started_at     TEXT    NOT NULL,
    finished_at    TEXT,
    -- Time from the start to a restored instance that passed its checks.
    rto_ms         INTEGER,
    -- The newest commit the restored instance holds (at or before target_at).
    last_commit_at TEXT,
    -- Row counts of every table, as JSON {"db.schema.table": n}.
    tables         TEXT,
    checks         TEXT,
    error          TEXT,
    CHECK ((state = 'running') = (finished_at IS NULL))
) STRICT;

CREATE INDEX drills_source ON drills (source_id, id);

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule            TEXT    NOT NULL CHECK (rule <> ''),
    source_id       INTEGER REFERENCES sources (id) ON DELETE CASCADE,
    -- Identifies the condition: one open alert per key.
    dedupe_key      TEXT    NOT NULL CHECK (dedupe_key <> ''),
    severity        TEXT    NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    state           TEXT    NOT NULL CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    title           TEXT    NOT NULL,
    explanation     TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    -- Facts behind it, as JSON {"name": "value"}.
    evidence        TEXT    NOT NULL DEFAULT '{}',
    first_at        TEXT    NOT NULL,
    last_seen_at    TEXT    NOT NULL,
    acked_by        TEXT,
    acked_at        TEXT,
    ack_comment     TEXT,
    resolved_at     TEXT,
    resolved_by     TEXT,
    resolve_comment TEXT,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK (state <> 'acknowledged' OR acked_at IS NOT NULL)
) STRICT;

CREATE UNIQUE INDEX alerts_open ON alerts (dedupe_key) WHERE state <> 'resolved';
CREATE INDEX alerts_state ON alerts (state, severity, first_at);
CREATE INDEX alerts_source ON alerts (source_id, id);

CREATE TABLE notification_channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE CHECK (name <> ''),
    kind        TEXT    NOT NULL CHECK (kind IN ('webhook', 'slack', 'email')),
    -- The channel's settings as JSON, sealed like sources' connection strings
    -- (they hold secrets: a webhook's signing key, an SMTP password).
    config      TEXT    NOT NULL,
    -- Alerts below this severity are not sent.
    min_severity TEXT   NOT NULL CHECK (min_severity IN ('critical', 'warning', 'info')),
    enabled     INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
) STRICT;

CREATE TABLE notification_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id  INTEGER NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    alert_id    INTEGER REFERENCES alerts (id) ON DELETE CASCADE,
    event       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT    NOT NULL,
    error       TEXT
) STRICT;

CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, id);

-- Each source's archiving lag and WAL volume, sampled every minute for charts
-- and anomaly detection.
CREATE TABLE source_samples (
    source_id     INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    at            TEXT    NOT NULL,
    lag_seconds   REAL    NOT NULL,
    lag_bytes     INTEGER NOT NULL,
    -- WAL archived so far for the source (a running total: rates are differences).
    wal_bytes     INTEGER NOT NULL,
    PRIMARY KEY (source_id, at)
) STRICT, WITHOUT ROWID;

-- A number per source that changes whenever what its restorable window is
-- computed from changes, so that a computed window is reused until then
-- without reading every WAL row to find out.
CREATE TABLE window_versions (
    source_id INTEGER PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    version   INTEGER NOT NULL
) STRICT;

CREATE TRIGGER wal_files_version_insert AFTER INSERT ON wal_files BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER wal_files_version_update AFTER UPDATE ON wal_files BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER wal_files_version_delete AFTER DELETE ON wal_files BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (OLD.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER backups_version_insert AFTER INSERT ON backups BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER backups_version_update AFTER UPDATE OF state, start_lsn, end_lsn, finished_at, pinned_at ON backups BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER backups_version_delete AFTER DELETE ON backups BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (OLD.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER restore_points_version_insert AFTER INSERT ON wal_restore_points BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER tablespaces_version_insert AFTER INSERT ON wal_tablespaces BEGIN
    INSERT INTO window_versions (source_id, version) VALUES (NEW.source_id, 1)
        ON CONFLICT (source_id) DO UPDATE SET version = version + 1;
END;
