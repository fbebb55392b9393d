package inventory

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banpush/banpush/sshpush/testkit/testenv"
)

var testLocal = Local{Home: "/home/ban", User: "ban", UID: "1001", HostName: "fw1.example.net"}

func TestResolve(t *testing.T) {
	src := `Host web1
  HostName %h.example.org
  Port 2222
  IdentityFile %d/.ssh/k_%h_%r_%p_%n_%u_%i_%L_%l_%k_%%
  IdentityFile ~/.ssh/second
  CertificateFile ~/.ssh/second-cert.pub
  UserKnownHostsFile ~/kh1 "/x y/kh2"
  IdentitiesOnly yes
  IdentityAgent none
  StrictHostKeyChecking Yes
  ConnectTimeout 1m30s
  ProxyJump none
  HostKeyAlias web

Host plain

Host *
  User root
  IdentityFile /etc/banpush/id
  GlobalKnownHostsFile none
`
	inv := mustParse(t, src)
	got, err := inv.Resolve("web1", testLocal)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := &Settings{
		Name:     "web1",
		HostName: "web1.example.org",
		Port:     2222,
		User:     "root",
		IdentityFiles: []string{
			"/home/ban/.ssh/k_web1.example.org_root_2222_web1_ban_1001_fw1_fw1.example.net_web_%",
			"/home/ban/.ssh/second",
			"/etc/banpush/id",
		},
		CertificateFiles:      []string{"/home/ban/.ssh/second-cert.pub"},
		IdentitiesOnly:        true,
		IdentityAgent:         "none",
		UserKnownHostsFiles:   []string{"/home/ban/kh1", "/x y/kh2"},
		StrictHostKeyChecking: "yes",
		ConnectTimeout:        90 * time.Second,
		HostKeyAlias:          "web",
		Source: map[string]string{
			"HostName": "peers:2", "Port": "peers:3", "IdentityFile": "peers:4", "CertificateFile": "peers:6",
			"UserKnownHostsFile": "peers:7", "IdentitiesOnly": "peers:8", "IdentityAgent": "peers:9",
			"StrictHostKeyChecking": "peers:10", "ConnectTimeout": "peers:11", "ProxyJump": "peers:12",
			"HostKeyAlias": "peers:13", "User": "peers:18", "GlobalKnownHostsFile": "peers:20",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve(web1):\n got %+v\nwant %+v", got, want)
	}

	got, err = inv.Resolve("plain", testLocal)
	if err != nil {
		t.Fatalf("Resolve(plain): %v", err)
	}
	if got.HostName != "plain" || got.Port != 22 || got.User != "root" || got.ConnectTimeout != DefaultConnectTimeout ||
		got.StrictHostKeyChecking != "ask" || !reflect.DeepEqual(got.IdentityFiles, []string{"/etc/banpush/id"}) ||
		!reflect.DeepEqual(got.UserKnownHostsFiles, []string{"/home/ban/.ssh/known_hosts", "/home/ban/.ssh/known_hosts2"}) ||
		got.GlobalKnownHostsFiles != nil {
		t.Errorf("Resolve(plain) = %+v", got)
	}
}

func TestResolveDefaults(t *testing.T) {
	inv := mustParse(t, "Host a\n")
	got, err := inv.Resolve("a", testLocal)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"} {
		ids = append(ids, "/home/ban/.ssh/"+k)
	}
	want := &Settings{
		Name: "a", HostName: "a", Port: 22, User: "ban", IdentityFiles: ids,
		UserKnownHostsFiles:   []string{"/home/ban/.ssh/known_hosts", "/home/ban/.ssh/known_hosts2"},
		GlobalKnownHostsFiles: []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"},
		StrictHostKeyChecking: "ask", ConnectTimeout: DefaultConnectTimeout, Source: map[string]string{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, src, msg string
	}{
		{"proxyjump", "Host a\n  HostName x\n  ProxyJump bastion\n", "peers:3: ProxyJump is not supported"},
		{"proxycommand from defaults", "Host *\n  ProxyCommand nc %h %p\nHost a\n", "peers:2: ProxyCommand is not supported"},
		{"port word", "Host a\n  Port ssh\n", "peers:2: Port: want a number"},
		{"port zero", "Host a\n  Port 0\n", "peers:2: Port"},
		{"port two", "Host a\n  Port 22 23\n", "peers:2: Port takes one value"},
		{"tilde user", "Host a\n  IdentityFile ~root/.ssh/id\n", "~user is not supported"},
		{"relative", "Host a\n  IdentityFile id_ed25519\n", "not an absolute path"},
		{"env var", "Host a\n  IdentityFile ${HOME}/id\n", "environment variables"},
		{"unknown token", "Host a\n  IdentityFile /k_%z\n", "token %z is not supported"},
		{"token in hostname", "Host a\n  HostName %p.x\n", "token %p is not supported"},
		{"token in global known hosts", "Host a\n  GlobalKnownHostsFile /kh_%h\n", "token %h is not supported"},
		{"bad hostname", "Host a\n  HostName a_b\n", "HostName: not a DNS name"},
		{"bad strict", "Host a\n  StrictHostKeyChecking maybe\n", "StrictHostKeyChecking"},
		{"bad timeout", "Host a\n  ConnectTimeout soon\n", "ConnectTimeout"},
		{"bad identitiesonly", "Host a\n  IdentitiesOnly sure\n", "IdentitiesOnly"},
		{"user token", "Host a\n  User %u\n", "User: tokens"},
		{"no such peer", "Host b\n", "no such peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := mustParse(t, tt.src)
			_, err := inv.Resolve("a", testLocal)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Resolve: got %v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

func TestResolveShadowWarning(t *testing.T) {
	inv := mustParse(t, "Host *\n  User u\n\nHost a\n  User mine\n  Port 2\n")
	got, err := inv.Resolve("a", testLocal)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"peers:5: User has no effect: line 2 set it first, and the first value wins"}
	if got.User != "u" || !reflect.DeepEqual(got.Warnings, want) {
		t.Errorf("got User %q, warnings %q; want u, %q", got.User, got.Warnings, want)
	}
}

func layer(t *testing.T, name, src string) *Layer {
	t.Helper()
	l, err := ParseLayer(name, strings.NewReader(src))
	if err != nil {
		t.Fatalf("ParseLayer(%s): %v", name, err)
	}
	return l
}

const (
	userConfig = "Host web1\n  User fromuser\n  IdentityFile ~/.ssh/u1\n  HostName web1.user.example\n" +
		"Host *\n  Port 2200\n  IdentityFile ~/.ssh/u2\n"
	systemConfig = "Host *\n  User sysuser\n  UserKnownHostsFile /etc/kh_sys /etc/kh_sys2\n  SendEnv LANG LC_*\n  HashKnownHosts yes\n"
)

func TestResolveLayers(t *testing.T) {
	inv := mustParse(t, "Host web1\n  IdentityFile /etc/banpush/id\nHost web2\n  HostName 192.0.2.2\n  User inv\n")
	user, system := layer(t, "user", userConfig), layer(t, "system", systemConfig)
	got, err := inv.Resolve("web1", testLocal, user, nil, system)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostName != "web1.user.example" || got.Port != 2200 || got.User != "fromuser" ||
		!reflect.DeepEqual(got.IdentityFiles, []string{"/etc/banpush/id", "/home/ban/.ssh/u1", "/home/ban/.ssh/u2"}) ||
		!reflect.DeepEqual(got.UserKnownHostsFiles, []string{"/etc/kh_sys", "/etc/kh_sys2"}) ||
		got.Source["User"] != "user" || got.Source["UserKnownHostsFile"] != "system" {
		t.Errorf("Resolve(web1) = %+v", got)
	}
	got, err = inv.Resolve("web2", testLocal, user, system)
	if err != nil {
		t.Fatal(err)
	}
	if got.HostName != "192.0.2.2" || got.Port != 2200 || got.User != "inv" {
		t.Errorf("Resolve(web2) = %+v", got)
	}
}

func TestParseLayerRefuses(t *testing.T) {
	for _, src := range []string{
		"Match exec \"true\"\n  User x\n",
		"Host a\n  User b\nMatch host a user b\n",
		"Match final all\n",
	} {
		if _, err := ParseLayer("cfg", strings.NewReader(src)); err == nil || !strings.Contains(err.Error(), "file ignored") {
			t.Errorf("ParseLayer(%q): got %v, want an error saying the file is ignored", src, err)
		}
	}
	if _, err := ParseLayer("cfg", strings.NewReader("Match all\n  User x\n")); err != nil {
		t.Errorf("ParseLayer(Match all): %v", err)
	}
	if l, err := LoadLayer(filepath.Join(t.TempDir(), "none")); l != nil || err != nil {
		t.Errorf("LoadLayer(missing) = %v, %v; want nil, nil", l, err)
	}
}

// sshG runs `ssh -G -F config name` and returns its output as key -> values.
func sshG(t *testing.T, config, name string) map[string][]string {
	t.Helper()
	testenv.Need(t, testenv.Command("ssh", "openssh-client"))
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ssh, "-G", "-F", config, name)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G -F %s %s: %v\n%s", config, name, err, out)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		m[strings.ToLower(k)] = append(m[strings.ToLower(k)], v)
	}
	return m
}

func currentLocal(t *testing.T) Local {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := os.Hostname()
	return Local{Home: u.HomeDir, User: u.Username, UID: u.Uid, HostName: h}
}

// checkAgainstSSH compares Resolve with `ssh -G -F config` for every peer.
func checkAgainstSSH(t *testing.T, inv *Inventory, config string, layers ...*Layer) {
	t.Helper()
	local := currentLocal(t)
	for _, p := range inv.Peers() {
		got, err := inv.Resolve(p.Name, local, layers...)
		if err != nil {
			t.Errorf("Resolve(%s): %v", p.Name, err)
			continue
		}
		ssh := sshG(t, config, p.Name)
		want := map[string]string{
			"hostname":           ssh["hostname"][0],
			"port":               ssh["port"][0],
			"user":               ssh["user"][0],
			"userknownhostsfile": strings.Join(ssh["userknownhostsfile"], " "),
			"identitiesonly":     ssh["identitiesonly"][0],
		}
		if want["userknownhostsfile"] == "none" {
			want["userknownhostsfile"] = ""
		}
		var ids []string
		for _, id := range ssh["identityfile"] {
			if strings.HasPrefix(id, "~/") {
				id = filepath.Join(local.Home, id[2:])
			}
			ids = append(ids, id)
		}
		want["identityfile"] = strings.Join(ids, " ")
		only := "no"
		if got.IdentitiesOnly {
			only = "yes"
		}
		have := map[string]string{
			"hostname":           got.HostName,
			"port":               strconv.Itoa(got.Port),
			"user":               got.User,
			"userknownhostsfile": strings.Join(got.UserKnownHostsFiles, " "),
			"identitiesonly":     only,
			"identityfile":       strings.Join(got.IdentityFiles, " "),
		}
		for k, w := range want {
			if have[k] != w {
				t.Errorf("peer %s: %s: got %q, ssh -G says %q", p.Name, k, have[k], w)
			}
		}
	}
}

// TestResolveAgainstSSH makes OpenSSH the oracle: after the edits of the
// acceptance test, Resolve and `ssh -G -F INVENTORY NAME` agree for every
// peer.
func TestResolveAgainstSSH(t *testing.T) {
	dir := t.TempDir()
	inv := mustParse(t, handWritten+"\nHost late\n  User ignored\n  Port 2\n  IdentityFile ~/.ssh/late\n  UserKnownHostsFile ~/x\n")
	for _, p := range []PeerSpec{
		{Name: "mail", HostName: "mail.example.org"},
		{Name: "backup-1", HostName: "2001:db8::7", Port: 2022, User: "root", IdentityFile: "~/.ssh/backup"},
		{Name: "edge.eu", HostName: "198.51.100.4", User: "ban"},
	} {
		if err := inv.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := inv.Remove("old"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "peers")
	if err := os.WriteFile(path, inv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	checkAgainstSSH(t, inv, path)

	// OpenSSH's defaults alone.
	bare := mustParse(t, "Host bare\nHost other\n  HostName 10.0.0.1\n  UserKnownHostsFile none\n")
	if err := os.WriteFile(path, bare.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	checkAgainstSSH(t, bare, path)

	// With the user's and system's files: ssh reads the three in order
	// when a config includes them in that order.
	user, system := filepath.Join(dir, "user"), filepath.Join(dir, "system")
	plain := mustParse(t, "Host web1\n  HostName 192.0.2.1\nHost web2\n  User inv\n  IdentityFile /etc/banpush/id\nHost web3\n  Port 2\n")
	if err := os.WriteFile(path, plain.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{user: userConfig, system: systemConfig} {
		if err := os.WriteFile(name, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	all := filepath.Join(dir, "all")
	if err := os.WriteFile(all, []byte("Include "+path+"\nInclude "+user+"\nInclude "+system+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkAgainstSSH(t, plain, all, layer(t, user, userConfig), layer(t, system, systemConfig))
}
