package jobs

// The restorable window and the restore plan: which instants a point-in-time restore can
// bring back, from which base backup, with which WAL, and the recovery settings that make
// PostgreSQL stop exactly there. Everything here is pure logic over catalog rows
// (WindowInput); WindowInputs loads them.
//
// What a restore to a time brings back. PostgreSQL replays WAL from the backup's start and,
// with recovery_target_time = T and recovery_target_inclusive = on, stops before the first
// commit (or abort) record whose time is after T. The restored data therefore holds exactly
// the transactions whose commit time is at or before T, provided that:
//
//   - no commit at or before the backup's consistency point (its EndLSN) is later than T,
//     or recovery would stop before the data is consistent: hence a range starts at the
//     backup's consistency time, the time of the last commit at or before EndLSN;
//   - some commit after T exists in the WAL that is served, or recovery ends "before the
//     configured recovery target was reached" and the server refuses to start: so when no
//     archived commit is later than T (T is the end of a range), the plan sets no target
//     and replays to the end of the planned WAL (Plan.ReplayToEnd), which then holds only
//     commits at or before T;
//   - commit times increase along the WAL. They do to the microsecond in practice, but a
//     commit's time is taken just before its record is inserted, so two concurrent commits
//     can appear in the WAL in the other order: at the boundary, a commit with a time at or
//     before T that follows one after T is not restored.
//
// Commit times have microsecond resolution, so targets are normalized to the microsecond:
// an inclusive target keeps the commits at or before its truncated time, and an exclusive
// one (commits strictly before T) becomes the inclusive target just before it.
//
// Timelines. A history file says that timeline N branched from P at LSN X. A restore that
// follows N (recovery_target_timeline = N) reads P's segments below the one holding X and
// N's from that one on: N's file of that segment starts with a copy of P's WAL up to X,
// and P's file of it (kept as a partial piece when P ended there) holds WAL after X that is
// not N's history. A backup taken on P belongs to N's history if P's part of it (from its
// StartLSN to its EndLSN) lies before X; PostgreSQL refuses the rest ("requested timeline
// is not a child of this server's history").

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"

	"github.com/backstop/backstop/jobs/pg/wal"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
)

// WindowInput is what the window and the plan are computed from: a source's catalog rows
// and its parsed timeline history files.
type WindowInput struct {
	// Backups are the source's backups; only complete ones are used.
	Backups []store.Backup
	// WAL are the source's archived WAL files. Segments and partial pieces are used;
	// history files are read through Histories.
	WAL []store.WALFile
	// Histories holds the parsed history file of each timeline that has one.
	Histories map[uint32][]pgwal.HistoryEntry
	// RestorePoints are the source's named restore points.
	RestorePoints []store.RestorePoint
	// SegmentSize is the cluster's WAL segment size; 0 means: as the WAL rows show it
	// (pgwal.DefaultSegmentSize when they cannot).
	SegmentSize int64
	// Tablespaces are the tablespace creations found in the source's archived WAL: a
	// plan that replays one is refused.
	Tablespaces []store.TablespaceCreation
}

// WindowInputs loads the WindowInput of source sourceID: its complete backups, WAL files
// and restore points from st, and its timeline history files, read with readHistory (given
// a repository name such as "00000002.history"; see RepositoryHistory) and parsed.
func WindowInputs(ctx context.Context, st *store.Store, sourceID int64, readHistory func(name string) ([]byte, error)) (WindowInput, error) {
	files, err := st.WALFiles(ctx, store.WALFilter{SourceID: sourceID})
	if err != nil {
		return WindowInput{}, fmt.Errorf("window inputs: %w", err)
	}
	wal, histories := splitHistories(files)
	return windowInputsWith(ctx, st, sourceID, wal, histories, readHistory)
}

// splitHistories returns files' segments and partial pieces, then its history files,
// each in files' order.
func splitHistories(files []store.WALFile) (wal, histories []store.WALFile) {
	wal = make([]store.WALFile, 0, len(files))
	for _, f := range files {
		if f.Kind == store.WALHistory {
			histories = append(histories, f)
		} else {
			wal = append(wal, f)
		}
	}
	return wal, histories
}

// windowInputsWith is WindowInputs with the source's WAL rows already read: wal, its
// segments and partial pieces in WALFiles' order (the input's WAL, shared), and
// histories, its history files.
func windowInputsWith(ctx context.Context, st *store.Store, sourceID int64, wal, histories []store.WALFile, readHistory func(name string) ([]byte, error)) (WindowInput, error) {
	backups, err := st.Backups(ctx, store.BackupFilter{SourceID: sourceID, States: []store.BackupState{store.BackupComplete}})
	if err != nil {
		return WindowInput{}, fmt.Errorf("window inputs: %w", err)
	}
	points, err := st.RestorePoints(ctx, sourceID)
	if err != nil {
		return WindowInput{}, fmt.Errorf("window inputs: %w", err)
	}
	tablespaces, err := st.TablespaceCreations(ctx, sourceID)
	if err != nil {
		return WindowInput{}, fmt.Errorf("window inputs: %w", err)
	}
	in := WindowInput{Backups: backups, WAL: wal, Histories: map[uint32][]pgwal.HistoryEntry{}, RestorePoints: points, Tablespaces: tablespaces}
	for _, f := range histories {
		if readHistory == nil {
			return WindowInput{}, fmt.Errorf("window inputs: history file %s: no reader given", f.Name)
		}
		data, err := readHistory(f.Name)
		if err != nil {
			return WindowInput{}, fmt.Errorf("window inputs: history file %s: %w", f.Name, err)
		}
		entries, err := pgwal.ParseHistoryFile(bytes.NewReader(data))
		if err != nil {
			return WindowInput{}, fmt.Errorf("window inputs: history file %s: %w", f.Name, err)
		}
		in.Histories[uint32(f.Timeline)] = entries
	}
	return in, nil
}

// LoadWindowInput is WindowInputs for source src, reading its history files from repo.
// The repository is the truth: a WAL file the catalog lists but the repository no longer
// holds is left out, so that the window shows a gap there and plans needing it are refused.
func LoadWindowInput(ctx context.Context, st *store.Store, repo *repository.Repo, src store.Source) (WindowInput, error) {
	in, err := WindowInputs(ctx, st, src.ID, RepositoryHistory(ctx, repo, src.SystemIdentifier))
	if err != nil {
		return WindowInput{}, err
	}
	names, err := repo.WALNames(ctx, src.SystemIdentifier)
	if err != nil {
		return WindowInput{}, fmt.Errorf("window inputs: %w", err)
	}
	held := make(map[string]bool, len(names))
	for _, n := range names {
		held[n] = true
	}
	in.WAL = slices.DeleteFunc(in.WAL, func(f store.WALFile) bool { return !held[f.Name] })
	return in, nil
}

// RepositoryHistory returns a reader of the WAL files of the cluster with system
// identifier systemID in repo, for WindowInputs.
func RepositoryHistory(ctx context.Context, repo *repository.Repo, systemID string) func(name string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		var b bytes.Buffer
		if err := repo.ReadWAL(ctx, systemID, name, &b); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
}

// ConsistencySource says where a backup's consistency time comes from.
type ConsistencySource string

const (
	// ConsistencyWAL is the time of the last commit at or before the backup's EndLSN,
	// read from the archived WAL: exact.
	ConsistencyWAL ConsistencySource = "wal"
	// ConsistencyWALBound is the time of the newest commit in the WAL file that holds
	// the backup's EndLSN: that file has commits, and the catalog does not say whether
	// they come before or after EndLSN. It is at or after the exact time, so restores
	// from it on are exact; a little earlier may have been possible.
	ConsistencyWALBound ConsistencySource = "wal-bound"
	// ConsistencyFinish is the time the backup finished, on Backstop's clock, used when
	// the archived WAL does not tell: approximate (it is after the consistency point as
	// long as the clocks of Backstop and the server agree to within the backup's last
	// seconds).
	ConsistencyFinish ConsistencySource = "finish"
)

