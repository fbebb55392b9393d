package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/deliver"
	"github.com/banpush/banpush/sshpush/record"
	"github.com/banpush/banpush/sshpush/roster"
	"github.com/banpush/banpush/sshpush/sender"
	"github.com/banpush/banpush/sshpush/spool"
)

// The foreground delivery that flush, push --wait and unban --wait share,
// and its per-peer report.

type deliverOpts struct {
	flags   DeliveryFlags
	timeout time.Duration
	json    bool
	peers   []string
	refused int // addresses push refused: the exit status says so when peers are fine
	// peerRefusals: records a peer refused make the exit status 65 too
	// (push --wait: the person trying it must not read "ok" as "banned").
	peerRefusals bool
}

// peerReport is one line of the report of flush and push --wait.
type peerReport struct {
	Peer      string `json:"peer"`
	Result    string `json:"result"`
	Delivered int    `json:"delivered"`
	Refused   int    `json:"refused"`
	Dropped   int    `json:"dropped"`
	Unbanned  int    `json:"unbanned"`  // unbans the peer wrote to its log
	Cancelled int    `json:"cancelled"` // bans not sent: an unban of their address followed
	Skipped   int    `json:"skipped"`   // damaged spool lines passed over
	Queued    int    `json:"queued"`
	Refusal   string `json:"refusal,omitempty"` // why the peer refused the first record it refused
	Error     string `json:"error,omitempty"`
	Hint      string `json:"hint,omitempty"` // what to do about Error, as 'peers check' says it
}

// detail is the report's last column: why the peer failed, or what it
// refused.
func (r peerReport) detail() string {
	switch {
	case r.Error != "":
		return r.Error
	case r.Refused > 0 && (r.Unbanned > 0 || r.Cancelled > 0 || strings.Contains(r.Refusal, "unban")):
		// Bans and unbans went: the count is of both.
		return fmt.Sprintf("%s refused by the peer (%s)", plural(r.Refused, "record"), r.Refusal)
	case r.Refused > 0:
		return fmt.Sprintf("%s refused by the peer (%s)", plural(r.Refused, "ban"), r.Refusal)
	}
	return ""
}

// deliverNow delivers every queue in the foreground (sender.Foreground: a
// lingering background sender is asked to let go first) and prints the
// per-peer report.
func deliverNow(env *Env, g *Globals, s *spool.Spool, o deliverOpts) error {
	d, err := loadRoster(env, g, o.peers...)
	if err != nil {
		return err
	}
	if err := d.NotSelf(o.peers); err != nil {
		return rosterError(err)
	}
	for _, w := range d.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	results, err := runForeground(env, g, s, o, d)
	if err != nil {
		return err
	}
	reports, failed, refusedByPeers := peerReports(env, g, s, o, d, results)
	if err := printReport(env, reports, o.json); err != nil {
		return err
	}
	switch {
	case failed > 0:
		return silentExit(exitPeers)
	case o.refused > 0:
		return silentExit(exitData)
	case o.peerRefusals && refusedByPeers > 0:
		printHint(env.Stderr, refusalHint(reports))
		return silentExit(exitData)
	}
	return nil
}

// runForeground delivers d's queues now (sender.Foreground), within
// o.timeout.
func runForeground(env *Env, g *Globals, s *spool.Spool, o deliverOpts, d roster.Roster) ([]deliver.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	// Diagnostics (expired bans, refusals, damaged spool lines) go where
	// the background sender writes its own.
	log := sender.OpenLog(s.Dir(), env.Now)
	defer log.Close()
	cfg := senderConfig(env, g, o.flags, s, log)
	cfg.Options.Warn = func(m string) { printWarning(env.Stderr, "%s", m) }
	cfg.Roster = func() (sender.Roster, error) { return senderRoster(d), nil }
	if env.StderrTerminal {
		// A person is watching: say what is being retried, or the wait
		// for an unreachable peer looks like a hang.
		cfg.Retry = func(peer string, err error, wait time.Duration) {
			printNote(env.Stderr, "peer %s: %s; trying again in %s", peer, sshpush.Reason(err), wait.Round(100*time.Millisecond))
		}
	}
	results, err := sender.Foreground(ctx, cfg)
	if errors.Is(err, sender.ErrBusy) {
		return nil, errorf(exitTemp, "try again in a moment; 'banpush status' shows whether a sender is running", "%v", err)
	}
	return results, err
}

