package jobs

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// Lost by a catalog rebuild: what only the catalog held.
var rebuildLost = []string{
	"users and their sessions (add users again with `backstop user add`)",
	"the job history and its event logs",
	"restores and the instances they created (their data directories stay on disk)",
	"the audit log",
	"verification and drill results, alerts, archiver states and recorded WAL gaps",
}

// RebuildReport says what RebuildCatalog made of the repository, and what it could not.
type RebuildReport struct {
	// Sources counts the sources created, RemovedSources those of them marked removed.
	Sources        int
	RemovedSources int
	// Backups counts the complete backups recorded.
	Backups int
	// WALFiles counts the WAL files recorded (segments, the longest piece of each
	// segment that was never completed, and history files); WALRead those read back.
	WALFiles int
	WALRead  int
	// Commits and RestorePoints count what the recorded WAL holds.
	Commits       int64
	RestorePoints int
	// Unassigned lists backups and WAL that no source could be found for, and why:
	// they stay in the repository, outside the catalog.
	Unassigned []string
	// Problems lists what could not be read (damaged records or manifests).
	Problems []string
	// Lost lists what a rebuild cannot recover: the repository never held it.
	Lost []string
}

// PutSourceRecord writes src's record to the repository (replacing the one stored
// before), so that a lost catalog can be rebuilt with its sources: removedAt is when it
// was removed, nil while it is active.
func PutSourceRecord(ctx context.Context, repo *repository.Repo, src store.Source, removedAt *time.Time) error {
	if src.SecretsSealed {
		return fmt.Errorf("source record %s: the catalog's connection string is sealed with another key", src.Name)
	}
	return repo.PutSource(ctx, repository.SourceRecord{
		Name:             src.Name,
		DSN:              src.DSN,
		SystemIdentifier: src.SystemIdentifier,
		PGVersion:        src.PGVersion,
		Timeline:         src.Timeline,
		DataChecksums:    src.DataChecksums,
		CreatedAt:        src.CreatedAt,
		UpdatedAt:        src.UpdatedAt,
		RemovedAt:        removedAt,
	})
}

