package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Source is a PostgreSQL cluster that Backstop backs up.
type Source struct {
	ID   int64
	Name string
	// DSN is the connection string, password included: mask it before
	// showing or logging it. The catalog keeps it sealed (see WithSealer); a
	// store opened without the key reads it as "" with SecretsSealed set.
	DSN string
	// SecretsSealed reports a DSN that this store cannot open: it was opened
	// without the key that sealed it.
	SecretsSealed bool
	// SystemIdentifier is the cluster's system identifier, from
	// IDENTIFY_SYSTEM or pg_control_system().
	SystemIdentifier string
	// PGVersion is server_version_num, such as 150004.
	PGVersion int
	// Timeline is the current timeline, 0 when unknown.
	Timeline int64
	// DataChecksums reports whether data checksums are on, nil when unknown.
	DataChecksums *bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Dirs are where the source keeps its files on its host, data directory first, then
	// tablespaces, as the server said when it was checked; nil when it would not say.
	Dirs []string
}

// SourceParams are the fields of a source that callers set.
type SourceParams struct {
	Name             string
	DSN              string
	SystemIdentifier string
	PGVersion        int
	Timeline         int64
	DataChecksums    *bool
	// Dirs are the source's data directory and tablespace directories; nil keeps those
	// recorded (on update).
	Dirs []string
}

// sourceName matches valid source names.
var sourceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateSourceName checks the form of a source name, so that callers can refuse a bad
// name before connecting to anything. It returns a *ValidationError on the field "name".
func ValidateSourceName(name string) error {
	switch {
	case name == "":
		return invalid("name", "is required")
	case !sourceName.MatchString(name):
		return invalid("name", "must be 1 to 63 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit")
	}
	return nil
}

// validate checks p.
func (p SourceParams) validate() error {
	if err := ValidateSourceName(p.Name); err != nil {
		return err
	}
	switch {
	case p.DSN == "":
		return invalid("dsn", "is required")
	case p.SystemIdentifier == "":
		return invalid("system_identifier", "is required")
	case p.PGVersion <= 0:
		return invalid("pg_version", "must be a server_version_num such as 150004")
	case p.Timeline < 0:
		return invalid("timeline", "must not be negative")
	}
	return nil
}

const sourceColumns = `id, name, dsn, system_identifier, pg_version, timeline, data_checksums, created_at, updated_at, dirs`

// scanSource scans a row of sourceColumns, opening its sealed DSN.
func (s *Store) scanSource(r rowScanner) (Source, error) {
	var src Source
	var stored, dirs string
	err := r.Scan(&src.ID, &src.Name, &stored, &src.SystemIdentifier, &src.PGVersion,
		orZero(&src.Timeline), orNil(&src.DataChecksums), scanTime(&src.CreatedAt), scanTime(&src.UpdatedAt), orZero(&dirs))
	if err == nil && dirs != "" {
		err = json.Unmarshal([]byte(dirs), &src.Dirs)
	}
	if err != nil {
		return Source{}, err
	}
	src.DSN, src.SecretsSealed, err = s.openDSN(src.Name, stored)
	return src, err
}

// sourceNameTaken returns the validation error for a duplicate name.
func sourceNameTaken(name string) error {
	return invalid("name", "a source named %q already exists", name)
}

