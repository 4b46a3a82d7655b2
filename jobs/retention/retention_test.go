package retention_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST cases must not depend on the host's zoneinfo

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/backstop/backstop/jobs/retention"
)

// Short names for the rules, so that the tables read as the results they describe.
const (
	window  = retention.RuleWindow
	last    = retention.RuleLast
	daily   = retention.RuleDaily
	weekly  = retention.RuleWeekly
	monthly = retention.RuleMonthly
	yearly  = retention.RuleYearly
	minimum = retention.RuleMinimum
	pinned  = retention.RulePinned
	archive = retention.RuleArchive
)

// allRules lists the rules in the order Select reports them.
var allRules = []retention.Rule{window, last, daily, weekly, monthly, yearly, minimum, pinned, archive}

type selectTest struct {
	name    string
	p       retention.Policy
	now     time.Time
	backups []retention.Backup
	want    map[int64][]retention.Rule
}

func load(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}

// at parses "2006-01-02 15:04" as a wall clock time in loc. Times in the repeated hour of a
// fall-back are ambiguous in local time: the tables give those in UTC.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatalf("at(%q): %v", s, err)
	}
	return tm
}

func bk(id int64, at time.Time) retention.Backup { return retention.Backup{ID: id, At: at} }

func pin(id int64, at time.Time) retention.Backup {
	return retention.Backup{ID: id, At: at, Pinned: true}
}

