package main

// Faults that must lose nothing ("safe among strangers"): seeders and
// downloaders SIGKILLed, a disk that fills up, a shared file changed under a
// running seed. Every test drives real p2pshare processes on loopback and
// checks what a user would: exit codes, the one-line error, the bytes of the
// output, `ls`.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const loopback = "/ip4/127.0.0.1/tcp/0"

// proc is a p2pshare process started by a test. Its stdout is kept line by
// line; `--json` status events (get's progress) are parsed as they come.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited
	code   int           // exit code, valid once exited is closed (-1: killed by a signal)
	took   time.Duration // from start to exit, valid once exited is closed

	mu      sync.Mutex
	lines   []string
	partial []byte
	stderr  bytes.Buffer
	prog    progress // the latest status event
	firstEv progress // the first one
}

// progress is the latest `--json` status event of a get.
type progress struct {
	Done  uint64 `json:"bytes_done"`
	Total uint64 `json:"bytes_total"`
	Peers int    `json:"peers"`
}

type procStdout struct{ p *proc }

func (w procStdout) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		p.partial = p.partial[i+1:]
		p.lines = append(p.lines, line)
		var ev struct {
			Type string `json:"type"`
			progress
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "status" {
			if p.prog == (progress{}) {
				p.firstEv = ev.progress
			}
			p.prog = ev.progress
		}
	}
	return len(b), nil
}

type procStderr struct{ p *proc }

func (w procStderr) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// start starts the binary with args; the process is SIGKILLed (if still
// running) when the test ends.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = procStdout{p}, procStderr{p}
	began := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.took = time.Since(began)
		p.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.exited)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill SIGKILLs the process (if it still runs) and waits for it to be gone.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) progress() progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prog
}

func (p *proc) firstProgress() progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstEv
}

func (p *proc) errText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) outText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// firstLine returns the first stdout line with the prefix, waiting up to d.
func (p *proc) firstLine(t *testing.T, prefix string, d time.Duration) string {
	t.Helper()
	var found string
	waitFor(t, d, fmt.Sprintf("%s to print a line %q...", p.name, prefix), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			if strings.HasPrefix(l, prefix) {
				found = l
				return true
			}
		}
		if !p.running() {
			t.Fatalf("%s exited (%d) before printing %q: %s", p.name, p.code, prefix, p.stderr.String())
		}
		return false
	})
	return found
}

// waitFor polls cond every 20 ms until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("waited %s for %s", d, what)
	}
}