// CreateSource registers a source. A name already in use is a
// *ValidationError on field "name".
func (s *Store) CreateSource(ctx context.Context, p SourceParams) (Source, error) {
	if err := p.validate(); err != nil {
		return Source{}, fmt.Errorf("create source: %w", err)
	}
	dsn, err := s.sealDSN(p.Name, p.DSN)
	if err != nil {
		return Source{}, fmt.Errorf("create source: %w", err)
	}
	now := formatTime(s.clock())
	src, err := s.scanSource(s.wdb.QueryRowContext(ctx, `
		INSERT INTO sources (name, dsn, system_identifier, pg_version, timeline, data_checksums, created_at, updated_at, dirs)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+sourceColumns,
		p.Name, dsn, p.SystemIdentifier, p.PGVersion, nullIfZero(p.Timeline), p.DataChecksums, now, now, dirsJSON(p.Dirs)))
	if isUnique(err, "sources.name") {
		return Source{}, fmt.Errorf("create source: %w", sourceNameTaken(p.Name))
	}
	if err != nil {
		return Source{}, fmt.Errorf("create source: %w", err)
	}
	return src, nil
}

// Source returns the source with the given id.
func (s *Store) Source(ctx context.Context, id int64) (Source, error) {
	src, err := s.scanSource(s.db.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Source{}, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Source{}, fmt.Errorf("source %d: %w", id, err)
	}
	return src, nil
}

// SourceByName returns the source with the given name.
func (s *Store) SourceByName(ctx context.Context, name string) (Source, error) {
	src, err := s.scanSource(s.db.QueryRowContext(ctx, `SELECT `+sourceColumns+` FROM sources WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Source{}, fmt.Errorf("source %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Source{}, fmt.Errorf("source %q: %w", name, err)
	}
	return src, nil
}

// Sources returns every source, by name.
func (s *Store) Sources(ctx context.Context) ([]Source, error) {
	srcs, err := queryAll(ctx, s.db, s.scanSource, `SELECT `+sourceColumns+` FROM sources ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sources: %w", err)
	}
	return srcs, nil
}

// UpdateSource replaces the fields of source id with p, for example after
// a password change or a major version upgrade.
func (s *Store) UpdateSource(ctx context.Context, id int64, p SourceParams) (Source, error) {
	if err := p.validate(); err != nil {
		return Source{}, fmt.Errorf("update source: %w", err)
	}
	// Sealed again under the (maybe new) name: the name is the sealed value's associated data.
	dsn, err := s.sealDSN(p.Name, p.DSN)
	if err != nil {
		return Source{}, fmt.Errorf("update source: %w", err)
	}
	src, err := s.scanSource(s.wdb.QueryRowContext(ctx, `
		UPDATE sources
		SET name = ?, dsn = ?, system_identifier = ?, pg_version = ?, timeline = ?, data_checksums = ?, updated_at = ?,
			dirs = coalesce(?, dirs)
		WHERE id = ?
		RETURNING `+sourceColumns,
		p.Name, dsn, p.SystemIdentifier, p.PGVersion, nullIfZero(p.Timeline), p.DataChecksums, formatTime(s.clock()),
		dirsJSON(p.Dirs), id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Source{}, fmt.Errorf("update source %d: %w", id, ErrNotFound)
	case isUnique(err, "sources.name"):
		return Source{}, fmt.Errorf("update source %d: %w", id, sourceNameTaken(p.Name))
	case err != nil:
		return Source{}, fmt.Errorf("update source %d: %w", id, err)
	}
	return src, nil
}

// DeleteSource deletes source id with its jobs. A source that still has
// backups or archived WAL in the catalog cannot be deleted: that is
// ErrConflict.
func (s *Store) DeleteSource(ctx context.Context, id int64) error {
	res, err := s.wdb.ExecContext(ctx, `DELETE FROM sources WHERE id = ?`, id)
	if isForeignKey(err) {
		return fmt.Errorf("delete source %d: it still has backups or archived WAL: %w", id, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete source %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete source %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("delete source %d: %w", id, ErrNotFound)
	}
	return nil
}

// HadSources reports whether this catalog ever registered a source, removed ones included.
// A catalog that never did, beside a repository holding backups, is not this home's catalog
// but a fresh one that replaced a lost file: the command line refuses to run on it.
func (s *Store) HadSources(ctx context.Context) (bool, error) {
	var had bool
	err := s.db.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM sources)
			OR EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sources' AND seq > 0)`).Scan(&had)
	if err != nil {
		return false, fmt.Errorf("had sources: %w", err)
	}
	return had, nil
}

// dirsJSON is the stored form of a source's directories: a JSON array, or NULL for none.
func dirsJSON(dirs []string) any {
	if len(dirs) == 0 {
		return nil
	}
	b, _ := json.Marshal(dirs)
	return string(b)
}
