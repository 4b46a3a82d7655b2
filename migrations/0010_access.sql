-- Access: restores limited per source, and sessions with an absolute age limit.
--
-- A user restores every source unless restore_limited is 1; then only the sources
-- listed for them in user_restore_sources (none listed: no source at all). The flag
-- keeps "limited to nothing" apart from "not limited", so that removing the last
-- source from a list never widens it. Admins restore every source whatever is stored.

ALTER TABLE users ADD COLUMN restore_limited INTEGER NOT NULL DEFAULT 0 CHECK (restore_limited IN (0, 1));

CREATE TABLE user_restore_sources (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source_id INTEGER NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, source_id)
) STRICT, WITHOUT ROWID;

-- A session ends at absolute_expires_at however busy it is; expires_at (the idle
-- limit) is never extended past it. Sessions from before this migration end when
-- their idle limit would have ended them.
ALTER TABLE sessions ADD COLUMN absolute_expires_at TEXT;
UPDATE sessions SET absolute_expires_at = expires_at;
