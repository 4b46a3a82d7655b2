-- The WAL rows of a source that were changed or deleted, in order: WAL rows are
-- mostly only added (their IDs only grow), so a restorable window can be kept up to
-- date by reading the rows added since it was computed and the rows logged here,
-- instead of every row of the source after each new segment.
CREATE TABLE wal_file_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   INTEGER NOT NULL,
    wal_file_id INTEGER NOT NULL
) STRICT;

CREATE INDEX wal_file_changes_source ON wal_file_changes (source_id, seq);

CREATE TRIGGER wal_files_change_update AFTER UPDATE ON wal_files BEGIN
    INSERT INTO wal_file_changes (source_id, wal_file_id) VALUES (NEW.source_id, NEW.id);
END;

CREATE TRIGGER wal_files_change_delete AFTER DELETE ON wal_files BEGIN
    INSERT INTO wal_file_changes (source_id, wal_file_id) VALUES (OLD.source_id, OLD.id);
END;

-- Only the last 10,000 changes are kept: a reader that is further behind reads
-- every row again.
CREATE TRIGGER wal_file_changes_bound AFTER INSERT ON wal_file_changes BEGIN
    DELETE FROM wal_file_changes WHERE seq <= NEW.seq - 10000;
END;
