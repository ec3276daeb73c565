package main

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/p2pshare/p2pshare/peer"
)

// TestSwarmKeyProcess runs a private swarm of real processes: a seed with a
// key, downloaders with the key (by flag, environment and config) that
// fetch, and downloaders without it, or with another, that cannot.
func TestSwarmKeyProcess(t *testing.T) {
	dir := t.TempDir()
	gen := run(t, "swarm-key")
	if gen.code != 0 || gen.stderr != "" {
		t.Fatalf("swarm-key: %+v", gen)
	}
	if _, err := peer.ParseSwarmKey("stdout", []byte(gen.stdout)); err != nil || !strings.HasPrefix(gen.stdout, "/key/swarm/psk/1.0.0/\n/base16/\n") {
		t.Fatalf("swarm-key printed %q: %v", gen.stdout, err)
	}
	if again := run(t, "swarm-key"); again.stdout == gen.stdout {
		t.Fatal("two runs of swarm-key printed the same key")
	}
	key := filepath.Join(dir, "swarm.key")
	other := filepath.Join(dir, "other.key")
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(key, []byte(gen.stdout), 0o600)
	os.WriteFile(other, []byte(run(t, "swarm-key").stdout), 0o600)
	os.WriteFile(bad, []byte("/key/swarm/psk/1.0.0/\n/base16/\n0123\n"), 0o600)

	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 1<<20+7)
	addr := seed(t, filepath.Join(dir, "seed"), "--swarm-key", key)
	r := run(t, "--repo", filepath.Join(dir, "seed"), "-q", "add", "--chunk-size", "65536", src)
	if r.code != 0 {
		t.Fatalf("add through the private seed: %+v", r)
	}
	root := strings.TrimSpace(r.stdout)

	get := func(t *testing.T, repo string, env []string, args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--repo", filepath.Join(dir, repo), "get", root, "--bootstrap", addr, "--timeout", "20s"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		return runCmd(t, cmd)
	}
	check := func(t *testing.T, out string) {
		t.Helper()
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("%s: SHA-256 differs from the original (err %v)", out, err)
		}
	}

	t.Run("flag", func(t *testing.T) {
		// The default listen addresses include QUIC: dropped, not an error.
		// The output name holds an escape: the "got" line shows it quoted.
		out := filepath.Join(dir, "got\x1b[2J.bin")
		r := get(t, "flag", nil, "--swarm-key", key, "-o", out)
		if r.code != 0 {
			t.Fatalf("get --swarm-key: %+v", r)
		}
		check(t, out)
		if strings.Contains(r.stdout+r.stderr, "\x1b") || !strings.Contains(r.stdout, `got\x1b[2J.bin"`) {
			t.Fatalf("get printed %q / %q: want the name quoted, no raw ESC", r.stdout, r.stderr)
		}
	})
	t.Run("flag beats environment", func(t *testing.T) {
		out := filepath.Join(dir, "env.bin")
		if r := get(t, "env", []string{"P2PSHARE_SWARM_KEY=" + bad}, "--swarm-key", key, "-o", out); r.code != 0 {
			t.Fatalf("get: %+v", r)
		}
		check(t, out)
	})
	t.Run("config", func(t *testing.T) {
		repo := filepath.Join(dir, "cfg")
		if r := run(t, "--repo", repo, "init"); r.code != 0 {
			t.Fatal(r)
		}
		os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"swarm_key": "swarm.key"}`), 0o600)
		os.WriteFile(filepath.Join(repo, "swarm.key"), []byte(gen.stdout), 0o600)
		out := filepath.Join(dir, "cfg.bin")
		if r := get(t, "cfg", nil, "-o", out); r.code != 0 {
			t.Fatalf("get with the config's swarm_key: %+v", r)
		}
		check(t, out)
		// The environment beats the config.
		r := get(t, "cfg", []string{"P2PSHARE_SWARM_KEY=" + bad}, "-o", filepath.Join(dir, "cfg2.bin"))
		if r.code != 2 || !strings.Contains(r.stderr, "malformed swarm key") {
			t.Fatalf("P2PSHARE_SWARM_KEY naming a bad key: %+v, want exit 2", r)
		}
	})

	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no key", nil, 1, "(is this a private swarm? pass --swarm-key)"},
		{"another key", []string{"--swarm-key", other}, 1, "(does that peer use the same swarm key? check --swarm-key)"},
		{"malformed key", []string{"--swarm-key", bad}, 2, "malformed swarm key " + bad + ": too short"},
		{"missing key", []string{"--swarm-key", filepath.Join(dir, "nope.key")}, 2, "no such file"},
		{"QUIC listen", []string{"--swarm-key", key, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, 2, "runs over TCP only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, "fail", nil, append(tc.args, "-o", filepath.Join(dir, "fail.bin"))...)
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.msg) {
				t.Fatalf("exit %d stderr %q: want exit %d and one line with %q", r.code, r.stderr, tc.code, tc.msg)
			}
			if tc.code == 1 && !strings.HasPrefix(lines[0], "p2pshare: cannot connect to 12D3") {
				t.Fatalf("stderr %q: want p2pshare: cannot connect to <peer>: ...", lines[0])
			}
		})
	}
}

// TestAPIPerm: a seed's API socket is 0600 in a repo folder of 0700 (an
// existing 0755 one is tightened), and another user cannot command it.
func TestAPIPerm(t *testing.T) {
	dir := openTempDir(t, "p2pshare-api")
	repo := filepath.Join(dir, "repo")
	if r := run(t, "--repo", repo, "init"); r.code != 0 {
		t.Fatal(r)
	}
	os.Chmod(repo, 0o755)
	seed(t, repo)
	if st, err := os.Stat(repo); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("repo folder mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	sock := filepath.Join(repo, "api.sock")
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("API socket mode %v (%v), want a 0600 socket", st.Mode(), err)
	}
	if r := run(t, "--repo", repo, "--json", "status"); r.code != 0 || !strings.Contains(r.stdout, `"running":true`) {
		t.Fatalf("status as the owner: %+v, want the running seed", r)
	}
	if os.Getuid() != 0 {
		t.Skip("not root: cannot run a command as another user")
	}
	// status reaches the seed if it can connect to the socket (and then
	// prints its status and exits 0); nobody cannot.
	cmd := exec.Command(bin, "--repo", repo, "--json", "status")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	r := runCmd(t, cmd)
	if r.code == 0 || strings.Contains(r.stdout, `"running":true`) || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("status as nobody: exit %d stdout %q stderr %q: want a failure, permission denied", r.code, r.stdout, r.stderr)
	}
}

// TestEscapedNames: a name holding terminal escapes is printed quoted by
// add and ls (no raw ESC byte on stdout or stderr), kept as it is in
// --json, and plain names print as before.
func TestEscapedNames(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	name := "evil\x1b[2J\x07name.bin"
	path := filepath.Join(dir, name)
	writeRandom(t, path, 1000)
	add := run(t, "--repo", repo, "add", path)
	root := strings.TrimSpace(run(t, "-q", "add", "--only-hash", path).stdout)
	if add.code != 0 || add.stdout != "added "+root+` "evil\x1b[2J\aname.bin"`+"\n" {
		t.Fatalf("add printed %q, want added %s %q", add.stdout, root, name)
	}
	ls := run(t, "--repo", repo, "ls")
	if ls.code != 0 || !strings.HasSuffix(ls.stdout, `  "evil\x1b[2J\aname.bin"`+"\n") {
		t.Fatalf("ls printed %q: want the name quoted", ls.stdout)
	}
	js := run(t, "--repo", repo, "--json", "ls")
	var row struct{ Name string }
	if err := json.Unmarshal([]byte(js.stdout), &row); err != nil || row.Name != name {
		t.Fatalf("ls --json = %q (%v): want valid JSON with the name unchanged", js.stdout, err)
	}
	// An error that carries the name is escaped too.
	miss := run(t, "--repo", repo, "add", path+".gone")
	if miss.code != 2 || !strings.Contains(miss.stderr, `evil\x1b[2J\aname.bin.gone`) {
		t.Fatalf("add of a missing file: %+v", miss)
	}
	for _, r := range []result{add, ls, js, miss} {
		if strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07") {
			t.Fatalf("raw control byte in output %q / %q", r.stdout, r.stderr)
		}
	}
	// A plain name (spaces and non-ASCII letters included) prints as is.
	plain := filepath.Join(dir, "a plain été.bin")
	writeRandom(t, plain, 10)
	if r := run(t, "--repo", repo, "add", plain); !strings.HasSuffix(r.stdout, " a plain été.bin\n") {
		t.Fatalf("add of a plain name printed %q", r.stdout)
	}
}

func TestDisplayName(t *testing.T) {
	cases := []struct{ in, name, msg string }{
		{"report.pdf", "report.pdf", "report.pdf"},
		{"a b/été", "a b/été", "a b/été"},
		{"x\x1b[2Jy", `"x\x1b[2Jy"`, `x\x1b[2Jy`},
		{"a\nb", `"a\nb"`, `a\nb`},
		{`say "hi"`, `"say \"hi\""`, `say "hi"`},
		{"bad\xffutf8", `"bad\xffutf8"`, `bad\xffutf8`},
		{"rtl\u202eexe", `"rtl\u202eexe"`, `rtl\u202eexe`},
		{"ok \uFFFD", "ok \uFFFD", "ok \uFFFD"},
	}
	for _, tc := range cases {
		if got := displayName(tc.in); got != tc.name {
			t.Errorf("displayName(%q) = %s, want %s", tc.in, got, tc.name)
		}
		if got := escapeControl(tc.in); got != tc.msg {
			t.Errorf("escapeControl(%q) = %s, want %s", tc.in, got, tc.msg)
		}
	}
}
