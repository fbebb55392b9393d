// Package failreport is the reporting side of fleet detection: it takes
// the failures this host's fail2ban logged (sshpush/f2blog), sums them per
// address into failure reports, and hands each batch on, to the spool for
// every peer and to this host's own receiver, at most once per interval.
//
// A report never waits for a peer and never runs inside fail2ban: the
// failures come from fail2ban's own log, read after the fact, so a burst
// of failures holds no action lock. A batch is queued before the log's
// cursor moves past it: a crash reads the failures again, never loses
// them (and may count the last interval's twice).
//
// What it trusts: the failures, which f2blog parsed from a log only root
// and fail2ban write; each address still passes the same address policy
// as a pushed ban before it leaves this host.
package failreport

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/banpush/banpush/sshpush/f2blog"
	"github.com/banpush/banpush/sshpush/record"
)

// DefaultInterval is how often failures are handed on: at most one fail
// request per peer per interval, however many failures there are.
const DefaultInterval = time.Second

// Config is one reporter.
type Config struct {
	// Read returns the failures logged since the last Commit, at most a
	// bounded batch of them (more: the log holds more, to read at once);
	// none when there are none yet.
	Read func(ctx context.Context) (fs []f2blog.Failure, more bool, err error)
	// Commit records that everything the last Read read is handed on.
	Commit func() error
	// Queue queues the reports for every peer, durably, and has them
	// delivered (the spool and the sender).
	Queue func(ctx context.Context, recs []record.Record) error
	// Local gives the reports to this host's own receiver, so that its
	// count holds its own failures too; nil: none. A failure is logged
	// and the reports are tried again with the next batch, a few times.
	Local func(ctx context.Context, recs []record.Record) error
	// Policy is the address policy: refused addresses are not reported.
	Policy   record.Policy
	Interval time.Duration // DefaultInterval if zero
	Logf     func(format string, args ...any)
}

// Report counts what one round did.
type Report struct {
	Failures int // failures read of the chosen jails
	Reports  int // reports queued (one per address)
	Refused  int // failures of addresses the policy refuses
	Local    int // reports this host's receiver took
}

// localTries bounds how often a batch is offered again to a local
// receiver that failed: its count is only this host's share.
const localTries = 5

// Reporter runs rounds.
type Reporter struct {
	cfg     Config
	pending []record.Record // reports the local receiver has yet to take
	tries   int
}

// New returns a reporter for cfg.
func New(cfg Config) *Reporter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Reporter{cfg: cfg}
}

// Round reads the failures logged since the last round, queues their
// reports, gives them to the local receiver and moves the cursor past
// them. An error from Read, Queue or Commit ends the round with the
// cursor where it was: the next round reads the same failures again.
// A log that holds more than one batch is read batch after batch, each
// queued before the next is read.
func (r *Reporter) Round(ctx context.Context) (Report, error) {
	var rep Report
	for {
		fs, more, err := r.cfg.Read(ctx)
		if err != nil {
			return rep, err
		}
		recs := r.reports(fs, &rep)
		if len(recs) > 0 {
			if err := r.cfg.Queue(ctx, recs); err != nil {
				return rep, err
			}
			rep.Reports += len(recs)
		}
		if err := r.cfg.Commit(); err != nil {
			return rep, err
		}
		rep.Local += r.local(ctx, recs)
		if !more || ctx.Err() != nil {
			return rep, nil
		}
	}
}

// Run runs a round every interval until ctx ends. A round that fails is
// logged and tried again at the next interval.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		rep, err := r.Round(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.cfg.Logf("failure reports: %v; trying again in %v", err, r.cfg.Interval)
		case rep.Reports > 0 || rep.Refused > 0:
			r.cfg.Logf("failure reports: %d failures, %d reports queued, %d refused by the address policy, %d taken here",
				rep.Failures, rep.Reports, rep.Refused, rep.Local)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reports sums the failures (Read gives only the chosen jails') into one report per
// address: its count of failures, its latest time and that failure's
// jail, in the order the addresses first failed.
func (r *Reporter) reports(fs []f2blog.Failure, rep *Report) []record.Record {
	index := map[netip.Addr]int{}
	var recs []record.Record
	for _, f := range fs {
		rep.Failures++
		if err := r.cfg.Policy.Check(f.Addr); err != nil {
			rep.Refused++
			continue
		}
		at := max(f.Time.Unix(), 1)
		i, ok := index[f.Addr]
		if !ok {
			index[f.Addr] = len(recs)
			recs = append(recs, record.Record{Addr: f.Addr, Jail: jailOf(f.Jail), Time: at, Failures: 1})
			continue
		}
		recs[i] = record.AddFailures(recs[i], record.Record{Addr: f.Addr, Jail: jailOf(f.Jail), Time: at, Failures: 1})
	}
	return recs
}

// jailOf is a jail's name as a record carries it: fail2ban's jail names
// are wider than record.ValidName; one that is not valid is left out.
func jailOf(j string) string {
	if record.ValidName(j) {
		return j
	}
	return ""
}

// local gives the reports, with those a failed attempt left, to the local
// receiver, and returns how many it took.
func (r *Reporter) local(ctx context.Context, recs []record.Record) int {
	if r.cfg.Local == nil {
		return 0
	}
	batch := merge(r.pending, recs)
	if len(batch) == 0 {
		return 0
	}
	err := r.cfg.Local(ctx, batch)
	if err == nil {
		r.pending, r.tries = nil, 0
		return len(batch)
	}
	r.tries++
	if r.tries >= localTries || errors.Is(err, context.Canceled) {
		r.cfg.Logf("failure reports: this host's receiver: %v; %d reports not counted here", err, len(batch))
		r.pending, r.tries = nil, 0
		return 0
	}
	r.cfg.Logf("failure reports: this host's receiver: %v; trying again with the next batch", err)
	r.pending = slices.Clone(batch)
	return 0
}

// merge adds the reports of b to those of a, one report per address.
func merge(a, b []record.Record) []record.Record {
	if len(a) == 0 {
		return b
	}
	out := slices.Clone(a)
	index := map[netip.Addr]int{}
	for i, r := range out {
		index[r.Addr] = i
	}
	for _, r := range b {
		if i, ok := index[r.Addr]; ok {
			out[i] = record.AddFailures(out[i], r)
			continue
		}
		index[r.Addr] = len(out)
		out = append(out, r)
	}
	return out
}