// RebuildCatalog fills the empty catalog st from the repository: the sources from their
// records, the complete backups from their manifests, and the archived WAL, read back and
// scanned by the same code the archiver records it with (commit times, restore points,
// tablespace creations). A backup goes to the source its manifest names; one whose name
// has no record goes to the only source of its system, and with several, to none (reported
// as unassigned). WAL, stored by system, goes to the only source of its system, likewise.
// A removed source that nothing belongs to is not created, as RemoveSource would have
// deleted it. log, if not nil, is told of progress.
//
// Users, sessions, jobs, restores and the audit log are not in the repository: the report
// lists them as lost.
func RebuildCatalog(ctx context.Context, st *store.Store, repo *repository.Repo, log func(string)) (RebuildReport, error) {
	if log == nil {
		log = func(string) {}
	}
	rep := RebuildReport{Lost: slices.Clone(rebuildLost)}
	empty, err := st.Empty(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild catalog: %w", err)
	}
	if !empty {
		return rep, errors.New("rebuild catalog: the catalog already holds sources or backups: rebuild only into a new, empty catalog")
	}

	// Sources, from their records.
	names, err := repo.SourceNames(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild catalog: %w", err)
	}
	var recs []repository.SourceRecord
	for _, name := range names {
		rec, err := repo.Source(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("source record %s: %v", name, err))
			continue
		}
		recs = append(recs, rec)
	}
	byName := make(map[string]*repository.SourceRecord, len(recs))
	bySystem := make(map[string][]string)
	for i := range recs {
		byName[recs[i].Name] = &recs[i]
		bySystem[recs[i].SystemIdentifier] = append(bySystem[recs[i].SystemIdentifier], recs[i].Name)
	}
	// owner finds the source of a system's backup or WAL: the named one, else the only
	// one of the system.
	owner := func(name, system string) (string, string) {
		if r, ok := byName[name]; ok && r.SystemIdentifier == system {
			return name, ""
		}
		switch cands := bySystem[system]; len(cands) {
		case 0:
			return "", fmt.Sprintf("no source record of system %s", system)
		case 1:
			return cands[0], ""
		default:
			return "", fmt.Sprintf("system %s is registered as several sources (%s): which one is not recorded", system, strings.Join(cands, ", "))
		}
	}

	// Backups, from their manifests.
	ids, err := repo.Manifests(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild catalog: %w", err)
	}
	type backup struct {
		source string
		m      *repository.Manifest
	}
	var backups []backup
	used := make(map[string]bool)
	for _, id := range ids {
		m, err := repo.Manifest(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %v", id, err))
			continue
		}
		if m.StartLSN == "" || m.EndLSN == "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: its manifest has no start or end LSN", id))
			continue
		}
		src, why := owner(m.SourceName, m.SystemIdentifier)
		if src == "" {
			rep.Unassigned = append(rep.Unassigned, fmt.Sprintf("backup %s: %s", id, why))
			continue
		}
		used[src] = true
		backups = append(backups, backup{src, m})
	}

	// WAL, by system.
	systems, err := repo.WALSystems(ctx)
	if err != nil {
		return rep, fmt.Errorf("rebuild catalog: %w", err)
	}
	walOwner := make(map[string]string)
	for _, sys := range systems {
		src, why := owner("", sys)
		if src == "" {
			rep.Unassigned = append(rep.Unassigned, fmt.Sprintf("archived WAL of system %s: %s", sys, why))
			continue
		}
		used[src] = true
		walOwner[sys] = src
	}

	// Create the sources in the order they were made, so that their ids follow it.
	slices.SortFunc(recs, func(a, b repository.SourceRecord) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.Name, b.Name))
	})
	made := make(map[string]store.Source)
	for _, rec := range recs {
		if rec.RemovedAt != nil && !used[rec.Name] {
			continue // removed with nothing in the catalog: RemoveSource deleted it
		}
		src, err := st.ImportSource(ctx, store.ImportedSource{
			SourceParams: store.SourceParams{Name: rec.Name, DSN: rec.DSN, SystemIdentifier: rec.SystemIdentifier,
				PGVersion: rec.PGVersion, Timeline: rec.Timeline, DataChecksums: rec.DataChecksums},
			CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt, RemovedAt: rec.RemovedAt,
		})
		if err != nil {
			return rep, fmt.Errorf("rebuild catalog: %w", err)
		}
		made[rec.Name] = src
		rep.Sources++
		if rec.RemovedAt != nil {
			rep.RemovedSources++
		}
		log(fmt.Sprintf("source %s (system %s)", src.Name, src.SystemIdentifier))
	}

	slices.SortFunc(backups, func(a, b backup) int {
		return cmp.Or(a.m.StartedAt.Compare(b.m.StartedAt), strings.Compare(a.m.BackupID, b.m.BackupID))
	})
	for _, b := range backups {
		if err := importBackup(ctx, st, made[b.source], b.m); err != nil {
			return rep, fmt.Errorf("rebuild catalog: %w", err)
		}
		rep.Backups++
		log(fmt.Sprintf("backup %s of %s: %s to %s", b.m.BackupID, b.source, b.m.StartLSN, b.m.EndLSN))
	}

	for _, sys := range systems {
		src, ok := walOwner[sys]
		if !ok {
			continue
		}
		if err := importWAL(ctx, st, repo, made[src], &rep, log); err != nil {
			return rep, fmt.Errorf("rebuild catalog: %w", err)
		}
	}
	if err := restartAuditChain(ctx, st, repo); err != nil {
		return rep, fmt.Errorf("rebuild catalog: %w", err)
	}
	return rep, nil
}

