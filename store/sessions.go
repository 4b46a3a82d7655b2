package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Session is a signed-in browser. Only the hash of its token is stored: the
// token itself lives in the cookie alone.
type Session struct {
	// TokenHash is the hex SHA-256 of the token; it identifies the session
	// without granting it.
	TokenHash string
	UserID    int64
	CreatedAt time.Time
	// ExpiresAt is when the session ends unless it is used before then (the idle limit);
	// it never passes AbsoluteExpiresAt.
	ExpiresAt time.Time
	// AbsoluteExpiresAt is when the session ends however busy it is.
	AbsoluteExpiresAt time.Time
	LastSeenAt        time.Time
	UserAgent         string
	IP                string
}

const sessionColumns = `token_hash, user_id, created_at, expires_at, absolute_expires_at, last_seen_at, user_agent, ip`

// scanSession scans a row of sessionColumns.
func scanSession(r rowScanner) (Session, error) {
	var ss Session
	err := r.Scan(&ss.TokenHash, &ss.UserID, scanTime(&ss.CreatedAt), scanTime(&ss.ExpiresAt), scanTime(&ss.AbsoluteExpiresAt),
		scanTime(&ss.LastSeenAt), orZero(&ss.UserAgent), orZero(&ss.IP))
	return ss, err
}

