package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// StatusCmd shows the queue and the last delivery results per peer.
type StatusCmd struct {
	JSON bool `name:"json" help:"Print as JSON."`
}

// Help explains the columns.
func (c *StatusCmd) Help() string {
	return `status reads the spool and shows, for each peer of the inventory: how many bans
are queued for it and how old the oldest is, when a batch last succeeded, the
last failure (its class and message), and how many bans it delivered, refused
and dropped (expired before delivery). It also says whether a sender is
running. It contacts no peer: 'banpush peers check' does.`
}

type statusPeer struct {
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
}

type statusReport struct {
	SenderRunning bool         `json:"sender_running"`
	Spool         string       `json:"spool"`
	Self          []selfPeer   `json:"self"` // the peers that are this host, not sent to
	Peers         []statusPeer `json:"peers"`
}

// Run prints the status.
func (c *StatusCmd) Run(env *Env, g *Globals) error {
	d, err := resolveDelivery(g, env, nil)
	if err != nil {
		return err
	}
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return withHint(err, exitFailure, "check --spool (BANPUSH_SPOOL)")
	}
	rep := statusReport{Spool: s.Dir(), Self: d.self, Peers: []statusPeer{}}
	if rep.Self == nil {
		rep.Self = []selfPeer{}
	}
	if rep.SenderRunning, err = sender.Running(s); err != nil {
		return err
	}
	now := env.Now()
	for _, name := range d.live {
		p := statusPeer{Peer: name}
		n, oldest, err := s.Pending(name)
		if err != nil {
			return err
		}
		p.Queued = n
		if !oldest.IsZero() {
			p.OldestAgeSeconds = now.Sub(oldest).Round(time.Second).Seconds()
		}
		st, err := s.LoadState(name)
		if err != nil {
			printWarning(env.Stderr, "%v", err)
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
		rep.Peers = append(rep.Peers, p)
	}
	if c.JSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	running := "not running"
	if rep.SenderRunning {
		running = "running"
	}
	fmt.Fprintf(env.Stdout, "spool %s, sender %s\n", rep.Spool, running)
	for _, sp := range rep.Self {
		fmt.Fprintf(env.Stdout, "self %s (%s): nothing is sent to it\n", sp.Name, sp.Reason)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tQUEUED\tOLDEST\tLAST SUCCESS\tLAST FAILURE\tDELIVERED\tREFUSED\tDROPPED")
	for _, p := range rep.Peers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\n", p.Peer, p.Queued, age(p.OldestAgeSeconds, p.Queued),
			ago(now, p.LastSuccess), failure(now, p), p.Delivered, p.Refused, p.Dropped)
	}
	return tw.Flush()
}

func age(sec float64, n int) string {
	if n == 0 {
		return "-"
	}
	return (time.Duration(sec) * time.Second).String()
}

func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func failure(now time.Time, p statusPeer) string {
	if p.LastFailure == nil {
		return "-"
	}
	if p.LastSuccess != nil && p.LastSuccess.After(*p.LastFailure) {
		return p.LastFailureClass + " (" + ago(now, p.LastFailure) + ", since recovered)"
	}
	return p.LastFailureClass + " " + ago(now, p.LastFailure) + ": " + p.LastFailureMessage
}
