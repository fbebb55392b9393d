package unbanlog

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

// bigJailClient is an f2b.Client whose fail2ban-client is a script: the
// jail banpush holds bans bans (in 10/8), then 203.0.113.7, banned a day
// before now; an unbanip is recorded in the file it returns.
func bigJailClient(t *testing.T, bans int) (*f2b.Client, string) {
	t.Helper()
	testenv.Need(t, testenv.Command("awk", "mawk"))
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	script := `#!/bin/sh
shift 2 # -s SOCKET
case "$1 $2 $3 $4" in
"get banpush banip --with-time")
	awk -v n=` + strconv.Itoa(bans) + ` 'BEGIN {
		for (i = 0; i < n; i++) printf "10.%d.%d.%d \t2026-11-29 09:00:00 + 600 = 2026-11-29 09:10:00\n", int(i / 65536), int(i / 256) % 256, i % 256
		print "203.0.113.7 \t2026-11-29 09:00:00 + 600 = 2026-11-29 09:10:00"
	}' ;;
"set banpush unbanip "*)
	echo "$*" >>` + calls + `
	echo 1 ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
`
	path := filepath.Join(dir, "fail2ban-client")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &f2b.Client{Path: path, Socket: filepath.Join(dir, "sock"), Timeout: time.Minute}, calls
}

// TestApplyBigJail: a jail holding more bans than a list of 4 MiB (about
// 76,000 of them, issue 25 finding 6) does not stop apply-unbans: the
// unban is applied, through a real f2b.Client reading the list as
// fail2ban-client writes it.
func TestApplyBigJail(t *testing.T) {
	testenv.Slow(t)
	client, calls := bigJailClient(t, 120000)
	cfg := testConfig(t)
	cfg.Jails = []string{"banpush"}
	os.Mkdir(filepath.Dir(cfg.State), 0o700)
	appendFile(t, cfg.Log, unbanLine("203.0.113.7", time.Minute)+unbanLine("198.51.100.1", time.Minute))
	rep, err := Apply(context.Background(), cfg, client)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, _ := os.ReadFile(calls)
	if strings.TrimSpace(string(got)) != "set banpush unbanip 203.0.113.7" || rep.Lifted != 1 || rep.Skipped.NotBanned != 1 {
		t.Errorf("calls %q, report %+v; want 203.0.113.7 lifted and 198.51.100.1 not banned", got, rep)
	}
}