// hashToken returns the stored form of a session token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateSession signs in user userID, from a browser with the given user agent
// and IP address, for ttl from its last use (see TouchSession) and at most
// maxAge in all. It returns the token to put in the cookie: 32 random bytes,
// base64url-encoded.
func (s *Store) CreateSession(ctx context.Context, userID int64, ttl, maxAge time.Duration, userAgent, ip string) (string, Session, error) {
	if ttl <= 0 {
		return "", Session{}, fmt.Errorf("create session: %w", invalid("ttl", "must be positive"))
	}
	if maxAge <= 0 {
		return "", Session{}, fmt.Errorf("create session: %w", invalid("max_age", "must be positive"))
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.clock()
	ss, err := scanSession(s.wdb.QueryRowContext(ctx, `
		INSERT INTO sessions (token_hash, user_id, created_at, expires_at, absolute_expires_at, last_seen_at, user_agent, ip)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+sessionColumns,
		hashToken(token), userID, formatTime(now), formatTime(now.Add(min(ttl, maxAge))), formatTime(now.Add(maxAge)), formatTime(now),
		nullIfZero(userAgent), nullIfZero(ip)))
	if isForeignKey(err) {
		return "", Session{}, fmt.Errorf("create session: user %d: %w", userID, ErrNotFound)
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	return token, ss, nil
}

// SessionByToken returns the unexpired session with the given token and its
// user. ErrNotFound means there is none, or its user is disabled (a session made
// while the user was being disabled outlives the sessions deleted then): the
// browser must sign in.
func (s *Store) SessionByToken(ctx context.Context, token string) (Session, User, error) {
	var ss Session
	var u User
	err := s.db.QueryRowContext(ctx, `
		SELECT s.token_hash, s.user_id, s.created_at, s.expires_at, s.absolute_expires_at, s.last_seen_at, s.user_agent, s.ip,
			u.id, u.name, u.role, u.created_at, u.last_login_at
		FROM sessions AS s JOIN users AS u ON u.id = s.user_id
		WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.absolute_expires_at > ?2 AND u.disabled_at IS NULL`,
		hashToken(token), formatTime(s.clock())).Scan(
		&ss.TokenHash, &ss.UserID, scanTime(&ss.CreatedAt), scanTime(&ss.ExpiresAt), scanTime(&ss.AbsoluteExpiresAt), scanTime(&ss.LastSeenAt),
		orZero(&ss.UserAgent), orZero(&ss.IP),
		&u.ID, &u.Name, &u.Role, scanTime(&u.CreatedAt), scanNullTime(&u.LastLoginAt))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, User{}, fmt.Errorf("session: %w", err)
	}
	return ss, u, nil
}

// TouchSession records that the session with the given token was just
// used and, when ttl is positive, extends it to expire ttl from now, but
// never past its absolute expiry. ErrNotFound means the session is gone or
// expired.
func (s *Store) TouchSession(ctx context.Context, token string, ttl time.Duration) error {
	now := s.clock()
	res, err := s.wdb.ExecContext(ctx, `
		UPDATE sessions
		SET last_seen_at = ?1, expires_at = CASE WHEN ?2 != '' THEN min(?2, absolute_expires_at) ELSE expires_at END
		WHERE token_hash = ?3 AND expires_at > ?1 AND absolute_expires_at > ?1`,
		formatTime(now), expiry(now, ttl), hashToken(token))
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("touch session: %w", err)
	} else if n == 0 {
		return fmt.Errorf("touch session: %w", ErrNotFound)
	}
	return nil
}

// expiry returns the stored form of now+ttl, or "" when ttl is not
// positive.
func expiry(now time.Time, ttl time.Duration) string {
	if ttl <= 0 {
		return ""
	}
	return formatTime(now.Add(ttl))
}

// DeleteSession signs out the session with the given token. Signing out a
// session that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hashToken(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes expired sessions and returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?1 OR absolute_expires_at <= ?1`, formatTime(s.clock()))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return n, nil
}

// SessionInfo is a session as its list shows it: whose it is, and nothing that grants it.
type SessionInfo struct {
	Session
	UserName string
}

// Sessions returns the unexpired sessions of user userID, or of every user when userID
// is 0, most recently used first.
func (s *Store) Sessions(ctx context.Context, userID int64) ([]SessionInfo, error) {
	scan := func(r rowScanner) (SessionInfo, error) {
		var si SessionInfo
		err := r.Scan(&si.TokenHash, &si.UserID, scanTime(&si.CreatedAt), scanTime(&si.ExpiresAt), scanTime(&si.AbsoluteExpiresAt),
			scanTime(&si.LastSeenAt), orZero(&si.UserAgent), orZero(&si.IP), &si.UserName)
		return si, err
	}
	ss, err := queryAll(ctx, s.db, scan, `
		SELECT s.token_hash, s.user_id, s.created_at, s.expires_at, s.absolute_expires_at, s.last_seen_at, s.user_agent, s.ip, u.name
		FROM sessions AS s JOIN users AS u ON u.id = s.user_id
		WHERE (?1 = 0 OR s.user_id = ?1) AND s.expires_at > ?2 AND s.absolute_expires_at > ?2
		ORDER BY s.last_seen_at DESC, s.token_hash`, userID, formatTime(s.clock()))
	if err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	return ss, nil
}

// SessionByHash returns the session whose token hashes to tokenHash, expired or not, and
// the name of its user.
func (s *Store) SessionByHash(ctx context.Context, tokenHash string) (SessionInfo, error) {
	var si SessionInfo
	err := s.db.QueryRowContext(ctx, `
		SELECT s.token_hash, s.user_id, s.created_at, s.expires_at, s.absolute_expires_at, s.last_seen_at, s.user_agent, s.ip, u.name
		FROM sessions AS s JOIN users AS u ON u.id = s.user_id WHERE s.token_hash = ?`, tokenHash).Scan(
		&si.TokenHash, &si.UserID, scanTime(&si.CreatedAt), scanTime(&si.ExpiresAt), scanTime(&si.AbsoluteExpiresAt),
		scanTime(&si.LastSeenAt), orZero(&si.UserAgent), orZero(&si.IP), &si.UserName)
	if errors.Is(err, sql.ErrNoRows) {
		return SessionInfo{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return SessionInfo{}, fmt.Errorf("session: %w", err)
	}
	return si, nil
}

// DeleteSessionByHash ends the session whose token hashes to tokenHash. Ending one that
// does not exist is ErrNotFound.
func (s *Store) DeleteSessionByHash(ctx context.Context, tokenHash string) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete session: %w", err)
	} else if n == 0 {
		return fmt.Errorf("delete session: %w", ErrNotFound)
	}
	return nil
}

// DeleteOtherSessions ends every session of user userID but the one whose token hashes to
// keepHash, and returns the hashes of those it ended.
func (s *Store) DeleteOtherSessions(ctx context.Context, userID int64, keepHash string) ([]string, error) {
	scan := func(r rowScanner) (string, error) {
		var h string
		return h, r.Scan(&h)
	}
	hs, err := queryAll(ctx, s.wdb, scan, `DELETE FROM sessions WHERE user_id = ? AND token_hash <> ? RETURNING token_hash`, userID, keepHash)
	if err != nil {
		return nil, fmt.Errorf("delete other sessions: %w", err)
	}
	return hs, nil
}