// peerReports are the report's lines, one per peer, sorted, with how many
// peers failed and how many records peers refused.
func peerReports(env *Env, g *Globals, s *spool.Spool, o deliverOpts, d roster.Roster, results []deliver.Result) (reports []peerReport, failed, refusedByPeers int) {
	peers := map[string]roster.Peer{}
	for _, p := range d.Peers {
		peers[p.Name] = p
	}
	for _, r := range results {
		rep := peerReport{Peer: r.Peer, Result: string(r.Class), Delivered: r.Delivered, Refused: r.Refused, Dropped: r.Dropped,
			Unbanned: r.Unbanned, Cancelled: r.Cancelled, Skipped: r.Skipped, Refusal: r.Refusal}
		refusedByPeers += r.Refused
		if r.Skipped > 0 {
			printWarning(env.Stderr, "peer %s: %d damaged spool lines skipped; their bans are lost (details in %s)",
				r.Peer, r.Skipped, sender.LogPath(s.Dir()))
		}
		if r.Err != nil {
			rep.Error = sshpush.Reason(r.Err) // the PEER column names the peer
			if p, ok := peers[r.Peer]; ok && r.Class != sshpush.ClassOK {
				rep.Hint = checkHint(r.Class, p, r.Err, o.timeout, g)
			}
		}
		if r.Class != sshpush.ClassOK {
			failed++
			rep.Queued, _, _ = s.Pending(r.Peer)
		}
		reports = append(reports, rep)
	}
	for name, err := range d.Bad {
		failed++
		q, _, _ := s.Pending(name)
		reports = append(reports, peerReport{Peer: name, Result: string(sshpush.ClassConfig), Queued: q, Error: err.Error()})
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Peer < reports[j].Peer })
	return reports, failed, refusedByPeers
}

// refusalHint says what to do about the records peers refused, by the
// first refusal of each: an unban the peer does not allow, a ban it
// refuses as stale, or its policy.
func refusalHint(reports []peerReport) string {
	var unban, stale, policy bool
	for _, r := range reports {
		switch {
		case r.Refused == 0:
		case strings.Contains(r.Refusal, string(record.ErrUnbanDenied)):
			unban = true
		case strings.Contains(r.Refusal, string(record.ErrStale)):
			stale = true
		default:
			policy = true
		}
	}
	var hints []string
	if unban {
		hints = append(hints, "a peer lifts bans only for a key whose line there has --allow-unban ('banpush authorize --allow-unban' on the peer); refused unbans are not sent again")
	}
	if stale {
		hints = append(hints, "a peer refuses bans of an address it unbanned within its --unban-window; a fresh detection after it bans again")
	}
	if policy || len(hints) == 0 {
		hints = append(hints, "a peer refuses what its policy refuses: private addresses unless its line has --allow-private, its --ignore ranges, its own and the fleet's addresses; refused bans are not sent again")
	}
	return strings.Join(hints, "; ")
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
	// The unban columns appear when there were unbans: a report of bans
	// alone keeps the columns scripts know.
	unbans := slices.ContainsFunc(reports, func(r peerReport) bool { return r.Unbanned > 0 || r.Cancelled > 0 })
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	if unbans {
		fmt.Fprintln(tw, "PEER\tRESULT\tDELIVERED\tUNBANNED\tCANCELLED\tREFUSED\tDROPPED\tQUEUED\tDETAIL")
	} else {
		fmt.Fprintln(tw, "PEER\tRESULT\tDELIVERED\tREFUSED\tDROPPED\tQUEUED\tDETAIL")
	}
	for _, r := range reports {
		if unbans {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Peer, r.Result, r.Delivered, r.Unbanned, r.Cancelled, r.Refused, r.Dropped, r.Queued, r.detail())
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", r.Peer, r.Result, r.Delivered, r.Refused, r.Dropped, r.Queued, r.detail())
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		if r.Hint != "" {
			printHint(env.Stderr, r.Peer+": "+r.Hint)
		}
	}
	return nil
}