// BackupPoint is a complete base backup and its consistency point, the earliest state it
// restores to.
type BackupPoint struct {
	ID       int64
	Timeline uint32
	// StartLSN is where replay starts; EndLSN is the consistency point.
	StartLSN, EndLSN pglogrepl.LSN
	// ConsistentAt is the consistency time, the earliest restorable time with this
	// backup; ConsistentFrom says where it comes from. Zero when unknown: the backup
	// can then be restored to its consistency point (TargetImmediate) or an LSN only.
	ConsistentAt   time.Time
	ConsistentFrom ConsistencySource
	FinishedAt     time.Time
	// Bytes is the size of the data directory it restores (WAL included).
	Bytes int64
}

// Approximate reports whether b's consistency time is the backup's finish time rather
// than a commit time read from the WAL.
func (b BackupPoint) Approximate() bool { return b.ConsistentFrom == ConsistencyFinish }

// Range is an interval of restorable times: every instant from From to To, both included,
// can be restored exactly, from the base backup that starts the range or a newer one.
type Range struct {
	From, To time.Time
	// FromLSN is the consistency point of the backup that starts the range; ToLSN is the
	// end of the continuous WAL after it.
	FromLSN, ToLSN pglogrepl.LSN
	// Timeline is the timeline of the position ToLSN (its last byte).
	Timeline uint32
	// BackupID is the base backup that starts the range.
	BackupID int64
}

// Gap is missing WAL after a restorable range: restores that would need it are refused.
type Gap struct {
	// Segment is the first missing segment (only a partial piece of it may exist), on
	// Timeline.
	Segment  string
	Timeline uint32
	// FromLSN and ToLSN bound the missing WAL: from the end of the continuous WAL to
	// where archived WAL, or the next range, resumes.
	FromLSN, ToLSN pglogrepl.LSN
	// RestorableUntil is the latest restorable time before the gap: restores to it
	// and earlier still work.
	RestorableUntil time.Time
}

// NamedPoint is a named restore point inside the window.
type NamedPoint struct {
	Name     string
	LSN      pglogrepl.LSN
	At       time.Time
	Timeline uint32
}

// Window is what a source can be restored to along one timeline's history.
type Window struct {
	// Timeline is the timeline a restore follows: by default the newest one that the
	// archive or a backup knows of.
	Timeline uint32
	// Ranges are the restorable intervals, oldest first; a gap in the WAL splits them.
	Ranges []Range
	// Gaps are the holes in the WAL that split or end the window, oldest first.
	Gaps []Gap
	// Earliest and Latest are the window's ends, zero when nothing is restorable.
	Earliest, Latest time.Time
	// Backups are the complete base backups in the timeline's history, by EndLSN.
	Backups []BackupPoint
	// RestorePoints are the named restore points inside the ranges, by LSN.
	RestorePoints []NamedPoint
	// ComputedAt is when a WindowCache computed the window; zero from ComputeWindow.
	ComputedAt time.Time
}

// Contains reports whether t (to the microsecond) is inside one of w's ranges.
func (w Window) Contains(t time.Time) bool {
	t = t.Truncate(time.Microsecond)
	for _, r := range w.Ranges {
		if !t.Before(r.From) && !t.After(r.To) {
			return true
		}
	}
	return false
}

// String describes w's ranges: "2026-11-25 02:00:14 UTC to 09:41:07 UTC".
func (w Window) String() string {
	if len(w.Ranges) == 0 {
		return "empty"
	}
	parts := make([]string, len(w.Ranges))
	for i, r := range w.Ranges {
		parts[i] = fmtSpan(r.From, r.To)
	}
	return strings.Join(parts, " and ")
}

// TargetKind is what a restore target names.
type TargetKind string

// Kinds of restore target.
const (
	// TargetTime restores the transactions committed at or before Time (before it,
	// when not Inclusive).
	TargetTime TargetKind = "time"
	// TargetLSN stops replay at LSN: before the first record that starts at or after it,
	// or just after that record when Inclusive.
	TargetLSN TargetKind = "lsn"
	// TargetName stops just after the named restore point.
	TargetName TargetKind = "name"
	// TargetLatest restores everything archived, to the window's latest time.
	TargetLatest TargetKind = "latest"
	// TargetImmediate stops as soon as the backup BackupID (0: the newest) is
	// consistent.
	TargetImmediate TargetKind = "immediate"
)

// Target is where a restore should stop.
type Target struct {
	Kind TargetKind
	Time time.Time
	LSN  pglogrepl.LSN
	Name string
	// BackupID is the backup for TargetImmediate, 0 for the newest.
	BackupID int64
	// Inclusive is PostgreSQL's recovery_target_inclusive, for time and LSN targets.
	// Its zero value is exclusive; PostgreSQL's default, and ParseTarget's, is
	// inclusive.
	Inclusive bool
	// Timeline is the timeline whose history to follow, 0 for the window's default.
	Timeline uint32
}

// String describes t for people: "2026-11-25 09:30:00 UTC", "LSN 0/3A000028", ...
func (t Target) String() string {
	switch t.Kind {
	case TargetTime:
		s := fmtTime(t.Time)
		if !t.Inclusive {
			s = "before " + s
		}
		return s
	case TargetLSN:
		return "LSN " + t.LSN.String()
	case TargetName:
		return fmt.Sprintf("restore point %q", t.Name)
	case TargetLatest:
		return "latest"
	case TargetImmediate:
		if t.BackupID != 0 {
			return fmt.Sprintf("consistency point of backup %d", t.BackupID)
		}
		return "consistency point of the newest backup"
	}
	return fmt.Sprintf("unknown target kind %q", string(t.Kind))
}

// Text returns t in the form ParseTarget reads back (Inclusive and Timeline aside).
func (t Target) Text() string {
	switch t.Kind {
	case TargetTime:
		return t.Time.UTC().Format(time.RFC3339Nano)
	case TargetLSN:
		return "lsn:" + t.LSN.String()
	case TargetName:
		return "name:" + t.Name
	case TargetImmediate:
		if t.BackupID != 0 {
			return "immediate:" + strconv.FormatInt(t.BackupID, 10)
		}
		return "immediate"
	}
	return string(t.Kind)
}

// TargetError is a restore target that cannot be restored, with the window and the
// nearest target that can.
type TargetError struct {
	Target Target
	// Reason says why, such as "is after the latest restorable time".
	Reason string
	Window Window
	// Missing is the first missing WAL segment, when a gap is the cause.
	Missing string
	// NearestTime and NearestLSN are the nearest valid choice (zero when none).
	NearestTime time.Time
	NearestLSN  pglogrepl.LSN
}

func (e *TargetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "restore target %s %s", e.Target, e.Reason)
	if len(e.Window.Ranges) > 0 {
		fmt.Fprintf(&b, "; the restorable window is %s", e.Window)
	}
	switch {
	case !e.NearestTime.IsZero():
		fmt.Fprintf(&b, "; nearest valid choice: %s", fmtTime(e.NearestTime))
	case e.NearestLSN != 0:
		fmt.Fprintf(&b, "; nearest valid choice: LSN %s", e.NearestLSN)
	}
	return b.String()
}

// WALNeed is one archived WAL file that a restore reads.
type WALNeed struct {
	// Name is the file's repository name.
	Name string
	// Segment is the name PostgreSQL asks restore_command for. A partial piece must be
	// served under it, padded with zeros to the segment size: PostgreSQL refuses a
	// short segment, and stops at the zeros.
	Segment  string
	Timeline uint32
	SegNo    uint64
	// StartLSN and EndLSN bound the WAL the file holds.
	StartLSN, EndLSN pglogrepl.LSN
	Size             int64
	Partial          bool
}

