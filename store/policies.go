package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Policy is a source's schedule and retention policy, as stored. Validation of its
// meaning (the cron expression, the time zone, a policy that keeps nothing) belongs to
// the use cases; the store checks only what the schema does.
type Policy struct {
	SourceID int64
	// BackupCron is the full-backup schedule (cron syntax), empty for none.
	BackupCron string
	// TimeZone is an IANA zone name: the schedule's, and retention's calendar.
	TimeZone string
	// Window is the recovery window: every second of the last Window stays restorable.
	Window                         time.Duration
	KeepLast                       int
	Daily, Weekly, Monthly, Yearly int
	MinKeep                        int
	ArchiveYears                   int
	// VerifyCron and DrillCron schedule routine verification and restore drills,
	// empty for none.
	VerifyCron, DrillCron string
	// RPO is the most archiving may lag before an alert; DrillMaxAge the oldest the
	// newest passing drill may be; VerifyPeriod the time within which routine
	// verification re-reads every object.
	RPO, DrillMaxAge, VerifyPeriod time.Duration
	// ScheduleSince is when a schedule (a cron expression or the time zone) last
	// changed: runs due before it are not owed.
	ScheduleSince time.Time
	UpdatedAt     time.Time
	UpdatedBy     string
}

const policyColumns = `source_id, backup_cron, time_zone, window_seconds, keep_last, keep_daily, keep_weekly,
	keep_monthly, keep_yearly, min_keep, archive_years, verify_cron, drill_cron, rpo_seconds, drill_max_age_seconds,
	verify_period_seconds, schedule_since, updated_at, updated_by`

func scanPolicy(r rowScanner) (Policy, error) {
	var p Policy
	var window, rpo, drillAge, verifyPeriod int64
	err := r.Scan(&p.SourceID, orZero(&p.BackupCron), &p.TimeZone, &window, &p.KeepLast, &p.Daily, &p.Weekly,
		&p.Monthly, &p.Yearly, &p.MinKeep, &p.ArchiveYears, orZero(&p.VerifyCron), orZero(&p.DrillCron), &rpo, &drillAge,
		&verifyPeriod, scanTime(&p.ScheduleSince), scanTime(&p.UpdatedAt), &p.UpdatedBy)
	p.Window = time.Duration(window) * time.Second
	p.RPO = time.Duration(rpo) * time.Second
	p.DrillMaxAge = time.Duration(drillAge) * time.Second
	p.VerifyPeriod = time.Duration(verifyPeriod) * time.Second
	return p, err
}

// Policy returns the policy of source sourceID; ErrNotFound when it has none.
func (s *Store) Policy(ctx context.Context, sourceID int64) (Policy, error) {
	p, err := scanPolicy(s.db.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies WHERE source_id = ?`, sourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return Policy{}, fmt.Errorf("policy of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("policy of source %d: %w", sourceID, err)
	}
	return p, nil
}

// Default objectives of a policy that does not give them.
const (
	DefaultRPO          = time.Minute
	DefaultDrillMaxAge  = 8 * 24 * time.Hour
	DefaultVerifyPeriod = 30 * 24 * time.Hour
)

// Policies returns every stored policy, removed sources' included, by source.
func (s *Store) Policies(ctx context.Context) ([]Policy, error) {
	ps, err := queryAll(ctx, s.db, scanPolicy, `SELECT `+policyColumns+` FROM policies ORDER BY source_id`)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return ps, nil
}

// SetPolicy stores p as its source's policy, replacing any, and returns it as stored.
// ScheduleSince is set to now when the schedule (cron or time zone) changes, and kept
// otherwise.
func (s *Store) SetPolicy(ctx context.Context, p Policy) (Policy, error) {
	if p.Window < 0 || p.Window%time.Second != 0 {
		return Policy{}, fmt.Errorf("set policy: window %s is not a whole number of seconds", p.Window)
	}
	// Objectives not given take their defaults.
	if p.RPO <= 0 {
		p.RPO = DefaultRPO
	}
	if p.DrillMaxAge <= 0 {
		p.DrillMaxAge = DefaultDrillMaxAge
	}
	if p.VerifyPeriod <= 0 {
		p.VerifyPeriod = DefaultVerifyPeriod
	}
	var out Policy
	now := formatTime(s.clock())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := sourceExists(ctx, tx, p.SourceID); err != nil {
			return err
		}
		var err error
		out, err = scanPolicy(tx.QueryRowContext(ctx, `
			INSERT INTO policies (`+policyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (source_id) DO UPDATE SET backup_cron = excluded.backup_cron, time_zone = excluded.time_zone,
				window_seconds = excluded.window_seconds, keep_last = excluded.keep_last, keep_daily = excluded.keep_daily,
				keep_weekly = excluded.keep_weekly, keep_monthly = excluded.keep_monthly, keep_yearly = excluded.keep_yearly,
				min_keep = excluded.min_keep, archive_years = excluded.archive_years, updated_at = excluded.updated_at,
				verify_cron = excluded.verify_cron, drill_cron = excluded.drill_cron, rpo_seconds = excluded.rpo_seconds,
				drill_max_age_seconds = excluded.drill_max_age_seconds, verify_period_seconds = excluded.verify_period_seconds,
				schedule_since = CASE WHEN policies.backup_cron IS excluded.backup_cron AND policies.verify_cron IS excluded.verify_cron
					AND policies.drill_cron IS excluded.drill_cron AND policies.time_zone = excluded.time_zone
					THEN policies.schedule_since ELSE excluded.schedule_since END,
				updated_by = excluded.updated_by
			RETURNING `+policyColumns,
			p.SourceID, nullString(p.BackupCron), p.TimeZone, int64(p.Window/time.Second), p.KeepLast, p.Daily, p.Weekly,
			p.Monthly, p.Yearly, p.MinKeep, p.ArchiveYears, nullString(p.VerifyCron), nullString(p.DrillCron),
			int64(p.RPO/time.Second), int64(p.DrillMaxAge/time.Second), int64(p.VerifyPeriod/time.Second), now, now, p.UpdatedBy))
		return err
	})
	if err != nil {
		return Policy{}, fmt.Errorf("set policy of source %d: %w", p.SourceID, err)
	}
	return out, nil
}

// nullString stores "" as NULL.
func nullString(v string) any {
	if v == "" {
		return nil
	}
	return v
}
