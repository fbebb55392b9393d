package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/spool"
)

// FlushCmd delivers the queue in the foreground.
type FlushCmd struct {
	Timeout time.Duration `help:"How long to keep trying unreachable peers." default:"50s"`
	JSON    bool          `name:"json" help:"Print the report as JSON."`
	Peers   []string      `arg:"" optional:"" name:"PEER" help:"Only these peers (default: all)."`
}

// Help explains flush and its use from a timer.
func (c *FlushCmd) Help() string {
	return `flush delivers everything queued to every peer (or those named), in the
foreground, and prints one line per peer: ok, or why not (unreachable,
timeout, auth, hostkey-unknown, hostkey-changed, not-banpush, rejected, busy,
receiver-error, config). A background sender that is lingering is asked to
stop first. Exit status 0 when every peer acknowledged its queue, 3 when any
did not (its bans stay queued).

contrib/systemd/banpush-flush.timer runs it every minute, so that bans queued
while a peer was down, or while fail2ban was stopped, always go out.`
}

// Run delivers and reports.
func (c *FlushCmd) Run(env *Env, g *Globals) error {
	s, err := spool.Open(g.Spool, spool.Options{})
	if err != nil {
		return withHint(err, exitFailure, "check --spool (BANPUSH_SPOOL)")
	}
	return deliverNow(env, g, s, deliverOpts{timeout: c.Timeout, json: c.JSON, peers: c.Peers})
}

type deliverOpts struct {
	timeout time.Duration
	json    bool
	peers   []string
	refused int // addresses push refused: the exit status says so when peers are fine
}

// peerReport is one line of the report of flush and push --wait.
type peerReport struct {
	Peer      string `json:"peer"`
	Result    string `json:"result"`
	Delivered int    `json:"delivered"`
	Refused   int    `json:"refused"`
	Dropped   int    `json:"dropped"`
	Skipped   int    `json:"skipped"` // damaged spool lines passed over
	Queued    int    `json:"queued"`
	Error     string `json:"error,omitempty"`
}

// deliverNow takes the sender lock (asking a lingering sender to yield),
// delivers every queue with no linger, and prints the per-peer report.
func deliverNow(env *Env, g *Globals, s *spool.Spool, o deliverOpts) error {
	peers, bad, warnings, err := deliveryPeers(g, env, o.peers)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		printWarning(env.Stderr, "%s", w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	release, err := lockSender(ctx, s)
	if err != nil {
		return errorf(exitTemp, "try again in a moment; 'banpush status' shows whether a sender is running", "%v", err)
	}
	// Diagnostics (expired bans, refusals, damaged spool lines) go where
	// the background sender writes its own.
	logf, closeLog := senderLogger(s.Dir(), env.Now)
	defer closeLog()
	results := deliver.Run(ctx, deliver.Config{
		Spool:   s,
		Peers:   peers,
		Options: sshpush.Options{Warn: func(m string) { printWarning(env.Stderr, "%s", m) }},
		MaxAge:  g.MaxAge,
		Now:     env.Now,
		Logf:    logf,
	})
	if err := compact(s, g); err != nil {
		printWarning(env.Stderr, "compacting the spool: %v", err)
	}
	release()

	var reports []peerReport
	var okPeers []string
	failed := 0
	for _, r := range results {
		rep := peerReport{Peer: r.Peer, Result: string(r.Class), Delivered: r.Delivered, Refused: r.Refused, Dropped: r.Dropped, Skipped: r.Skipped}
		if r.Skipped > 0 {
			printWarning(env.Stderr, "peer %s: %d damaged spool lines skipped; their bans are lost (details in %s)",
				r.Peer, r.Skipped, filepath.Join(s.Dir(), senderLogFile))
		}
		if r.Err != nil {
			rep.Error = r.Err.Error()
		}
		if r.Class == sshpush.ClassOK {
			okPeers = append(okPeers, r.Peer)
		} else {
			failed++
			rep.Queued, _, _ = s.Pending(r.Peer)
		}
		reports = append(reports, rep)
	}
	for name, err := range bad {
		failed++
		q, _, _ := s.Pending(name)
		reports = append(reports, peerReport{Peer: name, Result: string(sshpush.ClassConfig), Queued: q, Error: err.Error()})
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Peer < reports[j].Peer })
	// Bans queued while we delivered go out with a background sender.
	if pending, _ := s.HasPending(okPeers); pending {
		_ = startSender(s, g)
	}
	if err := printReport(env, reports, o.json); err != nil {
		return err
	}
	switch {
	case failed > 0:
		return silentExit(exitPeers)
	case o.refused > 0:
		return silentExit(exitData)
	}
	return nil
}

// lockSender takes the sender lock, asking a running sender to stop early
// and waiting for it until ctx ends.
func lockSender(ctx context.Context, s *spool.Spool) (release func(), err error) {
	req := filepath.Join(s.Dir(), flushRequestFile)
	asked := false
	defer func() {
		if asked {
			os.Remove(req)
		}
	}()
	for {
		release, ok, err := s.TryLockSender()
		if err != nil {
			return nil, err
		}
		if ok {
			return release, nil
		}
		if !asked {
			if f, err := os.OpenFile(req, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
				f.Close()
				asked = true
			}
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return nil, errBusy
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func printReport(env *Env, reports []peerReport, asJSON bool) error {
	if asJSON {
		if reports == nil {
			reports = []peerReport{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tRESULT\tDELIVERED\tREFUSED\tDROPPED\tQUEUED\tDETAIL")
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Peer, r.Result, r.Delivered, r.Refused, r.Dropped, r.Queued, r.Error)
	}
	return tw.Flush()
}