// importBackup records the backup that manifest m describes as complete.
func importBackup(ctx context.Context, st *store.Store, src store.Source, m *repository.Manifest) error {
	files := make([]store.BackupFile, 0, len(m.Files))
	var sourceBytes, walBytes int64
	for _, f := range m.Files {
		files = append(files, store.BackupFile{Path: f.Path, Type: f.Type, Mode: int64(f.Mode), Size: f.Size, Blocks: f.BlockCount(m.BlockSize)})
		if f.Type == repository.TypeFile {
			sourceBytes += f.Size
			if strings.HasPrefix(f.Path, "pg_wal/") {
				walBytes += f.Size
			}
		}
	}
	stats := store.BackupStats{
		SourceBytes:           cmp.Or(m.Stats.SourceBytes, sourceBytes),
		StoredBytesNew:        m.Stats.StoredBytesNew,
		StoredBytesReferenced: m.Stats.StoredBytesReferenced,
		WALBytes:              walBytes,
		FileCount:             int64(len(files)),
		BlockCount:            m.Stats.Blocks,
		BlockCountNew:         m.Stats.BlocksNew,
	}
	started := m.StartedAt
	if started.IsZero() {
		started = cmp.Or(m.FinishedAt, time.Now().UTC())
	}
	_, err := st.ImportBackup(ctx, store.ImportedBackup{
		SourceID: src.ID, RepoID: m.BackupID, Label: m.Label, StartedAt: started, FinishedAt: m.FinishedAt,
		StartLSN: m.StartLSN, EndLSN: m.EndLSN, Timeline: int64(m.Timeline), PGVersion: m.PGVersion,
		SystemIdentifier: m.SystemIdentifier, Stats: stats, Files: files,
	})
	return err
}

// importWAL reads back the archived WAL of src's system in the order WALNames gives and
// records each file as the archiver does. Of the pieces of a segment, only the longest
// is read, and none once the segment is complete: the catalog keeps no other, and the
// longest holds every record the shorter ones do.
func importWAL(ctx context.Context, st *store.Store, repo *repository.Repo, src store.Source, rep *RebuildReport, log func(string)) error {
	names, err := repo.WALNames(ctx, src.SystemIdentifier)
	if err != nil {
		return err
	}
	complete := make(map[string]bool)
	last := make(map[string]string) // segment name -> its longest piece
	for _, name := range names {
		if seg, _, ok := strings.Cut(name, pgwal.PartialSuffix+"."); ok {
			last[seg] = name // names sort by END
		} else {
			complete[name] = true
		}
	}
	var segSize int64
	var buf bytes.Buffer
	recorded := 0
	for _, name := range names {
		if seg, _, ok := strings.Cut(name, pgwal.PartialSuffix+"."); ok && (complete[seg] || last[seg] != name) {
			continue
		}
		f, err := repo.WAL(ctx, src.SystemIdentifier, name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("WAL %s of system %s: %v", name, src.SystemIdentifier, err))
			continue
		}
		buf.Reset()
		if err := repo.ReadWAL(ctx, src.SystemIdentifier, name, &buf); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("WAL %s of system %s: %v", name, src.SystemIdentifier, err))
			continue
		}
		rep.WALRead++
		kind := store.WALKind(f.Kind)
		if kind != store.WALHistory && segSize == 0 {
			if segSize, err = firstPageSegmentSize(buf.Bytes()); err != nil {
				return fmt.Errorf("WAL %s of system %s: %w", name, src.SystemIdentifier, err)
			}
		}
		p, err := walFileParams(bytes.NewReader(buf.Bytes()), src, name, kind, f.Size, segSize)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("WAL %s of system %s: %v", name, src.SystemIdentifier, err))
			continue
		}
		p.Via, p.ArchivedAt = store.WALViaStream, f.CreatedAt
		if _, err := st.RecordWAL(ctx, p); err != nil {
			return err
		}
		recorded++
		rep.WALFiles++
		rep.Commits += p.Commits
		rep.RestorePoints += len(p.RestorePoints)
	}
	log(fmt.Sprintf("WAL of %s (system %s): %d files recorded", src.Name, src.SystemIdentifier, recorded))
	return nil
}

// firstPageSegmentSize reads the segment size from the long header of a segment's first page
// (xlp_seg_size, after the short header and the system identifier).
func firstPageSegmentSize(first []byte) (int64, error) {
	if len(first) < 40 {
		return 0, fmt.Errorf("%d bytes: too short for a segment's first page header", len(first))
	}
	size := int64(binary.LittleEndian.Uint32(first[32:]))
	if err := pgwal.CheckSegmentSize(size); err != nil {
		return 0, fmt.Errorf("segment size %d in the first page header: %w", size, err)
	}
	return size, nil
}
