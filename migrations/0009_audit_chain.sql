-- The audit log becomes a hash chain (see store/auditchain.go for the format):
-- each entry carries the hash of the entry before it and its own hash, so that an
-- edited or deleted entry is detected by `backstop audit verify`.
--
-- SQLite has no SHA-256, so the entries that exist when this migration runs are
-- chained by Go once, at start-up, right after the migrations (store.Open →
-- sealAudit). From then on every entry is appended chained.
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- The audit page and export filter by who, what (a prefix), which source and when,
-- newest first, with keyset paging on id.
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
CREATE INDEX audit_log_at ON audit_log (at, id);
-- Who did what, and what was done to a source, are the common combinations: an equality
-- on both keeps a page an index walk in id order even when nothing matches.
CREATE INDEX audit_log_actor_action ON audit_log (actor, action, id);
CREATE INDEX audit_log_target_action ON audit_log (target, action, id);

-- Repeats of an action counted into one entry (failed sign-ins): the entry that opened
-- the window is chained like any other; the running count lives here, outside the
-- chain, until the window closes and a chained ".total" entry records the final count.
CREATE TABLE audit_open_counts (
    entry_id   INTEGER PRIMARY KEY REFERENCES audit_log (id),
    action     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    target     TEXT,
    ip         TEXT,
    first_at   TEXT    NOT NULL,
    last_at    TEXT    NOT NULL,
    closes_at  TEXT    NOT NULL,
    count      INTEGER NOT NULL CHECK (count >= 1)
) STRICT;

CREATE INDEX audit_open_counts_key ON audit_open_counts (action, actor, target, ip);
CREATE INDEX audit_open_counts_closes ON audit_open_counts (closes_at);