// Plan is how to restore a target: the base backup, the WAL and the recovery settings.
type Plan struct {
	// Backup is the newest complete base backup whose consistency point is at or
	// before the target, so that the least WAL is replayed.
	Backup BackupPoint
	// Timeline is the recovery_target_timeline: the timeline whose history replay
	// follows.
	Timeline uint32
	// HistoryFile is Timeline's history file, which recovery reads first; empty for a
	// timeline that has none (timeline 1).
	HistoryFile string
	// WAL are the archived files replay reads, in order, from the segment holding the
	// backup's StartLSN to WALTo. Files the backup holds itself (from its StartLSN to
	// its EndLSN) are listed when archived and may be missing; from EndLSN on the list
	// is continuous. Only the last file may be a partial piece.
	WAL []WALNeed
	// WALFrom is the backup's StartLSN; WALTo is the end of the WAL to read: the end of
	// the last file, or the backup's EndLSN when no archived WAL is needed.
	WALFrom, WALTo pglogrepl.LSN
	// WALBytes is the WAL files' sizes; Bytes adds the backup's data (as restored).
	WALBytes int64
	Bytes    int64
	// SegmentSize is the cluster's WAL segment size, to which a partial piece is
	// padded when served.
	SegmentSize int64
	// Target is the target normalized: times to the microsecond and inclusive, with
	// what it resolved to (a restore point's LSN and time, the time and LSN that
	// latest reaches, the backup and consistency point of immediate) and Timeline.
	Target Target
	// ReplayToEnd is set when Recovery names no target and replay ends where the WAL
	// served ends: for latest, and for a time at or after the newest archived commit.
	// restore_command must then serve exactly WAL (and the history files) and report
	// every other segment as missing, or replay runs on into WAL archived after
	// planning, past the target.
	ReplayToEnd bool
	// Recovery are the settings to append to postgresql.auto.conf, unquoted (as
	// pg.WriteRecoveryConfig takes them): recovery_target_timeline,
	// recovery_target_action = promote, and the target: recovery_target_time (in UTC
	// with a numeric offset, "2026-11-25 09:25:09.250455+00") with
	// recovery_target_inclusive, recovery_target_lsn with recovery_target_inclusive,
	// recovery_target_name, recovery_target = immediate, or none (ReplayToEnd).
	Recovery map[string]string
	// EstimatedDuration is Bytes at the throughput given to PlanRestore, 0 without one.
	EstimatedDuration time.Duration
}

// ServeNames returns the repository names of the files restore_command must serve for
// p, and no others: the history file first (without it, recovery of a timeline after the
// first refuses a backup taken on an earlier one), then WAL.
func (p Plan) ServeNames() []string {
	var names []string
	if p.HistoryFile != "" {
		names = append(names, p.HistoryFile)
	}
	for _, f := range p.WAL {
		names = append(names, f.Name)
	}
	return names
}

// ComputeWindow returns what in can be restored to, along the history of the newest
// timeline that the archive or a complete backup knows of.
//
// Per timeline history, the archived segments and partial pieces form runs of
// consecutive segments; a run ends after a partial piece or before a missing segment. A
// complete backup whose StartLSN-to-EndLSN lies on the history can be restored to its
// consistency point (it holds that WAL itself) and, through the run of archived WAL that
// holds its EndLSN, to the run's end. Backups sharing a run form one range, from the
// earliest consistency time among them to the newest commit time in the run.
func ComputeWindow(in WindowInput) Window {
	tli := defaultTimeline(&in)
	if tli == 0 {
		return Window{}
	}
	return newPath(&in, tli).window()
}

// PlanRestore plans a restore of in to t, following the history of t.Timeline (0: the
// default timeline of ComputeWindow; for an immediate target naming a backup that is not
// in that history, the backup's own timeline). A target that cannot be restored exactly
// is a *TargetError, and so is one whose replay would create a tablespace (see
// in.Tablespaces); throughput (bytes per second, 0 for none) gives EstimatedDuration.
func PlanRestore(in WindowInput, t Target, throughput float64) (Plan, error) {
	tli := t.Timeline
	if tli == 0 {
		tli = defaultTimeline(&in)
	}
	if tli == 0 {
		return Plan{}, &TargetError{Target: t, Reason: "cannot be restored: the source has no complete base backup"}
	}
	p := newPath(&in, tli)
	if t.Kind == TargetImmediate && t.Timeline == 0 && t.BackupID != 0 && p.backupIndex(t.BackupID) < 0 {
		for _, b := range in.Backups {
			if b.ID == t.BackupID && b.State == store.BackupComplete && b.Timeline > 0 && b.Timeline <= math.MaxUint32 {
				p = newPath(&in, uint32(b.Timeline))
			}
		}
	}
	var c choice
	var err error
	switch t.Kind {
	case TargetTime:
		c, err = p.chooseTime(t)
	case TargetLSN:
		c, err = p.chooseLSN(t)
	case TargetName:
		c, err = p.chooseName(t)
	case TargetLatest:
		c, err = p.chooseLatest(t)
	case TargetImmediate:
		c, err = p.chooseImmediate(t)
	default:
		return Plan{}, fmt.Errorf("plan restore: unknown target kind %q", string(t.Kind))
	}
	if err != nil {
		return Plan{}, err
	}
	if err := p.checkTablespaces(c, t); err != nil {
		return Plan{}, err
	}
	return p.plan(c, throughput), nil
}

// checkTablespaces refuses a choice whose replay, from the backup's StartLSN to where c
// stops, holds a CREATE TABLESPACE with a location. Recovery creates the tablespace at
// that location, with no setting to move it: on the source's host, that is the source's
// live tablespace directory, which the restored copy would then share (a TRUNCATE in the
// copy removes the source's files). In-place tablespaces (no location) are created inside
// the restored directory and are harmless.
func (p *pathView) checkTablespaces(c choice, t Target) error {
	b := p.backups[c.backup]
	tcs := slices.Clone(p.in.Tablespaces)
	slices.SortFunc(tcs, func(x, y store.TablespaceCreation) int {
		lx, _ := parseLSN(x.LSN)
		ly, _ := parseLSN(y.LSN)
		return cmp.Compare(lx, ly)
	})
	for _, tc := range tcs {
		lsn, ok1 := parseLSN(tc.LSN)
		prev, ok2 := parseLSN(tc.PrevLSN)
		if !ok1 || !ok2 || tc.Location == "" || tc.Timeline <= 0 || tc.Timeline > math.MaxUint32 {
			continue
		}
		if lsn < b.StartLSN || lsn >= c.walTo || !p.lin.holds(uint32(tc.Timeline), lsn) {
			continue
		}
		prevCommit := p.commitBefore(tc, lsn)
		if !replays(c, lsn, prev, prevCommit) {
			continue
		}
		e := &TargetError{Target: t, Window: p.window(), Reason: fmt.Sprintf(
			"cannot be restored from backup %d: the WAL it replays creates tablespace %d at %s (record at %s on timeline %d), "+
				"and recovery would create it at that same path, the source's own tablespace directory on this host, "+
				"so the restored copy would share files with the live cluster; take a new base backup (its start will be after %s) "+
				"to restore past it, or choose a target before it (the last state before it: LSN %s, exclusive)",
			b.ID, tc.OID, tc.Location, tc.LSN, tc.Timeline, tc.LSN, tc.LSN)}
		w := e.Window
		switch {
		case c.target.Kind == TargetLSN && p.rangeOfLSN(prev, true) >= 0:
			e.NearestLSN = prev
		case !prevCommit.IsZero() && w.Contains(prevCommit.Add(-time.Microsecond)):
			e.NearestTime = prevCommit.Add(-time.Microsecond)
		case p.rangeOfLSN(prev, true) >= 0:
			e.NearestLSN = prev
		}
		return e
	}
	return nil
}

