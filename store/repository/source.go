package repository

// Sources.
//
// Layout:
//
//	sources/<name>.source   one source: a sealed JSON record of its name, connection
//	                        string, system identifier and when it was created and removed
//
// Unlike manifests, a source record is replaced whenever the source changes: it is
// the latest word on the source, so that the catalog can be rebuilt from the
// repository with each backup and WAL file under the source that made it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backstop/backstop/store/repository/storage"
)

// SourceFormat is the version of the SourceRecord structure this package writes and reads.
const SourceFormat = 1

const (
	sourceMagic  = "BSS1"
	sourceDir    = "sources/"
	sourceSuffix = ".source"
)

// SourceRecord is a source as the repository keeps it. It is sealed like a manifest, so
// the connection string may hold a password.
type SourceRecord struct {
	// Format is SourceFormat; PutSource fills it in.
	Format int    `json:"format"`
	Name   string `json:"name"`
	DSN    string `json:"dsn"`
	// SystemIdentifier is the cluster's system identifier in decimal.
	SystemIdentifier string `json:"system_identifier"`
	// PGVersion is the source's server_version_num, such as 150004.
	PGVersion     int       `json:"pg_version"`
	Timeline      int64     `json:"timeline,omitempty"`
	DataChecksums *bool     `json:"data_checksums,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// RemovedAt is when the source was removed; nil while it is active.
	RemovedAt *time.Time `json:"removed_at,omitempty"`
}

// validate checks what a rebuild relies on.
func (s *SourceRecord) validate() error {
	if s.Format != SourceFormat {
		return fmt.Errorf("unsupported source record format %d (this version reads format %d)", s.Format, SourceFormat)
	}
	if err := validateSourceName(s.Name); err != nil {
		return err
	}
	if s.DSN == "" {
		return errors.New("no connection string")
	}
	if err := validateSystemID(s.SystemIdentifier); err != nil {
		return err
	}
	if s.PGVersion <= 0 {
		return fmt.Errorf("invalid pg_version %d", s.PGVersion)
	}
	if s.CreatedAt.IsZero() {
		return errors.New("no created_at")
	}
	return nil
}

// validateSourceName checks a name as a key component: the rules of a backup id.
func validateSourceName(name string) error {
	if err := validateID(name); err != nil {
		return fmt.Errorf("invalid source name: %w", err)
	}
	return nil
}

// PutSource stores rec as the record of source rec.Name, replacing the one stored before,
// atomically, and makes it durable.
func (r *Repo) PutSource(ctx context.Context, rec SourceRecord) error {
	rec.Format = SourceFormat
	if err := rec.validate(); err != nil {
		return fmt.Errorf("put source %q: %w", rec.Name, err)
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return fmt.Errorf("put source %s: %w", rec.Name, err)
	}
	sealed, err := r.seal(nil, sourceMagic, sourceAD(rec.Name), data)
	if err != nil {
		return fmt.Errorf("put source %s: %w", rec.Name, err)
	}
	if err := r.st.Put(ctx, sourceKey(rec.Name), sealed, false); err != nil {
		return fmt.Errorf("put source %s: %w", rec.Name, err)
	}
	if err := r.st.Sync(ctx); err != nil {
		return fmt.Errorf("put source %s: %w", rec.Name, err)
	}
	return nil
}

// Source reads and verifies the record of source name. A missing record yields an error
// wrapping ErrNotFound; one that fails verification, including one moved from another
// name, a *CorruptError.
func (r *Repo) Source(ctx context.Context, name string) (SourceRecord, error) {
	if err := validateSourceName(name); err != nil {
		return SourceRecord{}, fmt.Errorf("read source: %w", err)
	}
	key := sourceKey(name)
	sealed, err := r.st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return SourceRecord{}, fmt.Errorf("read source %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return SourceRecord{}, fmt.Errorf("read source %s: %w", name, err)
	}
	data, err := r.open(nil, sealed, sourceMagic, sourceAD(name), key)
	if err != nil {
		return SourceRecord{}, err
	}
	var rec SourceRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return SourceRecord{}, &CorruptError{Object: key, Reason: "invalid source record: " + err.Error()}
	}
	if err := rec.validate(); err != nil {
		return SourceRecord{}, &CorruptError{Object: key, Reason: "invalid source record: " + err.Error()}
	}
	if rec.Name != name {
		return SourceRecord{}, &CorruptError{Object: key, Reason: fmt.Sprintf("source record is for %q", rec.Name)}
	}
	return rec, nil
}

// SourceNames returns the names of the stored source records, sorted.
func (r *Repo) SourceNames(ctx context.Context) ([]string, error) {
	names := []string{}
	err := storage.Keys(ctx, r.st, sourceDir, func(key string) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(key, sourceDir), sourceSuffix)
		if ok && validateSourceName(name) == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// WALSystems returns the system identifiers whose WAL the repository holds, sorted.
func (r *Repo) WALSystems(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	err := storage.Keys(ctx, r.st, walDir+"/", func(key string) error {
		sys, _, ok := strings.Cut(strings.TrimPrefix(key, walDir+"/"), "/")
		if ok && validateSystemID(sys) == nil {
			seen[sys] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list WAL systems: %w", err)
	}
	systems := make([]string, 0, len(seen))
	for s := range seen {
		systems = append(systems, s)
	}
	slices.Sort(systems)
	return systems, nil
}

func sourceKey(name string) string { return sourceDir + name + sourceSuffix }

func sourceAD(name string) []byte { return []byte("source:" + name) }
