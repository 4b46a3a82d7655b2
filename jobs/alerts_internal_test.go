package jobs

import (
	"testing"
	"time"

	"github.com/backstop/backstop/jobs/health"
	"github.com/backstop/backstop/store"
)

func TestHourlyRate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	samples := func(lastHour int64) []store.SourceSample {
		var xs []store.SourceSample
		pos := int64(1 << 30)
		for m := 30 * 60; m >= 0; m-- { // a sample a minute for 30 hours
			step := int64(100<<20) / 60
			if m < 60 {
				step = lastHour / 60
			}
			pos += step
			xs = append(xs, store.SourceSample{At: now.Add(-time.Duration(m) * time.Minute), WALBytes: pos})
		}
		return xs
	}
	policy := health.Policy{}
	for _, tt := range []struct {
		name     string
		lastHour int64
		anomaly  bool
	}{
		{"an ordinary hour", 120 << 20, false},
		{"a runaway hour", 4 << 30, true},
	} {
		r := hourlyRate(samples(tt.lastHour), now)
		if r == nil {
			t.Fatalf("%s: hourlyRate() = nil, want a rate from 30 hours of samples", tt.name)
		}
		ps := health.Problems(health.Facts{WALRate: r}, now, policy)
		fired := false
		for _, p := range ps {
			fired = fired || p.Rule == "anomaly-wal-rate"
		}
		if fired != tt.anomaly {
			t.Errorf("%s: rate %.0f MiB against usual %.0f MiB: anomaly %t, want %t", tt.name, r.Value/(1<<20), r.Usual/(1<<20), fired, tt.anomaly)
		}
	}
	if r := hourlyRate(samples(100 << 20)[:600], now); r != nil {
		t.Errorf("hourlyRate(10 hours of history) = %+v, want nil: too little to know what is usual", r)
	}
}