// commitBefore returns the time of the last commit or abort before tablespace creation
// tc (at lsn): recorded with it from its own WAL file, or else the newest commit of the
// nearest earlier file on the path; zero when none is known.
func (p *pathView) commitBefore(tc store.TablespaceCreation, lsn pglogrepl.LSN) time.Time {
	if tc.PrevCommitAt != nil {
		return *tc.PrevCommitAt
	}
	seg := pgwal.SegmentOf(lsn, p.segSize)
	for i := len(p.files) - 1; i >= 0; i-- {
		if f := p.files[i]; f.segNo < seg && f.commits > 0 {
			return f.last
		}
	}
	return time.Time{}
}

// replays reports whether replay for c applies the record at lsn (the record before it
// at prev; prevCommit the last commit or abort time before it, zero if unknown), given
// that lsn lies in c's WAL. Replay stops at a time target before the first commit or
// abort after it, at an LSN target before the first record at or after it (just after
// that record when inclusive), and just after a named restore point.
func replays(c choice, lsn, prev pglogrepl.LSN, prevCommit time.Time) bool {
	if c.toEnd {
		return true
	}
	t := c.target
	switch {
	case c.recovery["recovery_target_time"] != "":
		return prevCommit.IsZero() || !prevCommit.After(t.Time)
	case c.recovery["recovery_target_lsn"] != "":
		if t.Inclusive {
			return prev < t.LSN
		}
		return lsn < t.LSN
	case c.recovery["recovery_target_name"] != "":
		return lsn < t.LSN
	}
	return true // to the consistency point (immediate), which c.walTo already bounds
}

// choice is a plan in the making: the backup (an index into pathView.backups), where
// the WAL to read ends, and the target settings.
type choice struct {
	backup   int
	walTo    pglogrepl.LSN
	target   Target
	recovery map[string]string
	toEnd    bool
}

// lsnMax stands for the open end of the newest timeline.
const lsnMax = pglogrepl.LSN(math.MaxUint64)

// span is the part of a timeline's history that belongs to timeline tli: [begin, end).
type span struct {
	tli        uint32
	begin, end pglogrepl.LSN
}

// lineage is a timeline's history, oldest span first, ending with the timeline itself.
type lineage []span

// lineageOf returns timeline tli's history from its history file (none: it has no
// parent, as PostgreSQL assumes).
func lineageOf(tli uint32, hist map[uint32][]pgwal.HistoryEntry) lineage {
	var l lineage
	var begin pglogrepl.LSN
	for _, e := range hist[tli] {
		if e.Parent >= tli || e.SwitchLSN < begin {
			break // not a history PostgreSQL writes: keep what is consistent
		}
		l = append(l, span{tli: e.Parent, begin: begin, end: e.SwitchLSN})
		begin = e.SwitchLSN
	}
	return append(l, span{tli: tli, begin: begin, end: lsnMax})
}

// span returns the span of timeline tli.
func (l lineage) span(tli uint32) (span, bool) {
	for _, s := range l {
		if s.tli == tli {
			return s, true
		}
	}
	return span{}, false
}

// at returns the timeline that position lsn belongs to.
func (l lineage) at(lsn pglogrepl.LSN) uint32 {
	for i := len(l) - 1; i > 0; i-- {
		if l[i].begin <= lsn {
			return l[i].tli
		}
	}
	return l[0].tli
}

// holds reports whether a WAL record at lsn, on a page whose header names timeline tli,
// is part of this history: tli owns lsn, or tli is the parent and lsn is on the page of
// the switch point, whose header keeps the parent's timeline.
func (l lineage) holds(tli uint32, lsn pglogrepl.LSN) bool {
	at := l.at(lsn)
	if tli == at {
		return true
	}
	cur, _ := l.span(at)
	parent, ok := l.span(tli)
	return ok && parent.end == cur.begin && lsn/wal.PageSize == cur.begin/wal.PageSize
}

// owner returns the timeline whose file of segment segNo a restore reads: the newest
// whose span begins in or before that segment (PostgreSQL's XLogFileReadAnyTLI order).
func (l lineage) owner(segNo uint64, segSize int64) uint32 {
	for i := len(l) - 1; i > 0; i-- {
		if pgwal.SegmentOf(l[i].begin, segSize) <= segNo {
			return l[i].tli
		}
	}
	return l[0].tli
}

// pathFile is an archived WAL file that a restore along the path reads.
type pathFile struct {
	name        string
	tli         uint32
	segNo       uint64
	start, end  pglogrepl.LSN
	size        int64
	partial     bool // a partial piece
	full        bool // holds the whole segment
	commits     int64
	first, last time.Time
}

// walRun is a run of consecutive files: files[first..last], WAL [start, end).
type walRun struct {
	first, last int
	start, end  pglogrepl.LSN
}

// fileCommits are facts of files[i] and the files around it in its run, so that each
// backup finds its consistency time and reach without walking the files.
type fileCommits struct {
	// newestFrom is the newest commit time in files[i..] of its run; zero if none.
	newestFrom time.Time
	// lastUpTo is the commit time of the last file with commits in files[..i] of its
	// run (the newest commit wholly before files[i].end); known says there is one.
	lastUpTo time.Time
	known    bool
}

// pathBackup is a usable backup with what its WAL reaches.
type pathBackup struct {
	BackupPoint
	// reach is the end of the continuous WAL from StartLSN: the end of the run that
	// holds EndLSN, or EndLSN.
	reach pglogrepl.LSN
	// maxAfter is the newest commit time in that run after EndLSN, zero if none.
	maxAfter time.Time
}

// pathView is the archive seen along one timeline's history.
type pathView struct {
	in      *WindowInput
	tli     uint32
	lin     lineage
	segSize int64
	files   []pathFile    // by segment number
	commits []fileCommits // of each file
	runs    []walRun      // by position
	backups []pathBackup  // by EndLSN
	ranges  []Range
	groups  [][]int // the backups of each range, indexes into backups
	gaps    []Gap
	points  []NamedPoint // on the path, by LSN
}

func newPath(in *WindowInput, tli uint32) *pathView {
	p := &pathView{in: in, tli: tli, lin: lineageOf(tli, in.Histories), segSize: segmentSizeOf(in)}
	p.loadFiles()
	p.findRuns()
	p.loadBackups()
	p.buildRanges()
	p.findGaps()
	p.loadPoints()
	return p
}

// defaultTimeline is the newest timeline that a WAL file, history file or complete
// backup names; 0 when there are none.
func defaultTimeline(in *WindowInput) uint32 {
	var tli uint32
	for _, f := range in.WAL {
		if f.Timeline > 0 && f.Timeline <= math.MaxUint32 {
			tli = max(tli, uint32(f.Timeline))
		}
	}
	for _, b := range in.Backups {
		if b.State == store.BackupComplete && b.Timeline > 0 && b.Timeline <= math.MaxUint32 {
			tli = max(tli, uint32(b.Timeline))
		}
	}
	for t := range in.Histories {
		tli = max(tli, t)
	}
	return tli
}

