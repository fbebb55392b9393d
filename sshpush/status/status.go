// Package status says what a host's banpush is doing, without contacting a
// peer: for each peer, what is queued for it and how its deliveries went
// (from the spool), whether a sender runs, and on a receiver each pushing
// peer's counters. It writes that as the table of 'banpush status', and as
// metrics in Prometheus's text format (WriteMetrics). The JSON keys of
// Report and the metric names are part of banpush's interface.
package status

import (
	"time"

	"github.com/banpush/banpush/sshpush/firewall"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// Peer is one peer's queue and delivery record.
type Peer struct {
	Peer               string     `json:"peer"`
	Queued             int        `json:"queued"`
	OldestAgeSeconds   float64    `json:"oldest_age_seconds"`
	LastSuccess        *time.Time `json:"last_success"`
	LastFailure        *time.Time `json:"last_failure"`
	LastFailureClass   string     `json:"last_failure_class"`
	LastFailureMessage string     `json:"last_failure_message"`
	Delivered          int64      `json:"delivered"`
	Refused            int64      `json:"refused"`
	Dropped            int64      `json:"dropped"`
	Unbanned           int64      `json:"unbanned"`
	Cancelled          int64      `json:"cancelled"`
	Reported           int64      `json:"reported"` // failure reports the peer counted (fleet detection)
}

// Report is the pushing side's status.
type Report struct {
	SenderRunning bool          `json:"sender_running"`
	Spool         string        `json:"spool"`
	Self          []roster.Self `json:"self"` // the peers that are this host, not sent to
	Peers         []Peer        `json:"peers"`
	// Firewall is the fast path's state and kernel set ('banpush
	// firewall'), where it keeps its state; nil elsewhere.
	Firewall *firewall.Status `json:"firewall,omitempty"`
}

// NoSpool is the report of a host whose spool directory dir does not
// exist yet: nothing was ever queued, every live peer has nothing to show,
// and no sender runs. status says so without making the spool.
func NoSpool(dir string, ro roster.Roster) Report {
	rep := Report{Spool: dir, Self: ro.Self, Peers: []Peer{}}
	if rep.Self == nil {
		rep.Self = []roster.Self{}
	}
	for _, name := range ro.Live {
		rep.Peers = append(rep.Peers, Peer{Peer: name})
	}
	return rep
}

// Read reads the status of every peer of the roster but this host from
// the spool. A peer whose state cannot be read is reported without it, and
// the error joins warnings.
func Read(s *spool.Spool, ro roster.Roster, now time.Time) (rep Report, warnings []error, err error) {
	rep = Report{Spool: s.Dir(), Self: ro.Self, Peers: []Peer{}}
	if rep.Self == nil {
		rep.Self = []roster.Self{}
	}
	if rep.SenderRunning, err = sender.Running(s); err != nil {
		return Report{}, nil, err
	}
	for _, name := range ro.Live {
		p := Peer{Peer: name}
		n, oldest, err := s.Pending(name)
		if err != nil {
			return Report{}, nil, err
		}
		p.Queued = n
		if !oldest.IsZero() {
			p.OldestAgeSeconds = now.Sub(oldest).Round(time.Second).Seconds()
		}
		st, err := s.LoadState(name)
		if err != nil {
			warnings = append(warnings, err)
		}
		if !st.LastSuccess.IsZero() {
			p.LastSuccess = &st.LastSuccess
		}
		if !st.LastFailure.IsZero() {
			p.LastFailure = &st.LastFailure
			p.LastFailureClass = st.LastFailureClass
			p.LastFailureMessage = st.LastFailureMessage
		}
		p.Delivered, p.Refused, p.Dropped = st.Delivered, st.Refused, st.Dropped
		p.Unbanned, p.Cancelled, p.Reported = st.Unbanned, st.Cancelled, st.Reported
		rep.Peers = append(rep.Peers, p)
	}
	return rep, warnings, nil
}