func formatBackups(bs []retention.Backup) string {
	var parts []string
	for _, b := range bs {
		s := fmt.Sprintf("%d@%s", b.ID, b.At.Format(time.RFC3339))
		if b.Pinned {
			s += "(pinned)"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func runSelect(t *testing.T, tests []selectTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := retention.Select(tt.backups, tt.p, tt.now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Select(%s, %+v, %s) = %v, want %v; diff (-want +got):\n%s",
					formatBackups(tt.backups), tt.p, tt.now.Format(time.RFC3339), got, tt.want, diff)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	now := at(t, utc, "2026-06-15 12:00")
	full := retention.Policy{Window: 48 * time.Hour, KeepLast: 1, Daily: 1, Weekly: 1, Monthly: 1, Yearly: 1, MinKeep: 1, ArchiveYears: 1}
	runSelect(t, []selectTest{
		{
			name: "empty",
			p:    full,
			now:  now,
			want: map[int64][]retention.Rule{},
		},
		{
			name: "zero-policy-keeps-pinned-only",
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-14 00:00")),
				pin(2, at(t, utc, "2020-01-01 00:00")),
			},
			want: map[int64][]retention.Rule{2: {pinned}},
		},
		{
			name: "all-rules-in-order",
			p:    full,
			now:  now,
			backups: []retention.Backup{
				pin(1, at(t, utc, "2026-06-15 01:00")),
			},
			want: map[int64][]retention.Rule{1: allRules},
		},
		{
			name: "keep-last-ties-by-id",
			p:    retention.Policy{KeepLast: 2},
			now:  now,
			backups: []retention.Backup{
				bk(3, at(t, utc, "2026-06-14 00:00")),
				bk(5, at(t, utc, "2026-06-14 00:00")),
				bk(9, at(t, utc, "2026-06-14 00:00")),
				bk(1, at(t, utc, "2026-06-13 00:00")),
			},
			want: map[int64][]retention.Rule{9: {last}, 5: {last}},
		},
		{
			name: "keep-last-more-than-backups",
			p:    retention.Policy{KeepLast: 5},
			now:  now,
			backups: []retention.Backup{
				bk(2, at(t, utc, "2026-06-14 00:00")),
				bk(1, at(t, utc, "2026-06-13 00:00")),
			},
			want: map[int64][]retention.Rule{1: {last}, 2: {last}},
		},
		{
			name: "daily-tie-keeps-higher-id",
			p:    retention.Policy{Daily: 1},
			now:  now,
			backups: []retention.Backup{
				bk(2, at(t, utc, "2026-06-14 10:00")),
				bk(8, at(t, utc, "2026-06-14 10:00")),
			},
			want: map[int64][]retention.Rule{8: {daily}},
		},
		{
			name: "window-anchor-exactly-at-start",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-12 12:00")),
				bk(2, at(t, utc, "2026-06-13 00:00")),
				bk(3, at(t, utc, "2026-06-13 12:00")), // now-Window: the anchor
				bk(4, at(t, utc, "2026-06-14 00:00")),
				bk(5, at(t, utc, "2026-06-15 11:00")),
			},
			want: map[int64][]retention.Rule{3: {window}, 4: {window}, 5: {window}},
		},
		{
			name: "window-anchor-before-start",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-12 12:00")),
				bk(2, at(t, utc, "2026-06-13 06:00")),
				bk(3, at(t, utc, "2026-06-13 12:01")),
			},
			want: map[int64][]retention.Rule{2: {window}, 3: {window}},
		},
		{
			name: "window-without-anchor",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-14 00:00")),
				bk(2, at(t, utc, "2026-06-15 00:00")),
			},
			want: map[int64][]retention.Rule{1: {window}, 2: {window}},
		},
		{
			name: "window-anchor-only",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-01 00:00")),
				bk(2, at(t, utc, "2026-06-02 00:00")),
			},
			want: map[int64][]retention.Rule{2: {window}},
		},
		{
			name: "window-anchor-tie-keeps-higher-id",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				bk(4, at(t, utc, "2026-06-10 00:00")),
				bk(7, at(t, utc, "2026-06-10 00:00")),
			},
			want: map[int64][]retention.Rule{7: {window}},
		},
		{
			name: "backup-after-now-is-newest",
			p:    retention.Policy{Window: 48 * time.Hour, KeepLast: 1, Daily: 1},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-10 00:00")),
				bk(2, at(t, utc, "2026-06-15 11:00")),
				bk(3, at(t, utc, "2026-06-16 08:00")), // clock skew
			},
			want: map[int64][]retention.Rule{1: {window}, 2: {window}, 3: {window, last, daily}},
		},
		{
			name: "min-keep-old-backups",
			p:    retention.Policy{Window: 7 * 24 * time.Hour, Daily: 2, MinKeep: 3},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2025-01-01 00:00")),
				bk(2, at(t, utc, "2025-02-01 00:00")),
				bk(3, at(t, utc, "2025-03-01 00:00")),
				bk(4, at(t, utc, "2025-04-01 00:00")),
			},
			// Nothing lies in the window: it keeps its anchor only.
			want: map[int64][]retention.Rule{4: {window, daily, minimum}, 3: {daily, minimum}, 2: {minimum}},
		},
		{
			name: "min-keep-alone",
			p:    retention.Policy{MinKeep: 2},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2019-01-01 00:00")),
				bk(2, at(t, utc, "2019-01-02 00:00")),
				bk(3, at(t, utc, "2019-01-03 00:00")),
			},
			want: map[int64][]retention.Rule{2: {minimum}, 3: {minimum}},
		},
		{
			name: "pins",
			p:    retention.Policy{Window: 48 * time.Hour},
			now:  now,
			backups: []retention.Backup{
				pin(1, at(t, utc, "2019-01-01 00:00")),
				bk(2, at(t, utc, "2026-06-01 00:00")),
				bk(3, at(t, utc, "2026-06-10 00:00")),
				pin(4, at(t, utc, "2026-06-15 00:00")),
			},
			want: map[int64][]retention.Rule{1: {pinned}, 3: {window}, 4: {window, pinned}},
		},
		{
			name: "negative-counts-keep-nothing",
			p:    retention.Policy{Window: -time.Hour, KeepLast: -1, Daily: -1, MinKeep: -1, ArchiveYears: -1},
			now:  now,
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-06-15 00:00")),
			},
			want: map[int64][]retention.Rule{},
		},
	})
}

