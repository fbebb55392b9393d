package receive

import (
	"context"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestQuietPeerRefills: a peer that pushes again after a long silence gets
// a full bucket, whatever the length of the silence. The refill used to
// overflow past about 21.35 hours at the default rate, and the peer was
// refused for good.
func TestQuietPeerRefills(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	now := t0
	cfg := testConfig(t, &now)
	for i, at := range []time.Duration{0, 22 * time.Hour, 22*time.Hour + time.Minute, 23*time.Hour + time.Minute,
		71*time.Hour + time.Minute, 400 * 24 * time.Hour, 100 * 365 * 24 * time.Hour} {
		now = t0.Add(at)
		res, err := Accept(context.Background(), cfg, strings.NewReader(addrs(i*10, 10)))
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 10 || res.Limited != 0 {
			t.Errorf("after %s: accepted %d, limited %d; want all 10", at, res.Accepted, res.Limited)
		}
	}
}

// wantRefill is refill computed with arbitrary precision.
func wantRefill(elapsed, perMinute, limit int64) int64 {
	if elapsed <= 0 || perMinute <= 0 || limit <= 0 {
		return 0
	}
	q := new(big.Int).Mul(big.NewInt(elapsed), big.NewInt(perMinute*milli))
	q.Quo(q, big.NewInt(int64(time.Minute)))
	if q.Cmp(big.NewInt(limit)) > 0 {
		return limit
	}
	return q.Int64()
}

func TestRefill(t *testing.T) {
	const day = int64(24 * time.Hour)
	tests := []struct {
		name                      string
		elapsed, perMinute, burst int64
	}{
		{"one token a minute, one minute", int64(time.Minute), 1, 10},
		{"a fraction of a token", int64(time.Second), 1, 10},
		{"default rate, just under the old overflow", 21*int64(time.Hour) + 20*int64(time.Minute), DefaultMaxPerMinute, DefaultMaxBurst},
		{"default rate, just over the old overflow", 21*int64(time.Hour) + 22*int64(time.Minute), DefaultMaxPerMinute, DefaultMaxBurst},
		{"default rate, a year", 365 * day, DefaultMaxPerMinute, DefaultMaxBurst},
		{"largest rate, a century", 36525 * day, MaxMaxPerMinute, MaxMaxBurst},
		{"largest rate, longest gap", math.MaxInt64, MaxMaxPerMinute, MaxMaxBurst},
		{"largest rate, one nanosecond", 1, MaxMaxPerMinute, MaxMaxBurst},
		{"no refill", 365 * day, 0, DefaultMaxBurst},
		{"clock went back", -day, DefaultMaxPerMinute, DefaultMaxBurst},
	}
	for _, tt := range tests {
		limit := tt.burst * milli
		got, want := refill(tt.elapsed, tt.perMinute, limit), wantRefill(tt.elapsed, tt.perMinute, limit)
		if got != want {
			t.Errorf("%s: refill = %d milli-tokens, want %d", tt.name, got, want)
		}
	}
}

// FuzzRefill: refill is exact for every gap, burst and rate Config.Check
// allows.
func FuzzRefill(f *testing.F) {
	f.Add(int64(22*time.Hour), uint32(DefaultMaxPerMinute), uint32(DefaultMaxBurst))
	f.Add(int64(math.MaxInt64), uint32(MaxMaxPerMinute), uint32(MaxMaxBurst))
	f.Add(int64(1), uint32(1), uint32(1))
	f.Fuzz(func(t *testing.T, elapsed int64, perMinute, burst uint32) {
		rate := int64(perMinute) % (MaxMaxPerMinute + 1)
		limit := (int64(burst)%MaxMaxBurst + 1) * milli
		if got, want := refill(elapsed, rate, limit), wantRefill(elapsed, rate, limit); got != want {
			t.Fatalf("refill(%d, %d, %d) = %d, want %d", elapsed, rate, limit, got, want)
		}
	})
}

// TestMonthUnderRate: a peer that, over a simulated month, pushes at
// random moments never more than its rate allows since its last push (and
// never more than its burst) is never refused.
func TestMonthUnderRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ burst, perMinute int }{{DefaultMaxBurst, DefaultMaxPerMinute}, {50, 3}, {1, 1}, {MaxMaxBurst, MaxMaxPerMinute}} {
		s := &stateFile{peers: map[string]bucket{}}
		now := time.Unix(1_800_000_000, 0)
		end := now.Add(30 * 24 * time.Hour)
		pushes := 0
		for now.Before(end) {
			// Gaps from a millisecond to two days, spread over the scales.
			gap := time.Duration(math.Exp(rng.Float64()*math.Log(float64(48*time.Hour)/float64(time.Millisecond)))) * time.Millisecond
			now = now.Add(gap)
			n := int64(gap) * int64(c.perMinute) / int64(time.Minute)
			n = min(n, int64(c.burst))
			b := s.bucket("web1", now, c.burst, c.perMinute)
			if b.milliTokens < n*milli {
				t.Fatalf("burst %d, %d a minute: push %d of %d addresses after a gap of %s: only %d milli-tokens",
					c.burst, c.perMinute, pushes, n, gap, b.milliTokens)
			}
			b.milliTokens -= n * milli // what n calls of take spend
			s.put("web1", b)
			pushes++
		}
		t.Logf("burst %d, %d a minute: %d pushes over 30 days, none refused", c.burst, c.perMinute, pushes)
	}
}