// segmentSizeOf returns in's segment size: given, or that of an archived segment, or
// implied by a partial piece's position, or the default.
func segmentSizeOf(in *WindowInput) int64 {
	if in.SegmentSize > 0 {
		return in.SegmentSize
	}
	for _, f := range in.WAL {
		if f.Kind == store.WALSegment && pgwal.CheckSegmentSize(f.Size) == nil {
			return f.Size
		}
	}
	for _, f := range in.WAL {
		start, ok := parseLSN(f.StartLSN)
		if f.Kind == store.WALPartial && ok && f.SegNo > 0 && uint64(start)%uint64(f.SegNo) == 0 {
			if size := int64(uint64(start) / uint64(f.SegNo)); pgwal.CheckSegmentSize(size) == nil {
				return size
			}
		}
	}
	return pgwal.DefaultSegmentSize
}

// loadFiles keeps, for each segment, the file of the timeline that owns it on the path:
// the complete segment, or else its longest partial piece.
func (p *pathView) loadFiles() {
	p.files = make([]pathFile, 0, len(p.in.WAL))
	for _, f := range p.in.WAL {
		if f.Kind != store.WALSegment && f.Kind != store.WALPartial {
			continue
		}
		if f.Timeline <= 0 || f.Timeline > math.MaxUint32 || f.SegNo < 0 {
			continue
		}
		tli, segNo := uint32(f.Timeline), uint64(f.SegNo)
		if p.lin.owner(segNo, p.segSize) != tli {
			continue
		}
		start, ok1 := parseLSN(f.StartLSN)
		end, ok2 := parseLSN(f.EndLSN)
		segStart := pgwal.SegmentStart(segNo, p.segSize)
		segEnd := segStart + pglogrepl.LSN(p.segSize)
		if !ok1 || !ok2 || start != segStart || end <= start || end > segEnd {
			continue
		}
		pf := pathFile{
			name: f.Name, tli: tli, segNo: segNo, start: start, end: end, size: f.Size,
			partial: f.Kind == store.WALPartial, full: end == segEnd, commits: f.Commits,
		}
		if f.Commits > 0 && f.FirstCommitAt != nil && f.LastCommitAt != nil {
			pf.first, pf.last = *f.FirstCommitAt, *f.LastCommitAt
		} else {
			pf.commits = 0
		}
		p.files = append(p.files, pf)
	}
	// By segment, the best file first: the complete segment, or the longest piece (the
	// first listed among equals).
	slices.SortStableFunc(p.files, func(a, b pathFile) int {
		return cmp.Or(cmp.Compare(a.segNo, b.segNo), cmp.Compare(boolRank(a.partial), boolRank(b.partial)), cmp.Compare(b.end, a.end))
	})
	p.files = slices.CompactFunc(p.files, func(a, b pathFile) bool { return a.segNo == b.segNo })
}

// boolRank orders false before true.
func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// findRuns groups the files into runs of consecutive segments, each but the last of a
// run complete.
func (p *pathView) findRuns() {
	for i, f := range p.files {
		if n := len(p.runs); n > 0 {
			r := &p.runs[n-1]
			if prev := p.files[r.last]; prev.full && f.segNo == prev.segNo+1 {
				r.last, r.end = i, f.end
				continue
			}
		}
		p.runs = append(p.runs, walRun{first: i, last: i, start: f.start, end: f.end})
	}
	p.commits = make([]fileCommits, len(p.files))
	for _, r := range p.runs {
		var up fileCommits
		for i := r.first; i <= r.last; i++ {
			if f := p.files[i]; f.commits > 0 {
				up.lastUpTo, up.known = f.last, true
			}
			p.commits[i].lastUpTo, p.commits[i].known = up.lastUpTo, up.known
		}
		var newest time.Time
		for i := r.last; i >= r.first; i-- {
			if f := p.files[i]; f.commits > 0 && f.last.After(newest) {
				newest = f.last
			}
			p.commits[i].newestFrom = newest
		}
	}
}

// fileBySeg returns the index of the file of segment segNo, or -1.
func (p *pathView) fileBySeg(segNo uint64) int {
	i, ok := slices.BinarySearchFunc(p.files, segNo, func(f pathFile, n uint64) int { return cmp.Compare(f.segNo, n) })
	if !ok {
		return -1
	}
	return i
}

// fileAt returns the index of the file that holds the byte at lsn, or -1.
func (p *pathView) fileAt(lsn pglogrepl.LSN) int {
	i := p.fileBySeg(pgwal.SegmentOf(lsn, p.segSize))
	if i < 0 || lsn < p.files[i].start || lsn >= p.files[i].end {
		return -1
	}
	return i
}

// runCovering returns the index of the run with start ≤ lsn ≤ end, or -1. Runs are
// apart (a run ends before a missing segment or after a partial piece), by position.
func (p *pathView) runCovering(lsn pglogrepl.LSN) int {
	i := sort.Search(len(p.runs), func(i int) bool { return p.runs[i].end >= lsn })
	if i < len(p.runs) && p.runs[i].start <= lsn {
		return i
	}
	return -1
}

// loadBackups keeps the complete backups whose WAL, from StartLSN to EndLSN, lies on
// their timeline's part of the path, and works out their consistency time and reach.
func (p *pathView) loadBackups() {
	for _, b := range p.in.Backups {
		if b.State != store.BackupComplete || b.Timeline <= 0 || b.Timeline > math.MaxUint32 {
			continue
		}
		start, ok1 := parseLSN(b.StartLSN)
		end, ok2 := parseLSN(b.EndLSN)
		if !ok1 || !ok2 || end < start {
			continue
		}
		sp, ok := p.lin.span(uint32(b.Timeline))
		if !ok || start < sp.begin || end > sp.end {
			continue
		}
		bp := BackupPoint{ID: b.ID, Timeline: uint32(b.Timeline), StartLSN: start, EndLSN: end, Bytes: b.Stats.SourceBytes}
		if b.FinishedAt != nil {
			bp.FinishedAt = *b.FinishedAt
		}
		bp.ConsistentAt, bp.ConsistentFrom = p.consistency(end, bp.FinishedAt)
		pb := pathBackup{BackupPoint: bp, reach: end}
		if r := p.runCovering(end); r >= 0 {
			run := p.runs[r]
			pb.reach = run.end
			// The run's files past end: from the first that ends after it.
			files := p.files[run.first : run.last+1]
			if i := sort.Search(len(files), func(i int) bool { return files[i].end > end }); i < len(files) {
				pb.maxAfter = p.commits[run.first+i].newestFrom
			}
		}
		p.backups = append(p.backups, pb)
	}
	slices.SortFunc(p.backups, func(a, b pathBackup) int {
		return cmp.Or(cmp.Compare(a.EndLSN, b.EndLSN), cmp.Compare(a.ID, b.ID))
	})
}

// consistency returns the consistency time of a backup ending at end and finished at
// finished, and where it comes from (see ConsistencySource).
func (p *pathView) consistency(end pglogrepl.LSN, finished time.Time) (time.Time, ConsistencySource) {
	straddle := -1
	pos := end
	if i := p.fileAt(end); i >= 0 && p.files[i].start < end {
		straddle, pos = i, p.files[i].start
	}
	// The newest commit wholly before end: in the contiguous files ending at pos.
	var lo time.Time
	known := false
	if pos > 0 {
		if i := p.fileBySeg(pgwal.SegmentOf(pos-1, p.segSize)); i >= 0 && p.files[i].end == pos {
			lo, known = p.commits[i].lastUpTo, p.commits[i].known
		}
	}
	switch {
	case straddle >= 0 && p.files[straddle].commits > 0:
		hi := p.files[straddle].last
		if known && lo.After(hi) {
			hi = lo
		}
		if !finished.IsZero() && finished.Before(hi) && (!known || !finished.Before(lo)) {
			return finished, ConsistencyFinish
		}
		return hi, ConsistencyWALBound
	case known:
		return lo, ConsistencyWAL
	case finished.IsZero():
		return time.Time{}, ""
	}
	return finished, ConsistencyFinish
}

