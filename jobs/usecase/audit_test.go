package usecase

import (
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 12, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		from, to         string
		wantFrom, wantTo time.Time
		wantErr          string
	}{
		{"", "", time.Time{}, time.Time{}, ""},
		{"2026-12-01", "2026-12-07", day(1), day(8), ""}, // the "to" day is included
		{"2026-12-07", "2026-12-07", day(7), day(8), ""},
		{"2026-12-01T10:00:00+02:00", "", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), time.Time{}, ""},
		{"", "2026-12-07T05:00:00Z", time.Time{}, time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC), ""},
		{"2026-12-08", "2026-12-07", time.Time{}, time.Time{}, "to: must be after from"},
		{"yesterday", "", time.Time{}, time.Time{}, `from: "yesterday" is not a date`},
		{"", "2026-13-01", time.Time{}, time.Time{}, `to: "2026-13-01" is not a date`},
	}
	for _, tt := range tests {
		from, to, err := ParsePeriod(tt.from, tt.to)
		if tt.wantErr != "" {
			if err == nil || len(err.Error()) < len(tt.wantErr) || err.Error()[:len(tt.wantErr)] != tt.wantErr {
				t.Errorf("ParsePeriod(%q, %q) = %v, want error %q…", tt.from, tt.to, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !from.Equal(tt.wantFrom) || !to.Equal(tt.wantTo) {
			t.Errorf("ParsePeriod(%q, %q) = %v, %v, %v; want %v, %v", tt.from, tt.to, from, to, err, tt.wantFrom, tt.wantTo)
		}
	}
}

// FuzzParsePeriod: whatever is typed, a period is refused or runs forward.
func FuzzParsePeriod(f *testing.F) {
	f.Add("2026-12-01", "2026-12-07")
	f.Add("2026-12-01T10:00:00+02:00", "")
	f.Add("x", "2026-02-30")
	f.Fuzz(func(t *testing.T, from, to string) {
		f, tt, err := ParsePeriod(from, to)
		if err == nil && !f.IsZero() && !tt.IsZero() && !f.Before(tt) {
			t.Errorf("ParsePeriod(%q, %q) = %v, %v: not forward", from, to, f, tt)
		}
	})
}
