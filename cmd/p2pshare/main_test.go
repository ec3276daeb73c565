package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the p2pshare binary built once for the process tests.
var bin string

func TestMain(m *testing.M) {
	// No test process looks for peers by mDNS: that would send multicast
	// out of the machine's real interfaces and let unrelated tests' nodes
	// find each other. The mDNS test runs in network namespaces of its
	// own (testnet).
	os.Setenv("P2PSHARE_NO_MDNS", "1")
	dir, err := os.MkdirTemp("", "p2pshare-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // TestUnreadableFile runs it as another user
	bin = filepath.Join(dir, "p2pshare")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building p2pshare: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code   int
	stdout string
	stderr string
}

// run runs the binary with args and returns its exit code and output.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(bin, args...))
}

func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func writeRandom(t *testing.T, path string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing path", []string{"add", filepath.Join(dir, "nope")}, 2, "no such file"},
		{"socket", []string{"add", sock}, 2, "socket"},
		{"device", []string{"add", "/dev/null"}, 2, "device"},
		{"no path", []string{"add"}, 2, "needs at least one PATH"},
		{"bad chunker", []string{"add", "--chunker", "rabin-9", sock}, 2, "chunker"},
		{"malformed CID to rm", []string{"rm", "not-a-cid"}, 2, "malformed CID"},
		{"malformed CID to get", []string{"get", "bafyXX"}, 2, "malformed CID"},
		{"truncated hash in CID to get", []string{"get", "bafkrebbnoelee"}, 2, "weak or truncated hash"},
		{"bad bootstrap", []string{"get", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--bootstrap", "/ip4/1.2.3/tcp/1"}, 2, "bootstrap"},
		{"bootstrap without peer ID", []string{"get", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, 2, "/p2p/"},
		{"bad rate", []string{"seed", "--max-upload", "fast"}, 2, "rate"},
		{"unknown flag", []string{"add", "--frobnicate", "x"}, 2, "frobnicate"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"malformed ticket to get", []string{"get", "p2ps1aaaa"}, 2, "malformed ticket"},
		{"ticket of an unknown version", []string{"get", "p2ps9aaaa"}, 2, "malformed ticket: version"},
		{"ticket without a seed", []string{"ticket", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, 1, "start one with p2pshare seed"},
		{"malformed CID to ticket", []string{"ticket", "bafyXX"}, 2, "malformed CID"},
		{"share without path", []string{"share"}, 2, "share needs at least one PATH"},
		{"share of a missing path", []string{"share", filepath.Join(dir, "nope")}, 2, "no such file"},
		{"rm of unshared root", []string{"rm", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}, 1, "not shared"},
		{"nobody provides", []string{"get", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--timeout", "1s", "--listen", "/ip4/127.0.0.1/tcp/0", "-o", filepath.Join(dir, "out")}, 1, "no providers found for bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, append([]string{"--repo", repo}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, tc.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.msg) {
				t.Fatalf("stderr %q: want one line mentioning %q", r.stderr, tc.msg)
			}
		})
	}
}

// openTempDir makes a folder of its own that another user may enter
// (t.TempDir's parents are private), removed when the test ends.
func openTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	return dir
}

func TestUnreadableFile(t *testing.T) {
	dir := openTempDir(t, "p2pshare-perm")
	path := filepath.Join(dir, "secret")
	writeRandom(t, path, 1000)
	os.Chmod(path, 0o000)
	repo := filepath.Join(dir, "repo")
	cmd := exec.Command(bin, "--repo", repo, "add", path)
	if os.Getuid() == 0 {
		// root reads anything: run as nobody to see a permission error.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	r := runCmd(t, cmd)
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("exit %d stderr %q: want exit 1 and one line saying permission denied", r.code, r.stderr)
	}
}

func TestAddLsRm(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	path := filepath.Join(dir, "f.bin")
	writeRandom(t, path, 3<<20+5)
	hash := run(t, "-q", "add", "--only-hash", path)
	added := run(t, "--repo", repo, "add", path)
	if added.code != 0 || hash.code != 0 {
		t.Fatalf("add: %+v / %+v", added, hash)
	}
	root := strings.TrimSpace(hash.stdout)
	if added.stdout != fmt.Sprintf("added %s f.bin\n", root) {
		t.Fatalf("add printed %q, want added %s f.bin", added.stdout, root)
	}
	if _, err := os.Stat(filepath.Join(dir, "repo")); err != nil {
		t.Fatal(err)
	}
	ls := run(t, "--repo", repo, "--json", "ls")
	var row struct{ CID, State, Name string }
	if err := json.Unmarshal([]byte(ls.stdout), &row); err != nil || row.CID != root || row.State != "complete" {
		t.Fatalf("ls --json = %q (%v)", ls.stdout, err)
	}
	os.Truncate(path, 100)
	ls = run(t, "--repo", repo, "ls")
	if !strings.Contains(ls.stdout, "changed") {
		t.Fatalf("ls after truncating the file: %q, want changed", ls.stdout)
	}
	if r := run(t, "--repo", repo, "rm", root); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if ls := run(t, "--repo", repo, "ls"); ls.stdout != "" {
		t.Fatalf("ls after rm: %q", ls.stdout)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("rm deleted the user's file")
	}
}

// TestKillDuringAdd kills add at several moments; the repo must stay usable
// and never list a half-added root.
func TestKillDuringAdd(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	path := filepath.Join(dir, "big.bin")
	f, _ := os.Create(path)
	chunk := make([]byte, 1<<20)
	rng := rand.New(rand.NewSource(9))
	for range 256 {
		rng.Read(chunk)
		f.Write(chunk)
	}
	f.Close()
	want := strings.TrimSpace(run(t, "-q", "add", "--only-hash", "--chunk-size", "65536", path).stdout)
	for i, delay := range []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		cmd := exec.Command(bin, "--repo", repo, "add", "--chunk-size", "65536", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay) // the moment of the crash, not a synchronisation
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		ls := run(t, "--repo", repo, "--json", "ls")
		if ls.code != 0 {
			t.Fatalf("kill %d: ls after kill -9: %+v", i, ls)
		}
		sc := bufio.NewScanner(strings.NewReader(ls.stdout))
		for sc.Scan() {
			var row struct{ CID, State string }
			json.Unmarshal(sc.Bytes(), &row)
			if row.CID != want || row.State != "complete" {
				t.Fatalf("kill %d: ls lists %+v; want nothing or %s complete", i, row, want)
			}
		}
	}
	if r := run(t, "--repo", repo, "-q", "add", "--chunk-size", "65536", path); r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Fatalf("add after the kills: %+v, want %s", r, want)
	}
}