// buildRanges groups the backups by the run their EndLSN falls in.
func (p *pathView) buildRanges() {
	for i, b := range p.backups {
		if b.ConsistentAt.IsZero() {
			continue
		}
		if n := len(p.ranges); n > 0 && b.EndLSN <= p.ranges[n-1].ToLSN {
			r := &p.ranges[n-1]
			p.groups[n-1] = append(p.groups[n-1], i)
			if b.ConsistentAt.Before(r.From) {
				r.From, r.BackupID = b.ConsistentAt, b.ID
			}
			r.ToLSN = max(r.ToLSN, b.reach)
			r.To = latest(r.To, b.ConsistentAt, b.maxAfter)
			continue
		}
		p.ranges = append(p.ranges, Range{
			From: b.ConsistentAt, To: latest(b.ConsistentAt, b.maxAfter),
			FromLSN: b.EndLSN, ToLSN: b.reach, BackupID: b.ID,
		})
		p.groups = append(p.groups, []int{i})
	}
	for i := range p.ranges {
		r := &p.ranges[i]
		r.Timeline = p.lin.at(max(r.ToLSN, 1) - 1)
	}
}

// findGaps finds the missing WAL after each range that another range, or archived WAL
// that no backup can use, follows.
func (p *pathView) findGaps() {
	for i, r := range p.ranges {
		resume := lsnMax
		if j := sort.Search(len(p.files), func(j int) bool { return p.files[j].start > r.ToLSN }); j < len(p.files) {
			resume = p.files[j].start
		}
		if i+1 < len(p.ranges) {
			resume = min(resume, p.ranges[i+1].FromLSN)
		} else if resume == lsnMax {
			break
		}
		segNo := pgwal.SegmentOf(r.ToLSN, p.segSize)
		tli := p.lin.owner(segNo, p.segSize)
		p.gaps = append(p.gaps, Gap{
			Segment: pgwal.SegmentName(tli, segNo, p.segSize), Timeline: tli,
			FromLSN: r.ToLSN, ToLSN: resume, RestorableUntil: r.To,
		})
	}
}

// loadPoints keeps the restore points found in the files the path reads.
func (p *pathView) loadPoints() {
	for _, rp := range p.in.RestorePoints {
		lsn, ok := parseLSN(rp.LSN)
		if !ok || rp.Timeline <= 0 || rp.Timeline > math.MaxUint32 {
			continue
		}
		if p.lin.owner(pgwal.SegmentOf(lsn, p.segSize), p.segSize) != uint32(rp.Timeline) {
			continue
		}
		p.points = append(p.points, NamedPoint{Name: rp.Name, LSN: lsn, At: rp.At, Timeline: uint32(rp.Timeline)})
	}
	slices.SortFunc(p.points, func(a, b NamedPoint) int {
		return cmp.Or(cmp.Compare(a.LSN, b.LSN), strings.Compare(a.Name, b.Name))
	})
	p.points = slices.CompactFunc(p.points, func(a, b NamedPoint) bool { return a.LSN == b.LSN && a.Name == b.Name })
}

func (p *pathView) window() Window {
	w := Window{Timeline: p.tli, Ranges: slices.Clone(p.ranges), Gaps: slices.Clone(p.gaps)}
	if n := len(p.ranges); n > 0 {
		w.Earliest, w.Latest = p.ranges[0].From, p.ranges[n-1].To
	}
	for _, b := range p.backups {
		w.Backups = append(w.Backups, b.BackupPoint)
	}
	for _, pt := range p.points {
		if p.rangeOfLSN(pt.LSN, false) >= 0 {
			w.RestorePoints = append(w.RestorePoints, pt)
		}
	}
	return w
}

// rangeOfLSN returns the newest range with FromLSN ≤ lsn < ToLSN (≤ ToLSN with end), or -1.
func (p *pathView) rangeOfLSN(lsn pglogrepl.LSN, end bool) int {
	for i := len(p.ranges) - 1; i >= 0; i-- {
		r := p.ranges[i]
		if r.FromLSN <= lsn && (lsn < r.ToLSN || end && lsn == r.ToLSN) {
			return i
		}
	}
	return -1
}

// backupIndex returns the index of backup id among the path's backups, or -1.
func (p *pathView) backupIndex(id int64) int {
	for i, b := range p.backups {
		if b.ID == id {
			return i
		}
	}
	return -1
}

// nothing is the error for a target on a path with nothing restorable.
func (p *pathView) nothing(t Target) *TargetError {
	return &TargetError{Target: t, Window: p.window(),
		Reason: fmt.Sprintf("cannot be restored: no complete base backup is in the history of timeline %d", p.tli)}
}

// endChoice replays backup bi's WAL to its end: to its consistency point when no
// archived WAL goes further (stopping there, not wherever the WAL in the backup ends).
func (p *pathView) endChoice(bi int, t Target) choice {
	b := p.backups[bi]
	if b.reach == b.EndLSN {
		return choice{backup: bi, walTo: b.EndLSN, target: t, recovery: map[string]string{"recovery_target": "immediate"}}
	}
	return choice{backup: bi, walTo: b.reach, target: t, toEnd: true, recovery: map[string]string{}}
}

// normalizeTime returns the inclusive target time, to the microsecond, that selects the
// same commits as t.
func normalizeTime(t time.Time, inclusive bool) time.Time {
	tr := t.UTC().Truncate(time.Microsecond)
	if !inclusive && tr.Equal(t) {
		tr = tr.Add(-time.Microsecond)
	}
	return tr
}

func (p *pathView) chooseTime(t Target) (choice, error) {
	tt := normalizeTime(t.Time, t.Inclusive)
	norm := Target{Kind: TargetTime, Time: tt, Inclusive: true, Timeline: p.tli}
	ri := -1
	for i, r := range p.ranges {
		if !tt.Before(r.From) && !tt.After(r.To) {
			ri = i
		}
	}
	if ri < 0 {
		return choice{}, p.timeError(t, tt)
	}
	bi := -1
	for _, i := range p.groups[ri] {
		b := p.backups[i]
		if b.ConsistentAt.After(tt) {
			continue
		}
		if bi < 0 {
			bi = i
			continue
		}
		c := p.backups[bi]
		if cmp.Or(b.ConsistentAt.Compare(c.ConsistentAt), cmp.Compare(b.EndLSN, c.EndLSN), cmp.Compare(b.ID, c.ID)) > 0 {
			bi = i
		}
	}
	b := p.backups[bi]
	if !b.maxAfter.After(tt) {
		return p.endChoice(bi, norm), nil
	}
	// Replay stops before the first commit after tt, in the first file past EndLSN
	// holding one (a commit record is counted in a file only if it ends there).
	for _, f := range p.files {
		if f.end > b.EndLSN && f.end <= b.reach && f.commits > 0 && f.last.After(tt) {
			return choice{backup: bi, walTo: f.end, target: norm, recovery: map[string]string{
				"recovery_target_time":      formatTargetTime(tt),
				"recovery_target_inclusive": "on",
			}}, nil
		}
	}
	return choice{}, errInconsistent // maxAfter came from these files
}

// errInconsistent reports a broken invariant of the path: a bug, not a bad target.
var errInconsistent = errors.New("plan restore: internal error: the WAL of the chosen backup does not hold the target")

