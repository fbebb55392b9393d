package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/banpush/banpush/sshpush"
	"github.com/banpush/banpush/sshpush/roster"
)

// checkConcurrency bounds how many peers "peers check" contacts at once.
const checkConcurrency = 16

// PeersCheckCmd connects to peers and pings their receivers.
type PeersCheckCmd struct {
	JSON    bool          `name:"json" help:"Print a JSON array instead of a table."`
	Timeout time.Duration `help:"Time limit per peer for connecting, the handshake and the ping (default: ${default})." default:"10s" placeholder:"D"`
	Names   []string      `arg:"" optional:"" name:"NAME" help:"Peers to check (default: all)."`
}

// Help explains the results and what to do about each.
func (c *PeersCheckCmd) Help() string {
	return `For each peer (all of them, or those named), at most 16 at once: connect,
verify the host key against known_hosts, log in with the configured keys, and
send a ping request to the receiver. Nothing is delivered and nothing is
changed. Run it after setting up a peer, and whenever delivery fails.

Results, and what to do:
  ok               the receiver answered; RTT is the ping's round trip
  unreachable      no connection: is sshd running there? a firewall? are
                   HostName and Port right ('banpush peers list')?
  timeout          no answer within --timeout: a firewall dropping packets,
                   or a peer too slow (try a longer --timeout)
  hostkey-unknown  known_hosts has no key for the host: compare its
                   fingerprint, then run 'banpush peers trust NAME'; in a
                   certificate fleet, sign the host's key with the fleet's
                   host CA instead
  hostkey-changed  the host presents a different key than known_hosts: make
                   sure the host was really reinstalled (it may be an attack),
                   remove the stale line named in the report, then trust again
  hostcert-unknown-ca, hostcert-expired, hostcert-wrong-host
                   the host certificate is signed by a CA no @cert-authority
                   line trusts for the host, is outside its validity, or does
                   not name the host (its HostKeyAlias, else HostName):
                   re-sign the host key, or fix known_hosts
  auth             the peer accepted none of the keys: install the key there
                   with 'banpush authorize ... --install'; in a certificate
                   fleet (a KEY-cert.pub beside the key, or CertificateFile),
                   sign the key again with the fleet's user CA
  not-banpush      the key logs in to a plain account: its authorized_keys
                   line lacks the command="banpush receive ..." part
  receiver-cannot-write
                   the receiving account cannot write its log (permissions,
                   a full disk): on the peer, 'banpush doctor' finds it and
                   'banpush setup-account' fixes the log; bans stay queued
  rejected, busy, receiver-error
                   the receiver answered with an error: see its message
  config           the peer's settings cannot be used: fix the inventory

    banpush peers check
    banpush peers check --json web1 db | jq -r '.[] | select(.result != "ok") | .peer'

JSON keys (always present): peer, result, rtt_ms (null unless ok), version,
error, hint. Exit status 0 when every peer is ok, 3 when any is not, 78 if the
inventory is missing or a name is not in it.`
}

// checkReport is one peer's line of "peers check". Its JSON keys are
// stable.
type checkReport struct {
	Peer    string   `json:"peer"`
	Result  string   `json:"result"`
	RTTms   *float64 `json:"rtt_ms"`
	Version string   `json:"version"`
	Error   string   `json:"error"`
	Hint    string   `json:"hint"`

	warnings []string // from the SSH client, printed after the report
}

// Run checks the peers and prints the report.
func (c *PeersCheckCmd) Run(env *Env, g *Globals) error {
	if c.Timeout <= 0 {
		return errorf(exitUsage, "give a positive duration, e.g. --timeout 10s", "--timeout must be positive")
	}
	names := dedupe(c.Names)
	d, err := loadRoster(env, g, names...)
	if err != nil {
		return err
	}
	for _, w := range d.Warnings {
		printWarning(env.Stderr, "%s", w)
	}
	if note := roster.SelfNote(d.Self, g.Self, g.Inventory); note != "" && len(names) == 0 {
		if len(d.Self) > 0 {
			note += "; name it to check its own receiver"
		}
		printNote(env.Stderr, "%s", note)
	}
	reports := make([]checkReport, len(d.Peers))
	sem := make(chan struct{}, checkConcurrency)
	var wg sync.WaitGroup
	for i, p := range d.Peers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			reports[i] = c.check(p, g)
		}()
	}
	wg.Wait()
	for name, err := range d.Bad {
		reports = append(reports, checkReport{Peer: name, Result: string(sshpush.ClassConfig), Error: err.Error(),
			Hint: "fix the peer in " + g.Inventory + "; 'banpush peers list' shows the settings banpush uses"})
	}
	slices.SortFunc(reports, func(a, b checkReport) int { return strings.Compare(a.Peer, b.Peer) })

	failed := 0
	for _, r := range reports {
		for _, w := range r.warnings {
			printWarning(env.Stderr, "%s", w)
		}
		if r.Result != string(sshpush.ClassOK) {
			failed++
		}
	}
	if err := printCheckReport(env, reports, c.JSON); err != nil {
		return err
	}
	if failed > 0 {
		return silentExit(exitPeers)
	}
	return nil
}

// check contacts one peer.
func (c *PeersCheckCmd) check(p roster.Peer, g *Globals) checkReport {
	rep := checkReport{Peer: p.Name}
	var mu sync.Mutex
	opts := sshpush.Options{
		HandshakeTimeout: c.Timeout,
		SessionTimeout:   c.Timeout,
		Warn: func(m string) {
			mu.Lock()
			defer mu.Unlock()
			rep.warnings = append(rep.warnings, m)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	var reply sshpush.PingReply
	cl, err := sshpush.Dial(ctx, p.Target, opts)
	if err == nil {
		reply, err = cl.Ping(ctx)
		cl.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	class := sshpush.ClassOf(err)
	rep.Result = string(class)
	if err == nil {
		ms := math.Round(reply.RTT.Seconds()*1e4) / 10
		rep.RTTms = &ms
		rep.Version = reply.Version
		return rep
	}
	rep.Error = sshpush.Reason(err)
	rep.Hint = checkHint(class, p, err, c.Timeout, g)
	return rep
}

func printCheckReport(env *Env, reports []checkReport, asJSON bool) error {
	if asJSON {
		if reports == nil {
			reports = []checkReport{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	if len(reports) == 0 {
		printNote(env.Stderr, "no peers to check")
		return nil
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tRESULT\tRTT\tVERSION\tDETAIL")
	for _, r := range reports {
		rtt, version := "-", "-"
		if r.RTTms != nil {
			rtt = strconv.FormatFloat(*r.RTTms, 'f', 1, 64) + "ms"
		}
		if r.Version != "" {
			version = r.Version
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Peer, r.Result, rtt, version, oneLine(r.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Padding before an empty DETAIL would leave trailing blanks.
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line != "" {
			if _, err := io.WriteString(env.Stdout, strings.TrimRight(line, " \n")+"\n"); err != nil {
				return err
			}
		}
	}
	for _, r := range reports {
		if r.Hint != "" {
			printHint(env.Stderr, r.Peer+": "+r.Hint)
		}
	}
	return nil
}