// seed starts `p2pshare seed` on repo and returns its first listen address.
func seed(t *testing.T, repo string, extra ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--repo", repo, "seed", "--listen", "/ip4/127.0.0.1/tcp/0"}, extra...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("seed did not shut down cleanly on SIGTERM: %v\n%s", err, errb.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("seed still running 15 s after SIGTERM")
		}
	})
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("seed printed nothing: %s", errb.String())
	}
	line := sc.Text()
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok || !strings.Contains(addr, "/p2p/") {
		t.Fatalf("seed printed %q, want listening <multiaddr>/p2p/<ID>", line)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	// The API socket appears once the seed serves it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", filepath.Join(repo, "api.sock")); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("seed's API socket never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// TestSeedsAndDownloader runs real processes: a seed that adds a file
// through its API, a second seed that fetches it through its API and then
// serves it, and a downloader that gets it from both.
func TestSeedsAndDownloader(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 5<<20+3)
	repoA, repoB, repoC := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	addrA := seed(t, repoA)
	r := run(t, "--repo", repoA, "-q", "add", "--chunk-size", "262144", src)
	if r.code != 0 {
		t.Fatalf("add through the seed: %+v", r)
	}
	root := strings.TrimSpace(r.stdout)

	seed(t, repoB, "--bootstrap", addrA)
	outB := filepath.Join(dir, "b.bin")
	if r := run(t, "--repo", repoB, "get", root, "-o", outB, "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get through seed B: %+v", r)
	}
	if ls := run(t, "--repo", repoB, "ls"); !strings.Contains(ls.stdout, root) || !strings.Contains(ls.stdout, "complete") {
		t.Fatalf("seed B does not list what it fetched: %q", ls.stdout)
	}

	outC := filepath.Join(dir, "c.bin")
	r = run(t, "--repo", repoC, "--json", "get", root, "-o", outC, "--bootstrap", addrA, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30s")
	if r.code != 0 {
		t.Fatalf("downloader: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var sum struct {
		Type  string
		Bytes uint64
		From  map[string]uint64
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Type != "summary" || sum.Bytes != uint64(len(data)) {
		t.Fatalf("last JSON line %q (%v): want a summary of %d bytes", lines[len(lines)-1], err, len(data))
	}
	for _, out := range []string{outB, outC} {
		got, err := os.ReadFile(out)
		if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("%s: SHA-256 differs from the original (err %v)", out, err)
		}
	}
}

// TestCollectorEasedBeforeTheGateway: startgc's init runs before the
// gateway's templates are parsed, the costliest init of the binary, so
// that their garbage costs no collections at every start.
func TestCollectorEasedBeforeTheGateway(t *testing.T) {
	cmd := exec.Command(bin, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	trace := string(out)
	eased := strings.Index(trace, "init github.com/p2pshare/p2pshare/cmd/p2pshare/internal/startgc ")
	gateway := strings.Index(trace, "init github.com/ipfs/boxo/gateway/assets ")
	if eased < 0 || gateway < 0 || eased > gateway {
		t.Fatalf("startgc's init at %d, the gateway's assets at %d of the init trace: want startgc first\n%s", eased, gateway, trace)
	}
}