// timeError explains why time tt (normalized from t) is outside the window.
func (p *pathView) timeError(t Target, tt time.Time) error {
	if len(p.ranges) == 0 {
		return p.nothing(t)
	}
	e := &TargetError{Target: t, Window: p.window()}
	first, last := p.ranges[0], p.ranges[len(p.ranges)-1]
	switch {
	case tt.Before(first.From):
		e.Reason, e.NearestTime = "is before the earliest restorable time", first.From
		if b := p.backups[p.backupIndex(first.BackupID)]; b.Approximate() {
			e.Reason += fmt.Sprintf(" (the consistency time of backup %d, its finish time: the WAL does not tell it exactly)", b.ID)
		}
	case tt.After(last.To):
		e.Reason, e.NearestTime = "is after the latest restorable time", last.To
		if g, ok := p.gapAfter(len(p.ranges) - 1); ok {
			e.Missing = g.Segment
			e.Reason += fmt.Sprintf(": WAL segment %s is missing, and no later base backup can restore the WAL archived after it", g.Segment)
		}
	default:
		for i := 0; i+1 < len(p.ranges); i++ {
			before, after := p.ranges[i], p.ranges[i+1]
			if tt.After(before.To) && tt.Before(after.From) {
				g, _ := p.gapAfter(i)
				e.Missing = g.Segment
				e.Reason = fmt.Sprintf("falls in a gap in the WAL: segment %s is missing, so restores reach %s at the latest before it, and work again from %s",
					g.Segment, fmtTime(before.To), fmtTime(after.From))
				e.NearestTime = before.To
				if after.From.Sub(tt) < tt.Sub(before.To) {
					e.NearestTime = after.From
				}
			}
		}
	}
	return e
}

// gapAfter returns the gap that follows range i.
func (p *pathView) gapAfter(i int) (Gap, bool) {
	for _, g := range p.gaps {
		if g.FromLSN == p.ranges[i].ToLSN {
			return g, true
		}
	}
	return Gap{}, false
}

func (p *pathView) chooseLSN(t Target) (choice, error) {
	l := t.LSN
	norm := Target{Kind: TargetLSN, LSN: l, Inclusive: t.Inclusive, Timeline: p.tli}
	ri := p.rangeOfLSN(l, true)
	if ri < 0 {
		return choice{}, p.lsnError(t, l)
	}
	bi := -1
	for _, i := range p.groups[ri] {
		if p.backups[i].EndLSN <= l {
			bi = i // groups are by EndLSN: the last is the newest
		}
	}
	b := p.backups[bi]
	if l >= b.reach {
		return p.endChoice(bi, norm), nil
	}
	inclusive := "off"
	if t.Inclusive {
		inclusive = "on"
	}
	// The record that stops replay starts at or after l: in l's file, or running on
	// into the next one.
	i := p.fileAt(l)
	if i < 0 {
		return choice{}, errInconsistent
	}
	to := p.files[i].end
	if i+1 < len(p.files) && p.files[i+1].start == to && p.files[i+1].end <= b.reach {
		to = p.files[i+1].end
	}
	return choice{backup: bi, walTo: to, target: norm, recovery: map[string]string{
		"recovery_target_lsn":       l.String(),
		"recovery_target_inclusive": inclusive,
	}}, nil
}

// lsnError explains why position l is outside the window.
func (p *pathView) lsnError(t Target, l pglogrepl.LSN) *TargetError {
	if len(p.ranges) == 0 {
		return p.nothing(t)
	}
	e := &TargetError{Target: t, Window: p.window()}
	first, last := p.ranges[0], p.ranges[len(p.ranges)-1]
	switch {
	case l < first.FromLSN:
		e.Reason = fmt.Sprintf("is before the earliest restorable position, %s (the consistency point of backup %d)", first.FromLSN, first.BackupID)
		e.NearestLSN = first.FromLSN
	case l > last.ToLSN:
		e.Reason, e.NearestLSN = fmt.Sprintf("is after the end of the continuous WAL, %s", last.ToLSN), last.ToLSN
		if g, ok := p.gapAfter(len(p.ranges) - 1); ok {
			e.Missing = g.Segment
			e.Reason += fmt.Sprintf(": WAL segment %s is missing", g.Segment)
		}
	default:
		for i := 0; i+1 < len(p.ranges); i++ {
			before, after := p.ranges[i], p.ranges[i+1]
			if l > before.ToLSN && l < after.FromLSN {
				g, _ := p.gapAfter(i)
				e.Missing = g.Segment
				e.Reason = fmt.Sprintf("falls in a gap in the WAL: segment %s is missing, so restores reach %s (%s) at the latest before it, and work again from %s",
					g.Segment, before.ToLSN, fmtTime(before.To), after.FromLSN)
				e.NearestLSN = before.ToLSN
				if after.FromLSN-l < l-before.ToLSN {
					e.NearestLSN = after.FromLSN
				}
			}
		}
	}
	return e
}

func (p *pathView) chooseName(t Target) (choice, error) {
	if t.Name == "" {
		return choice{}, errors.New("plan restore: empty restore point name")
	}
	var named []NamedPoint
	for _, pt := range p.points {
		if pt.Name == t.Name {
			named = append(named, pt)
		}
	}
	if len(named) == 0 {
		e := &TargetError{Target: t, Window: p.window(), Reason: fmt.Sprintf("does not exist in the history of timeline %d", p.tli)}
		var names []string
		for _, pt := range e.Window.RestorePoints {
			if q := strconv.Quote(pt.Name); !slices.Contains(names, q) {
				names = append(names, q)
			}
		}
		if len(names) > 5 {
			names = append(names[len(names)-5:], "…")
		}
		if len(names) > 0 {
			e.Reason += "; restore points in the window: " + strings.Join(names, ", ")
		}
		return choice{}, e
	}
	// PostgreSQL stops at the first point of that name it replays: the lowest one
	// after the backup's start, which must also be after its consistency point.
	for _, pt := range named {
		ri := p.rangeOfLSN(pt.LSN, false)
		if ri < 0 {
			continue
		}
		bi := -1
		for _, i := range p.groups[ri] {
			b := p.backups[i]
			if b.EndLSN > pt.LSN || slices.ContainsFunc(named, func(q NamedPoint) bool { return q.LSN >= b.StartLSN && q.LSN < pt.LSN }) {
				continue
			}
			bi = i
		}
		i := p.fileAt(pt.LSN)
		if bi < 0 || i < 0 {
			continue
		}
		return choice{backup: bi, walTo: p.files[i].end, recovery: map[string]string{"recovery_target_name": t.Name},
			target: Target{Kind: TargetName, Name: t.Name, LSN: pt.LSN, Time: pt.At, Inclusive: true, Timeline: p.tli}}, nil
	}
	pt := named[0]
	e := p.lsnError(t, pt.LSN)
	if e.Reason == "" {
		e.Reason = "cannot be reached: an earlier restore point of the same name, inside the base backup, stops recovery first"
	}
	e.Reason = fmt.Sprintf("(at %s, %s) %s", pt.LSN, fmtTime(pt.At), e.Reason)
	return choice{}, e
}

func (p *pathView) chooseLatest(t Target) (choice, error) {
	if len(p.ranges) == 0 {
		return choice{}, p.nothing(t)
	}
	last := len(p.ranges) - 1
	r, g := p.ranges[last], p.groups[last]
	return p.endChoice(g[len(g)-1], Target{Kind: TargetLatest, Time: r.To, LSN: r.ToLSN, Inclusive: true, Timeline: p.tli}), nil
}

func (p *pathView) chooseImmediate(t Target) (choice, error) {
	if len(p.backups) == 0 {
		return choice{}, p.nothing(t)
	}
	bi := len(p.backups) - 1
	if t.BackupID != 0 {
		if bi = p.backupIndex(t.BackupID); bi < 0 {
			newest := p.backups[len(p.backups)-1]
			return choice{}, &TargetError{Target: t, Window: p.window(), NearestTime: newest.ConsistentAt, NearestLSN: newest.EndLSN,
				Reason: fmt.Sprintf("cannot be restored: backup %d is not a complete base backup in the history of timeline %d (the newest is backup %d)",
					t.BackupID, p.tli, newest.ID)}
		}
	}
	b := p.backups[bi]
	return choice{backup: bi, walTo: b.EndLSN, recovery: map[string]string{"recovery_target": "immediate"},
		target: Target{Kind: TargetImmediate, BackupID: b.ID, LSN: b.EndLSN, Time: b.ConsistentAt, Inclusive: true, Timeline: p.tli}}, nil
}