// poll polls cond every 20 ms for up to d and reports whether it held.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSeed starts `p2pshare seed` on repo (loopback only) and returns it
// with its listen address once its API socket answers. Unlike seed in
// main_test.go, the process may be SIGKILLed by the test.
func startSeed(t *testing.T, repo string, extra ...string) (*proc, string) {
	t.Helper()
	p := start(t, "seed "+filepath.Base(repo), append([]string{"--repo", repo, "seed", "--listen", loopback}, extra...)...)
	line := p.firstLine(t, "listening ", 20*time.Second)
	addr := strings.TrimPrefix(line, "listening ")
	if !strings.Contains(addr, "/p2p/") {
		t.Fatalf("seed printed %q, want listening <multiaddr>/p2p/<ID>", line)
	}
	waitFor(t, 20*time.Second, "the seed's API socket", func() bool {
		c, err := net.Dial("unix", filepath.Join(repo, "api.sock"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p, addr
}

// peerID is the /p2p/ part of a seed's address.
func peerID(addr string) string { return addr[strings.LastIndex(addr, "/p2p/")+len("/p2p/"):] }

// addFile adds path to repo (through its seed if one runs) and returns the root.
func addFile(t *testing.T, repo, path string, extra ...string) string {
	t.Helper()
	r := run(t, append(append([]string{"--repo", repo, "-q", "add"}, extra...), path)...)
	if r.code != 0 {
		t.Fatalf("add %s: %+v", path, r)
	}
	return strings.TrimSpace(r.stdout)
}

// lsState returns the state `ls --json` on repo shows for root ("" if absent).
func lsState(t *testing.T, repo, root string) string {
	t.Helper()
	r := run(t, "--repo", repo, "--json", "ls")
	if r.code != 0 {
		t.Fatalf("ls on %s: %+v", repo, r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var row struct{ CID, State string }
		if json.Unmarshal([]byte(l), &row) == nil && row.CID == root {
			return row.State
		}
	}
	return ""
}

// bytesUp is what the running seed on repo has sent, from `status --json`.
func bytesUp(t *testing.T, repo string) int64 {
	t.Helper()
	r := run(t, "--repo", repo, "--json", "status")
	var st struct {
		BytesUp int64 `json:"bytes_up"`
		Running bool  `json:"running"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || !st.Running {
		t.Fatalf("status on %s: %+v", repo, r)
	}
	return st.BytesUp
}

// settledBytesUp is bytesUp once it stops moving: libp2p's bandwidth
// counter adds up what was sent about once a second.
func settledBytesUp(t *testing.T, repo string) int64 {
	t.Helper()
	prev, since := bytesUp(t, repo), time.Now()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		if n := bytesUp(t, repo); n != prev {
			prev, since = n, time.Now()
		} else if time.Since(since) > 2500*time.Millisecond {
			return n
		}
	}
	t.Logf("the seed's bytes_up on %s kept moving for 15 s; taking %d", repo, prev)
	return prev
}

// sameBytes fails unless the file at path holds exactly want.
func sameBytes(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the download: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("%s: %d bytes, SHA-256 %x; the source has %d bytes, SHA-256 %x", path, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

// onlyRightBytes fails unless every byte of the file at path is either the
// source's byte there or zero (not written yet): a partial download holds
// nothing that did not come from a verified leaf. (A leaf whose write was
// cut short, by a full disk say, may lie there in part.)
func onlyRightBytes(t *testing.T, path string, want []byte, leaf int) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the partial download: %v", err)
	}
	if len(got) > len(want) {
		t.Fatalf("%s is %d bytes, longer than the source's %d", path, len(got), len(want))
	}
	zero := make([]byte, leaf)
	for off := 0; off < len(got); off += leaf {
		end := min(off+leaf, len(got))
		g := got[off:end]
		if bytes.Equal(g, want[off:end]) || bytes.Equal(g, zero[:len(g)]) {
			continue
		}
		for i, c := range g {
			if c != 0 && c != want[off+i] {
				t.Fatalf("%s holds a wrong byte at %d (in the leaf at %d)", path, off+i, off)
			}
		}
	}
}

// partPath is where get keeps a download until it is complete.
func partPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".p2pshare-part")
}

// oneLine fails unless stderr is one line containing want.
func oneLine(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, want) {
		t.Fatalf("stderr %q: want one line mentioning %q", stderr, want)
	}
}

const mib = 1 << 20

// TestFaultSeedersKilled: three seeders of the same file, two SIGKILLed
// while a get fetches from all three; the get completes from the third.
func TestFaultSeedersKilled(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 32*mib+7)
	var seeds []*proc
	var addrs []string
	var root string
	for i := range 3 {
		repo := filepath.Join(dir, fmt.Sprintf("seed%d", i))
		if r := addFile(t, repo, src); root == "" {
			root = r
		} else if r != root {
			t.Fatalf("seed %d added %s, seed 0 %s", i, r, root)
		}
		extra := []string{"--max-upload", "4MiB"}
		if i > 0 {
			extra = append(extra, "--bootstrap", addrs[0])
		}
		p, a := startSeed(t, repo, extra...)
		seeds, addrs = append(seeds, p), append(addrs, a)
	}

	out := filepath.Join(dir, "out.bin")
	g := start(t, "get", "--repo", filepath.Join(dir, "getter"), "--json", "get", root, "-o", out,
		"--bootstrap", addrs[0], "--listen", loopback, "--timeout", "30s")
	// Kill seeds 0 (the get's bootstrap peer) and 1 once the get fetches
	// from all three and has some of the file.
	if !poll(30*time.Second, func() bool {
		pr := g.progress()
		return !g.running() || pr.Peers >= 3 && pr.Done >= 2*mib
	}) || !g.running() {
		t.Fatalf("get never reached 3 peers and 2 MiB while running (last progress %+v, exited %v): %s", g.progress(), !g.running(), g.errText())
	}
	before := g.progress()
	seeds[0].kill()
	seeds[1].kill()
	t.Logf("killed 2 of 3 seeders at %.1f of %.1f MiB (%d peers)", float64(before.Done)/mib, float64(before.Total)/mib, before.Peers)
	if before.Done >= before.Total {
		t.Fatalf("the get was complete before the kill: %+v", before)
	}
	if !g.wait(60 * time.Second) {
		t.Fatalf("get still running 60 s after the kill (progress %+v)", g.progress())
	}
	if g.code != 0 {
		t.Fatalf("get exited %d after 2 of 3 seeders were killed: %s", g.code, g.errText())
	}
	sameBytes(t, out, data)
	t.Logf("get took %.1fs", g.took.Seconds())
}

// TestFaultDownloaderKilled: the downloader SIGKILLed at five random
// moments mid-download, then run to completion: the file is right, each
// run resumes where the last one was killed, and the seed sent little more
// than the content once.
//
// Each run fetches well over a transfer window (32 leaves of 256 KiB =
// 8 MiB) before its kill, so that a download that lost its progress at a
// kill cannot hide inside the window allowance of the bound.
// P2PSHARE_FAULT_SEED replays the kill moments of a logged run.
func TestFaultDownloaderKilled(t *testing.T) {
	const (
		size  = 112 * mib
		leaf  = 256 << 10
		kills = 5
		// window bounds what one kill can lose: the requests in flight to
		// the one peer, at most 32 leaves.
		window = 32 * leaf
	)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, size)
	seedRepo := filepath.Join(dir, "seed")
	root := addFile(t, seedRepo, src, "--chunk-size", fmt.Sprint(leaf))
	_, addr := startSeed(t, seedRepo, "--max-upload", "12MiB")
	up0 := bytesUp(t, seedRepo)

	seedVal := time.Now().UnixNano()
	if s := os.Getenv("P2PSHARE_FAULT_SEED"); s != "" {
		fmt.Sscan(s, &seedVal)
	}
	rng := rand.New(rand.NewSource(seedVal))
	t.Logf("kill moments from seed %d (set P2PSHARE_FAULT_SEED to replay)", seedVal)

	repo, out := filepath.Join(dir, "getter"), filepath.Join(dir, "out.bin")
	get := func() *proc {
		return start(t, "get", "--repo", repo, "--json", "get", root, "-o", out,
			"--bootstrap", addr, "--listen", loopback, "--timeout", "30s")
	}
	var last uint64 // bytes_done the previous run had when it was killed
	for i := range kills {
		g := get()
		// The moment: once the run has fetched a random 12-16 MiB beyond
		// its first progress event (well over a window, well short of the
		// content over five runs), wherever in a leaf's transfer that falls.
		if !poll(60*time.Second, func() bool { return !g.running() || g.progress() != (progress{}) }) || !g.running() {
			t.Fatalf("run %d: no progress while running (exited %v %d): %s", i+1, !g.running(), g.code, g.errText())
		}
		began := g.firstProgress().Done
		target := began + 12*mib + uint64(rng.Int63n(4*mib))
		if !poll(60*time.Second, func() bool { return !g.running() || g.progress().Done >= target }) || !g.running() {
			t.Fatalf("run %d: did not reach %.2f MiB while running (progress %+v, exited %v %d): %s", i+1, float64(target)/mib, g.progress(), !g.running(), g.code, g.errText())
		}
		at := g.progress()
		g.kill()
		if g.code == 0 {
			t.Fatalf("run %d completed before its kill", i+1)
		}
		up := bytesUp(t, seedRepo)
		t.Logf("kill %d: at %.2f of %.0f MiB (target %.2f; the run's first progress event: %.2f MiB); the seed has sent %.2f MiB in all (its counter lags up to a second)",
			i+1, float64(at.Done)/mib, float64(size)/mib, float64(target)/mib, float64(began)/mib, float64(up-up0)/mib)
		if i > 0 && began+window < last {
			t.Errorf("run %d resumed at most %.2f MiB; the run before was killed at %.2f MiB: the progress of a killed download is lost (beyond what a window could hold)",
				i+1, float64(began)/mib, float64(last)/mib)
		}
		last = at.Done
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("run %d: the output appeared under its final name before the download completed", i+1)
		}
		onlyRightBytes(t, partPath(out), data, leaf)
	}
	g := get()
	if !g.wait(120 * time.Second) {
		t.Fatalf("the last run still runs after 120 s (progress %+v)", g.progress())
	}
	if g.code != 0 {
		t.Fatalf("the last run exited %d: %s", g.code, g.errText())
	}
	if began := g.firstProgress().Done; began+window < last {
		t.Errorf("the last run resumed at most %.2f MiB; the run before was killed at %.2f MiB", float64(began)/mib, float64(last)/mib)
	}
	sameBytes(t, out, data)
	if st := lsState(t, repo, root); st != "complete" {
		t.Fatalf("ls on the downloader's repo shows %q, want complete", st)
	}
	sent := settledBytesUp(t, seedRepo) - up0
	bound := int64(size+size/10) + kills*window
	t.Logf("bytes fetched over %d kills and the final run: %.1f MiB for %.0f MiB of content (%.3fx; %.1f MiB beyond the content, %.2f MiB per kill); bound 1.1x + %d x %d MiB window = %.1f MiB",
		kills, float64(sent)/mib, float64(size)/mib, float64(sent)/size, float64(sent-size)/mib, float64(sent-size)/kills/mib, kills, window/mib, float64(bound)/mib)
	if sent > bound {
		t.Fatalf("the seed sent %d bytes for %d bytes of content over %d kills; bound %d", sent, size, kills, bound)
	}
}

// TestFaultSeedRestarted: a seed SIGKILLed while serving and restarted on
// the same repo keeps its content, serves it again and reprovides it.
func TestFaultSeedRestarted(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 12*mib+3)
	repo := filepath.Join(dir, "seed")
	s, addr := startSeed(t, repo, "--max-upload", "4MiB")
	root := addFile(t, repo, src) // through the seed's API
	// Kill it while it serves a download.
	g := start(t, "get", "--repo", filepath.Join(dir, "first"), "--json", "get", root, "-o", filepath.Join(dir, "first.bin"),
		"--bootstrap", addr, "--listen", loopback, "--timeout", "30s")
	if !poll(30*time.Second, func() bool { return !g.running() || g.progress().Done > 0 }) || !g.running() {
		t.Fatalf("the first get made no progress while running: %+v %s", g.progress(), g.errText())
	}
	s.kill()
	g.kill()
	if st := lsState(t, repo, root); st != "complete" {
		t.Fatalf("ls on the killed seed's repo shows %q for %s, want complete", st, root)
	}

	// A third node, started after the kill, so that it holds no provider
	// record from before: the restarted seed must provide again.
	_, boot := startSeed(t, filepath.Join(dir, "boot"))
	_, addr2 := startSeed(t, repo, "--bootstrap", boot)
	if st := lsState(t, repo, root); st != "complete" {
		t.Fatalf("ls through the restarted seed shows %q, want complete", st)
	}

	// Found only through the DHT: the getter knows only the third node.
	viaDHT := filepath.Join(dir, "dht.bin")
	r := run(t, "--repo", filepath.Join(dir, "dht"), "--json", "get", root, "-o", viaDHT, "--bootstrap", boot, "--listen", loopback, "--timeout", "30s")
	if r.code != 0 {
		t.Fatalf("get through the third node: %+v", r)
	}
	sameBytes(t, viaDHT, data)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var sum struct {
		Type string
		From map[string]uint64
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Type != "summary" || sum.From[peerID(addr2)] == 0 {
		t.Fatalf("summary %q: want bytes from the restarted seed %s", lines[len(lines)-1], peerID(addr2))
	}

	direct := filepath.Join(dir, "direct.bin")
	if r := run(t, "--repo", filepath.Join(dir, "direct"), "get", root, "-o", direct, "--bootstrap", addr2, "--listen", loopback, "--timeout", "30s"); r.code != 0 {
		t.Fatalf("fresh get from the restarted seed: %+v", r)
	}
	sameBytes(t, direct, data)
}

// TestFaultDiskFull: get into a tmpfs smaller than the file fails at once
// with "no space left", keeps the partial download, and completes once
// there is room.
func TestFaultDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs as a full disk")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s): this test needs root with CAP_SYS_ADMIN", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})

	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 24*mib+5)
	seedRepo := filepath.Join(dir, "seed")
	root := addFile(t, seedRepo, src)
	_, addr := startSeed(t, seedRepo, "--max-upload", "4MiB")

	// A claim larger than the disk is refused before anything is written.
	tiny := filepath.Join(dir, "tiny")
	os.Mkdir(tiny, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", tiny).CombinedOutput(); err != nil {
		t.Fatalf("mounting a second tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", tiny).Run()
	r := run(t, "--repo", filepath.Join(dir, "tinyrepo"), "get", root, "-o", filepath.Join(tiny, "out.bin"), "--bootstrap", addr, "--listen", loopback)
	if r.code != 1 || !strings.Contains(r.stderr, "not enough space: needs 24.0 MiB") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("get of 24 MiB into 8 MiB: exit %d, stderr %q; want exit 1 and one line saying not enough space", r.code, r.stderr)
	}
	if es, _ := os.ReadDir(tiny); len(es) != 0 {
		t.Fatalf("the refused get left %d entries on the disk", len(es))
	}

	// The disk fills up while the get runs (another program writes).
	const timeout = 30 * time.Second
	repo, out := filepath.Join(dir, "getter"), filepath.Join(mnt, "out.bin")
	args := []string{"--repo", repo, "get", root, "-o", out, "--bootstrap", addr, "--listen", loopback, "--timeout", timeout.String()}
	g := start(t, "get", append([]string{"--json"}, args...)...)
	if !poll(30*time.Second, func() bool { return !g.running() || g.progress().Done >= 2*mib }) || !g.running() {
		t.Fatalf("get never had 2 MiB while running: %s", g.errText())
	}
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler)
	filled := time.Now()
	if !g.wait(timeout + 20*time.Second) {
		t.Fatalf("get into a full disk still runs %s after it started", timeout+20*time.Second)
	}
	took := time.Since(filled)
	t.Logf("get exited %d %.1fs after the disk filled: %q", g.code, took.Seconds(), g.errText())
	if g.code != 1 {
		t.Fatalf("get into a full disk exited %d, want 1: %s", g.code, g.errText())
	}
	if e := g.errText(); strings.Count(e, "\n") != 1 || !strings.Contains(e, "no space left") {
		t.Errorf("stderr %q: want one line mentioning %q", e, "no space left")
	}
	if took > timeout/3 {
		t.Errorf("get took %.1fs to report the full disk; want well within its --timeout %s", took.Seconds(), timeout)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the failed download appeared under its final name")
	}
	if _, err := os.Stat(partPath(out)); err != nil {
		t.Fatalf("the partial download is gone: %v", err)
	}
	onlyRightBytes(t, partPath(out), data, mib)
	if st := lsState(t, repo, root); st != "partial" {
		t.Fatalf("ls on the downloader's repo shows %q, want partial", st)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = run(t, args...)
	if r.code != 0 {
		t.Fatalf("get after making room: %+v", r)
	}
	sameBytes(t, out, data)
}

// fillDisk writes path until its filesystem is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // at most 4 GiB: the tmpfs is far smaller
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the disk never filled")
}

// TestFaultFileChanged: a shared file changed on disk while a seed serves
// it is never served as the content: a get fails or gets the right bytes,
// never writes wrong ones under the final name, and ls says changed.
func TestFaultFileChanged(t *testing.T) {
	const size = 12*mib + 9
	overwrite := func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		junk := bytes.Repeat([]byte("tampered"), 512)
		for _, off := range []int64{size / 2, size - 3*mib} {
			if _, err := f.WriteAt(junk, off); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
	}
	cases := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"overwrite", overwrite},
		// As tools that keep timestamps (cp -p, rsync -t, tar) leave it:
		// the same size and mtime, only ctime tells.
		{"overwrite keeping mtime", func(t *testing.T, path string) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			overwrite(t, path)
			if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncate", func(t *testing.T, path string) {
			if err := os.Truncate(path, size/2); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src.bin")
			data := writeRandom(t, src, size)
			seedRepo := filepath.Join(dir, "seed")
			root := addFile(t, seedRepo, src)
			_, addr := startSeed(t, seedRepo, "--max-upload", "4MiB")

			// A download under way when the file changes ...
			during := filepath.Join(dir, "during.bin")
			g := start(t, "get", "--repo", filepath.Join(dir, "during"), "--json", "get", root, "-o", during,
				"--bootstrap", addr, "--listen", loopback, "--timeout", "3s")
			if !poll(30*time.Second, func() bool { return !g.running() || g.progress().Done >= 2*mib }) || !g.running() {
				t.Fatalf("the first get did not reach 2 MiB while running: %+v %s", g.progress(), g.errText())
			}
			tc.change(t, src)
			if st := lsState(t, seedRepo, root); st != "changed" {
				t.Errorf("ls on the seed shows %q after the file changed, want changed", st)
			}
			// ... and one that starts after.
			after := filepath.Join(dir, "after.bin")
			g2 := start(t, "get", "--repo", filepath.Join(dir, "after"), "get", root, "-o", after,
				"--bootstrap", addr, "--listen", loopback, "--timeout", "3s")
			for _, d := range []struct {
				p   *proc
				out string
			}{{g, during}, {g2, after}} {
				if !d.p.wait(60 * time.Second) {
					t.Fatalf("%s still runs 60 s after the change (progress %+v)", d.out, d.p.progress())
				}
				t.Logf("%s: exit %d after %.1fs, stderr %q", filepath.Base(d.out), d.p.code, d.p.took.Seconds(), d.p.errText())
				switch d.p.code {
				case 0:
					sameBytes(t, d.out, data)
				case 1:
					oneLine(t, d.p.errText(), "")
					if _, err := os.Stat(d.out); err == nil {
						t.Fatalf("%s: a failed get left a file under the final name", d.out)
					}
					if _, err := os.Stat(partPath(d.out)); err == nil {
						onlyRightBytes(t, partPath(d.out), data, mib)
					}
				default:
					t.Fatalf("%s: get exited %d: %s", d.out, d.p.code, d.p.errText())
				}
			}
			// With both gone, only the seed could serve the changed leaves.
			last := filepath.Join(dir, "last.bin")
			r := run(t, "--repo", filepath.Join(dir, "last"), "get", root, "-o", last, "--bootstrap", addr, "--listen", loopback, "--timeout", "3s")
			t.Logf("get after the others ended: exit %d, stderr %q", r.code, r.stderr)
			if r.code != 1 {
				t.Fatalf("a get from the changed seed alone exited %d, want 1: %+v", r.code, r)
			}
			oneLine(t, r.stderr, "")
			if _, err := os.Stat(last); err == nil {
				t.Fatal("a failed get left a file under the final name")
			}
			onlyRightBytes(t, partPath(last), data, mib)
			if st := lsState(t, seedRepo, root); st != "changed" {
				t.Fatalf("ls on the seed shows %q at the end, want changed", st)
			}
		})
	}
}