func TestSelectCalendar(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	berlin := load(t, "Europe/Berlin")
	newYork := load(t, "America/New_York")
	runSelect(t, []selectTest{
		{
			name: "daily-year-end",
			p:    retention.Policy{Daily: 3},
			now:  at(t, utc, "2027-01-01 13:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-12-30 10:00")),
				bk(2, at(t, utc, "2026-12-31 08:00")),
				bk(3, at(t, utc, "2026-12-31 23:59")),
				bk(4, at(t, utc, "2027-01-01 00:00")),
				bk(5, at(t, utc, "2027-01-01 12:00")),
			},
			want: map[int64][]retention.Rule{1: {daily}, 3: {daily}, 5: {daily}},
		},
		{
			name: "daily-skips-days-without-backups",
			p:    retention.Policy{Daily: 2},
			now:  at(t, utc, "2027-01-20 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2027-01-01 10:00")),
				bk(2, at(t, utc, "2027-01-05 10:00")),
				bk(3, at(t, utc, "2027-01-10 10:00")),
			},
			want: map[int64][]retention.Rule{2: {daily}, 3: {daily}},
		},
		{
			name: "monthly-year-end",
			p:    retention.Policy{Monthly: 2},
			now:  at(t, utc, "2027-01-02 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-11-15 00:00")),
				bk(2, at(t, utc, "2026-12-01 00:00")),
				bk(3, at(t, utc, "2026-12-31 23:00")),
				bk(4, at(t, utc, "2027-01-01 01:00")),
			},
			want: map[int64][]retention.Rule{3: {monthly}, 4: {monthly}},
		},
		{
			name: "yearly-year-end",
			p:    retention.Policy{Yearly: 3},
			now:  at(t, utc, "2027-06-01 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2025-06-01 00:00")),
				bk(2, at(t, utc, "2025-12-31 23:59")),
				bk(3, at(t, utc, "2026-01-01 00:00")),
				bk(4, at(t, utc, "2027-03-01 00:00")),
			},
			want: map[int64][]retention.Rule{2: {yearly}, 3: {yearly}, 4: {yearly}},
		},
		{
			// 2026-12-28 (Monday) to 2027-01-03 (Sunday) is ISO week 2026-W53.
			name: "weekly-iso-year-ends-in-january",
			p:    retention.Policy{Weekly: 3},
			now:  at(t, utc, "2027-01-05 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-12-27 12:00")), // 2026-W52
				bk(2, at(t, utc, "2026-12-28 12:00")), // 2026-W53
				bk(3, at(t, utc, "2026-12-31 12:00")), // 2026-W53
				bk(4, at(t, utc, "2027-01-01 12:00")), // 2026-W53
				bk(5, at(t, utc, "2027-01-03 23:00")), // 2026-W53
				bk(6, at(t, utc, "2027-01-04 00:30")), // 2027-W01
			},
			want: map[int64][]retention.Rule{1: {weekly}, 5: {weekly}, 6: {weekly}},
		},
		{
			// 2024-12-30 (Monday) to 2025-01-05 (Sunday) is ISO week 2025-W01.
			name: "weekly-iso-year-starts-in-december",
			p:    retention.Policy{Weekly: 2},
			now:  at(t, utc, "2025-01-06 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2024-12-29 12:00")), // 2024-W52
				bk(2, at(t, utc, "2024-12-30 12:00")), // 2025-W01
				bk(3, at(t, utc, "2025-01-05 12:00")), // 2025-W01
			},
			want: map[int64][]retention.Rule{1: {weekly}, 3: {weekly}},
		},
		{
			name: "daily-leap-day",
			p:    retention.Policy{Daily: 3},
			now:  at(t, utc, "2028-03-02 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2028-02-27 12:00")),
				bk(2, at(t, utc, "2028-02-28 12:00")),
				bk(3, at(t, utc, "2028-02-29 01:00")),
				bk(4, at(t, utc, "2028-02-29 23:00")),
				bk(5, at(t, utc, "2028-03-01 00:00")),
			},
			want: map[int64][]retention.Rule{2: {daily}, 4: {daily}, 5: {daily}},
		},
		{
			name: "monthly-leap-day",
			p:    retention.Policy{Monthly: 2},
			now:  at(t, utc, "2028-03-02 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2028-01-31 12:00")),
				bk(2, at(t, utc, "2028-02-01 00:00")),
				bk(3, at(t, utc, "2028-02-29 23:00")),
				bk(4, at(t, utc, "2028-03-01 00:00")),
			},
			want: map[int64][]retention.Rule{3: {monthly}, 4: {monthly}},
		},
		{
			name: "yearly-leap-day",
			p:    retention.Policy{Yearly: 2, Monthly: 1},
			now:  at(t, utc, "2029-03-01 00:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2027-12-31 12:00")),
				bk(2, at(t, utc, "2028-02-28 12:00")),
				bk(3, at(t, utc, "2028-02-29 12:00")),
				bk(4, at(t, utc, "2029-02-28 12:00")),
			},
			want: map[int64][]retention.Rule{3: {yearly}, 4: {monthly, yearly}},
		},
		{
			// 2026-03-29 has 23 hours in Berlin: 02:00 CET is 03:00 CEST.
			name: "daily-berlin-spring-forward",
			p:    retention.Policy{Daily: 3, Location: berlin},
			now:  at(t, berlin, "2026-03-30 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, berlin, "2026-03-28 23:30")), // 22:30Z on the 28th
				bk(2, at(t, berlin, "2026-03-29 00:30")), // 23:30Z on the 28th
				bk(3, at(t, berlin, "2026-03-29 23:30")), // 21:30Z on the 29th
				bk(4, at(t, berlin, "2026-03-30 00:30")), // 22:30Z on the 29th
			},
			want: map[int64][]retention.Rule{1: {daily}, 3: {daily}, 4: {daily}},
		},
		{
			// 2026-10-25 has 25 hours in Berlin: 03:00 CEST is 02:00 CET, at 01:00Z.
			name: "daily-berlin-fall-back",
			p:    retention.Policy{Daily: 2, Location: berlin},
			now:  at(t, berlin, "2026-10-26 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, berlin, "2026-10-24 12:00")),
				bk(2, at(t, berlin, "2026-10-24 23:30")), // 21:30Z on the 24th
				bk(3, at(t, berlin, "2026-10-25 00:30")), // 22:30Z on the 24th
				bk(4, at(t, utc, "2026-10-25 00:30")),    // 02:30 CEST
				bk(5, at(t, utc, "2026-10-25 01:30")),    // 02:30 CET
				bk(6, at(t, berlin, "2026-10-25 23:30")), // 22:30Z on the 25th
			},
			want: map[int64][]retention.Rule{2: {daily}, 6: {daily}},
		},
		{
			name: "daily-berlin-repeated-hour-is-one-day",
			p:    retention.Policy{Daily: 2, Location: berlin},
			now:  at(t, berlin, "2026-10-26 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, berlin, "2026-10-24 12:00")),
				bk(2, at(t, utc, "2026-10-25 00:30")), // 02:30 CEST
				bk(3, at(t, utc, "2026-10-25 01:30")), // 02:30 CET
			},
			want: map[int64][]retention.Rule{1: {daily}, 3: {daily}},
		},
		{
			// 2026-03-08 has 23 hours in New York: 02:00 EST is 03:00 EDT, at 07:00Z.
			name: "daily-new-york-spring-forward",
			p:    retention.Policy{Daily: 3, Location: newYork},
			now:  at(t, newYork, "2026-03-09 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, newYork, "2026-03-07 12:00")),
				bk(2, at(t, newYork, "2026-03-08 00:30")), // 05:30Z on the 8th
				bk(3, at(t, newYork, "2026-03-08 23:30")), // 03:30Z on the 9th
				bk(4, at(t, newYork, "2026-03-09 00:30")), // 04:30Z on the 9th
			},
			want: map[int64][]retention.Rule{1: {daily}, 3: {daily}, 4: {daily}},
		},
		{
			name: "daily-new-york-late-evening-is-next-day-in-utc",
			p:    retention.Policy{Daily: 2, Location: newYork},
			now:  at(t, newYork, "2026-03-09 12:00"),
			backups: []retention.Backup{
				bk(2, at(t, newYork, "2026-03-08 00:30")),
				bk(3, at(t, newYork, "2026-03-08 23:30")), // 03:30Z on the 9th
				bk(4, at(t, newYork, "2026-03-09 00:30")),
			},
			want: map[int64][]retention.Rule{3: {daily}, 4: {daily}},
		},
		{
			// 2026-11-01 has 25 hours in New York: 02:00 EDT is 01:00 EST, at 06:00Z.
			name: "daily-new-york-fall-back",
			p:    retention.Policy{Daily: 2, Location: newYork},
			now:  at(t, newYork, "2026-11-02 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, newYork, "2026-10-31 23:30")), // 03:30Z on the 1st
				bk(2, at(t, newYork, "2026-11-01 00:30")), // 04:30Z
				bk(3, at(t, utc, "2026-11-01 05:30")),     // 01:30 EDT
				bk(4, at(t, utc, "2026-11-01 06:30")),     // 01:30 EST
				bk(5, at(t, newYork, "2026-11-01 23:30")), // 04:30Z on the 2nd
			},
			want: map[int64][]retention.Rule{1: {daily}, 5: {daily}},
		},
		{
			// Sunday 2026-11-01 23:30 EST is Monday in UTC, but belongs to the local week.
			name: "weekly-new-york-sunday-night",
			p:    retention.Policy{Weekly: 2, Location: newYork},
			now:  at(t, newYork, "2026-11-03 12:00"),
			backups: []retention.Backup{
				bk(4, at(t, utc, "2026-11-01 06:30")),     // 01:30 EST, Sunday
				bk(5, at(t, newYork, "2026-11-01 23:30")), // Sunday; 04:30Z Monday
				bk(6, at(t, newYork, "2026-11-02 12:00")), // Monday
			},
			want: map[int64][]retention.Rule{5: {weekly}, 6: {weekly}},
		},
		{
			name: "monthly-berlin-new-year",
			p:    retention.Policy{Monthly: 2, Yearly: 2, Location: berlin},
			now:  at(t, berlin, "2027-01-02 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, berlin, "2026-12-31 12:00")),
				bk(2, at(t, berlin, "2027-01-01 00:30")), // 23:30Z on Dec 31
			},
			want: map[int64][]retention.Rule{1: {monthly, yearly}, 2: {monthly, yearly}},
		},
	})
}