// plan turns c into a Plan.
func (p *pathView) plan(c choice, throughput float64) Plan {
	b := p.backups[c.backup]
	pl := Plan{
		Backup: b.BackupPoint, Timeline: p.tli, WALFrom: b.StartLSN, WALTo: c.walTo,
		Target: c.target, ReplayToEnd: c.toEnd, Recovery: c.recovery, SegmentSize: p.segSize,
	}
	if _, ok := p.in.Histories[p.tli]; ok && p.tli > 1 {
		pl.HistoryFile = pgwal.HistoryFileName(p.tli)
	}
	for _, f := range p.files {
		if f.end <= b.StartLSN || f.start >= c.walTo {
			continue
		}
		pl.WAL = append(pl.WAL, WALNeed{
			Name: f.name, Segment: pgwal.SegmentName(f.tli, f.segNo, p.segSize), Timeline: f.tli, SegNo: f.segNo,
			StartLSN: f.start, EndLSN: f.end, Size: f.size, Partial: f.partial,
		})
		pl.WALBytes += f.size
	}
	pl.Bytes = b.Bytes + pl.WALBytes
	pl.Recovery["recovery_target_timeline"] = strconv.FormatUint(uint64(p.tli), 10)
	pl.Recovery["recovery_target_action"] = "promote"
	if throughput > 0 && !math.IsInf(throughput, 0) {
		pl.EstimatedDuration = time.Duration(float64(pl.Bytes) / throughput * float64(time.Second))
	}
	return pl
}

// latest returns the latest of ts.
func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// formatTargetTime formats t for recovery_target_time: UTC, to the microsecond, with a
// numeric offset (a server reading its configuration at start refuses "Z").
func formatTargetTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02 15:04:05.999999-07")
}

// fmtTime formats t for messages: "2026-11-25 09:41:07.25 UTC".
func fmtTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999") + " UTC"
}

// fmtSpan formats from–to, leaving out to's date when it is from's.
func fmtSpan(from, to time.Time) string {
	from, to = from.UTC(), to.UTC()
	if from.Format(time.DateOnly) == to.Format(time.DateOnly) {
		return fmtTime(from) + " to " + to.Format("15:04:05.999999") + " UTC"
	}
	return fmtTime(from) + " to " + fmtTime(to)
}

// parseLSN parses "X/Y" strictly: one to eight hexadecimal digits on each side.
func parseLSN(s string) (pglogrepl.LSN, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return pglogrepl.LSN(h<<32 | l), true
}

// targetTimeLayouts are the time forms ParseTarget accepts; a fractional second may
// follow the seconds in each. Those without a zone are UTC.
var targetTimeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05-07",
	"2006-01-02T15:04:05-07",
	"2006-01-02 15:04:05-0700",
	"2006-01-02T15:04:05-0700",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
}

// maxRestorePointName is the longest restore point name PostgreSQL accepts, in bytes.
const maxRestorePointName = 63

// ParseTarget parses a restore target as typed in the CLI or the restore form:
//
//   - "latest": everything archived;
//   - "immediate", or "immediate:ID": the consistency point of the newest backup, or of
//     backup ID;
//   - "lsn:0/3A000028", or just "0/3A000028": a WAL position;
//   - "name:before-upgrade": a named restore point (1 to 63 bytes, taken as is);
//   - a time: RFC 3339 with "Z" or an offset ("2026-11-25T09:30:00Z",
//     "2026-11-25T10:30:00+01:00"), the same with a space for the "T", PostgreSQL's
//     form ("2026-11-25 09:25:09.250455+00"), or without a zone, in UTC
//     ("2026-11-25 09:30:00", "2026-11-25 09:30:00 UTC", "2026-11-25T09:30", as an
//     HTML datetime-local field sends it); fractional seconds are allowed.
//
// Keywords and prefixes are case-insensitive; surrounding space is ignored. Targets come
// back Inclusive (PostgreSQL's default), times in UTC. Target.Text writes the same forms.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	fail := func(format string, args ...any) (Target, error) {
		return Target{}, fmt.Errorf("restore target %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty: want latest, immediate, a time such as 2026-11-25 09:30:00 (UTC), lsn:0/3A000028 or name:NAME")
	}
	switch lower := strings.ToLower(s); {
	case lower == "latest":
		return Target{Kind: TargetLatest, Inclusive: true}, nil
	case lower == "immediate":
		return Target{Kind: TargetImmediate, Inclusive: true}, nil
	case strings.HasPrefix(lower, "immediate:"):
		id, err := strconv.ParseInt(strings.TrimSpace(s[len("immediate:"):]), 10, 64)
		if err != nil || id <= 0 {
			return fail("want immediate:ID with a backup ID")
		}
		return Target{Kind: TargetImmediate, BackupID: id, Inclusive: true}, nil
	case strings.HasPrefix(lower, "lsn:"):
		lsn, ok := parseLSN(strings.TrimSpace(s[len("lsn:"):]))
		if !ok || lsn == 0 {
			return fail("want an LSN such as lsn:0/3A000028")
		}
		return Target{Kind: TargetLSN, LSN: lsn, Inclusive: true}, nil
	case strings.HasPrefix(lower, "name:"):
		name := s[len("name:"):]
		if name == "" || len(name) > maxRestorePointName || strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
			return fail("a restore point name is 1 to %d bytes of text", maxRestorePointName)
		}
		return Target{Kind: TargetName, Name: name, Inclusive: true}, nil
	}
	if lsn, ok := parseLSN(s); ok && lsn != 0 {
		return Target{Kind: TargetLSN, LSN: lsn, Inclusive: true}, nil
	}
	ts := s
	if len(ts) > 4 && strings.EqualFold(ts[len(ts)-4:], " UTC") {
		ts = strings.TrimSpace(ts[:len(ts)-4])
	}
	for _, layout := range targetTimeLayouts {
		if t, err := time.Parse(layout, ts); err == nil {
			return Target{Kind: TargetTime, Time: t.UTC(), Inclusive: true}, nil
		}
	}
	return fail("not a time, LSN or keyword: want latest, immediate, a time such as 2026-11-25 09:30:00 (UTC) or 2026-11-25T09:30:00+01:00, lsn:0/3A000028 or name:NAME")
}

// BlockingTablespaces returns the tablespace creations (with a location) at or after the
// StartLSN of the newest complete backup among backups, by LSN: restores past them are
// refused until a base backup starts after them. With no complete backup, none: nothing
// is restorable yet anyway.
func BlockingTablespaces(backups []store.Backup, tcs []store.TablespaceCreation) []store.TablespaceCreation {
	var newest pglogrepl.LSN
	found := false
	for _, b := range backups {
		if start, ok := parseLSN(b.StartLSN); ok && b.State == store.BackupComplete && start >= newest {
			newest, found = start, true
		}
	}
	var out []store.TablespaceCreation
	for _, tc := range tcs {
		if l, ok := parseLSN(tc.LSN); found && ok && tc.Location != "" && l >= newest {
			out = append(out, tc)
		}
	}
	slices.SortFunc(out, func(a, b store.TablespaceCreation) int {
		la, _ := parseLSN(a.LSN)
		lb, _ := parseLSN(b.LSN)
		return cmp.Compare(la, lb)
	})
	return out
}