func TestSelectArchive(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	berlin := load(t, "Europe/Berlin")
	runSelect(t, []selectTest{
		{
			// One year back from 2028-02-29 is February 2027, not March (AddDate's 2027-03-01).
			name: "leap-day",
			p:    retention.Policy{ArchiveYears: 1},
			now:  at(t, utc, "2028-02-29 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2027-01-31 12:00")),
				bk(2, at(t, utc, "2027-02-01 00:00")),
				bk(3, at(t, utc, "2027-02-20 00:00")),
				bk(4, at(t, utc, "2027-03-01 10:00")),
				bk(5, at(t, utc, "2027-03-15 00:00")),
				bk(6, at(t, utc, "2028-02-01 00:00")),
				bk(7, at(t, utc, "2028-02-29 10:00")),
			},
			want: map[int64][]retention.Rule{2: {archive}, 4: {archive}, 6: {archive}},
		},
		{
			name: "month-end",
			p:    retention.Policy{ArchiveYears: 2},
			now:  at(t, utc, "2028-03-31 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-02-28 12:00")),
				bk(2, at(t, utc, "2026-03-31 00:00")),
				bk(3, at(t, utc, "2027-03-01 00:00")),
			},
			want: map[int64][]retention.Rule{2: {archive}, 3: {archive}},
		},
		{
			name: "months-in-location",
			p:    retention.Policy{ArchiveYears: 1, Location: berlin},
			now:  at(t, berlin, "2027-03-15 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2026-02-28 23:30")), // 00:30 on March 1st in Berlin
				bk(2, at(t, utc, "2026-03-10 00:00")),
			},
			want: map[int64][]retention.Rule{1: {archive}},
		},
		{
			name: "oldest-of-month-tie-keeps-lower-id",
			p:    retention.Policy{ArchiveYears: 1},
			now:  at(t, utc, "2027-03-15 12:00"),
			backups: []retention.Backup{
				bk(2, at(t, utc, "2027-03-02 00:00")),
				bk(8, at(t, utc, "2027-03-02 00:00")),
				bk(1, at(t, utc, "2027-03-03 00:00")),
			},
			want: map[int64][]retention.Rule{2: {archive}},
		},
		{
			name: "with-gfs",
			p:    retention.Policy{Monthly: 2, ArchiveYears: 1},
			now:  at(t, utc, "2027-03-15 12:00"),
			backups: []retention.Backup{
				bk(1, at(t, utc, "2027-02-01 00:00")),
				bk(2, at(t, utc, "2027-02-15 00:00")),
				bk(3, at(t, utc, "2027-03-01 00:00")),
			},
			want: map[int64][]retention.Rule{1: {archive}, 2: {monthly}, 3: {monthly, archive}},
		},
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    retention.Policy
		want []string // substrings of the error; nil: no error
	}{
		{"window-only", retention.Policy{Window: time.Hour}, nil},
		{"keep-last-only", retention.Policy{KeepLast: 1}, nil},
		{"archive-only", retention.Policy{ArchiveYears: 1}, nil},
		{"min-keep-only", retention.Policy{MinKeep: 1}, nil},
		{"full", retention.Policy{Window: 14 * 24 * time.Hour, KeepLast: 3, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 2, MinKeep: 2, ArchiveYears: 7}, nil},
		{"keeps-nothing", retention.Policy{}, []string{"at least one rule must keep something"}},
		{"keeps-nothing-with-location", retention.Policy{Location: time.Local}, []string{"at least one rule must keep something"}},
		{"negative-window", retention.Policy{Window: -time.Hour, KeepLast: 1}, []string{"recovery window", "-1h0m0s", "0 (no window) or more"}},
		{"negative-keep-last", retention.Policy{KeepLast: -1}, []string{"keep last is -1", "0 or more"}},
		{"negative-daily", retention.Policy{Daily: -2, KeepLast: 1}, []string{"daily is -2", "0 or more"}},
		{"negative-weekly", retention.Policy{Weekly: -1, KeepLast: 1}, []string{"weekly is -1"}},
		{"negative-monthly", retention.Policy{Monthly: -1, KeepLast: 1}, []string{"monthly is -1"}},
		{"negative-yearly", retention.Policy{Yearly: -1, KeepLast: 1}, []string{"yearly is -1"}},
		{"negative-min-keep", retention.Policy{MinKeep: -1, KeepLast: 1}, []string{"minimum kept is -1"}},
		{"negative-archive-years", retention.Policy{ArchiveYears: -1, KeepLast: 1}, []string{"archive years is -1"}},
		{"several", retention.Policy{Window: -1, Daily: -1, MinKeep: -1}, []string{"recovery window", "daily is -1", "minimum kept is -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.p.Validate()
			if tt.want == nil {
				if err != nil {
					t.Errorf("%+v.Validate() = %v, want nil", tt.p, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%+v.Validate() = nil, want an error containing %q", tt.p, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%+v.Validate() = %q, want it to contain %q", tt.p, err, w)
				}
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    retention.Policy
		want string
	}{
		{"full", retention.Policy{Window: 14 * 24 * time.Hour, KeepLast: 3, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 2, MinKeep: 2, ArchiveYears: 7},
			"window 14 days; last 3; 7 daily, 4 weekly, 12 monthly, 2 yearly; at least 2 kept; archive 7 years"},
		{"empty", retention.Policy{}, "nothing kept"},
		{"window-one-day", retention.Policy{Window: 24 * time.Hour}, "window 1 day"},
		{"window-hours", retention.Policy{Window: 36 * time.Hour}, "window 36 hours"},
		{"window-one-hour", retention.Policy{Window: time.Hour}, "window 1 hour"},
		{"window-minutes", retention.Policy{Window: 90 * time.Minute}, "window 90 minutes"},
		{"window-odd", retention.Policy{Window: 90 * time.Second}, "window 90 seconds"},
		{"some-gfs", retention.Policy{Weekly: 4, Yearly: 1}, "4 weekly, 1 yearly"},
		{"archive-one-year", retention.Policy{MinKeep: 1, ArchiveYears: 1}, "at least 1 kept; archive 1 year"},
		{"negative-left-out", retention.Policy{KeepLast: -1, Daily: 3}, "3 daily"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.Describe(); got != tt.want {
				t.Errorf("%+v.Describe() = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

// newestFirst returns bs ordered as Select orders them: by At, then by ID, newest first.
func newestFirst(bs []retention.Backup) []retention.Backup {
	s := slices.Clone(bs)
	slices.SortFunc(s, func(a, b retention.Backup) int {
		switch {
		case a.At.After(b.At) || a.At.Equal(b.At) && a.ID > b.ID:
			return -1
		case a.At.Equal(b.At) && a.ID == b.ID:
			return 0
		}
		return 1
	})
	return s
}

// keptBy returns the IDs of the backups got keeps by rule r, sorted.
func keptBy(got map[int64][]retention.Rule, r retention.Rule) []int64 {
	var ids []int64
	for id, rules := range got {
		if slices.Contains(rules, r) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func ids(bs []retention.Backup) []int64 {
	var ids []int64
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestSelectProperties checks Select's contract on random backups and policies, including
// backups at the same instant, exactly at the window's start, and after now.
func TestSelectProperties(t *testing.T) {
	t.Parallel()
	locs := []*time.Location{time.UTC, load(t, "Europe/Berlin"), load(t, "America/New_York"),
		load(t, "Australia/Lord_Howe"), load(t, "Pacific/Apia")}
	base := time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
	const year = 366 * 24 * 3600
	rapid.Check(t, func(rt *rapid.T) {
		loc := rapid.SampledFrom(locs).Draw(rt, "loc")
		now := base.Add(time.Duration(rapid.Int64Range(-2*year, 2*year).Draw(rt, "now")) * time.Second)
		p := retention.Policy{
			Window:       time.Duration(rapid.OneOf(rapid.Just[int64](0), rapid.Int64Range(1, 2*year)).Draw(rt, "window")) * time.Second,
			KeepLast:     rapid.IntRange(0, 4).Draw(rt, "keepLast"),
			Daily:        rapid.IntRange(0, 5).Draw(rt, "daily"),
			Weekly:       rapid.IntRange(0, 5).Draw(rt, "weekly"),
			Monthly:      rapid.IntRange(0, 5).Draw(rt, "monthly"),
			Yearly:       rapid.IntRange(0, 3).Draw(rt, "yearly"),
			MinKeep:      rapid.IntRange(0, 4).Draw(rt, "minKeep"),
			ArchiveYears: rapid.IntRange(0, 2).Draw(rt, "archiveYears"),
			Location:     loc,
		}
		n := rapid.IntRange(0, 30).Draw(rt, "n")
		backupIDs := rapid.SliceOfNDistinct(rapid.Int64Range(-20, 1000), n, n, rapid.ID).Draw(rt, "ids")
		offset := rapid.OneOf(
			rapid.Int64Range(-3*year, 2*24*3600),          // mostly in the past, some after now
			rapid.Just(-int64(p.Window/time.Second)),      // exactly at the window's start
			rapid.SampledFrom([]int64{-3600, -86400, -7}), // ties
		)
		backups := make([]retention.Backup, n)
		for i, id := range backupIDs {
			backups[i] = retention.Backup{
				ID:     id,
				At:     now.Add(time.Duration(offset.Draw(rt, "offset")) * time.Second),
				Pinned: rapid.Float64Range(0, 1).Draw(rt, "pinned") < 0.1,
			}
		}

		got := retention.Select(backups, p, now)
		byAge := newestFirst(backups)

		// (a) every pinned backup is kept, and only those by the pin.
		var pins []retention.Backup
		for _, b := range backups {
			if b.Pinned {
				pins = append(pins, b)
			}
		}
		if k, w := keptBy(got, pinned), ids(pins); !slices.Equal(k, w) {
			rt.Fatalf("pinned: kept %v, want %v", k, w)
		}
		// (b) the MinKeep newest are kept (KeepLast likewise), and no others by that rule.
		for _, c := range []struct {
			r retention.Rule
			n int
		}{{minimum, p.MinKeep}, {last, p.KeepLast}} {
			if k, w := keptBy(got, c.r), ids(byAge[:min(c.n, n)]); !slices.Equal(k, w) {
				rt.Fatalf("%s: kept %v, want %v", c.r, k, w)
			}
		}
		// (c) the window keeps what is after its start and the anchor, and nothing else.
		var inWindow []retention.Backup
		if p.Window > 0 {
			start := now.Add(-p.Window)
			for _, b := range byAge {
				inWindow = append(inWindow, b)
				if !b.At.After(start) {
					break
				}
			}
		}
		if k, w := keptBy(got, window), ids(inWindow); !slices.Equal(k, w) {
			rt.Fatalf("window: kept %v, want %v", k, w)
		}
		// (d) only input IDs, each with its rules listed once, in order.
		for id, rules := range got {
			if !slices.ContainsFunc(backups, func(b retention.Backup) bool { return b.ID == id }) {
				rt.Fatalf("kept %d, which is not an input backup", id)
			}
			if len(rules) == 0 {
				rt.Fatalf("kept %d without a rule", id)
			}
			var order []int
			for _, r := range rules {
				order = append(order, slices.Index(allRules, r))
			}
			if slices.Contains(order, -1) || !slices.IsSorted(order) || len(slices.Compact(slices.Clone(order))) != len(order) {
				rt.Fatalf("kept %d by %v, want known rules, once each, in the order %v", id, rules, allRules)
			}
		}
		// (e) input order does not matter.
		shuffled := rapid.Permutation(backups).Draw(rt, "shuffled")
		if diff := cmp.Diff(got, retention.Select(shuffled, p, now)); diff != "" {
			rt.Fatalf("Select depends on input order (-sorted +shuffled):\n%s", diff)
		}
		// (f) each calendar rule keeps the newest backup of each of its N newest periods,
		// and the archive the oldest backup of each month from 12·ArchiveYears months back.
		for _, c := range []struct {
			r      retention.Rule
			n      int
			period func(time.Time) [2]int
		}{
			{daily, p.Daily, func(t time.Time) [2]int { return [2]int{t.Year(), t.YearDay()} }},
			{weekly, p.Weekly, func(t time.Time) [2]int { y, w := t.ISOWeek(); return [2]int{y, w} }},
			{monthly, p.Monthly, func(t time.Time) [2]int { return [2]int{t.Year(), int(t.Month())} }},
			{yearly, p.Yearly, func(t time.Time) [2]int { return [2]int{t.Year()} }},
		} {
			var want []retention.Backup
			seen := map[[2]int]bool{}
			for _, b := range byAge {
				k := c.period(b.At.In(loc))
				if !seen[k] && len(seen) < c.n {
					want = append(want, b)
				}
				seen[k] = true
			}
			if k, w := keptBy(got, c.r), ids(want); !slices.Equal(k, w) {
				rt.Fatalf("%s: kept %v, want %v", c.r, k, w)
			}
		}
		var archived []retention.Backup
		if p.ArchiveYears > 0 {
			y, m, _ := now.In(loc).Date()
			first := [2]int{y - p.ArchiveYears, int(m)}
			oldest := map[[2]int]retention.Backup{}
			for _, b := range byAge {
				y, m, _ := b.At.In(loc).Date()
				month := [2]int{y, int(m)}
				if month[0] > first[0] || month[0] == first[0] && month[1] >= first[1] {
					oldest[month] = b // byAge is newest first: the last one is the oldest
				}
			}
			for _, b := range oldest {
				archived = append(archived, b)
			}
		}
		if k, w := keptBy(got, archive), ids(archived); !slices.Equal(k, w) {
			rt.Fatalf("archive: kept %v, want %v", k, w)
		}
	})
}
