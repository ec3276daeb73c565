// Command testnet runs real p2pshare processes on this machine and drives
// them through the CLI, as users would, to show p2pshare working and to
// measure it: each download is checked by SHA-256, and the results are
// printed as a table and written as results.json and progress.svg.
//
// Usage:
//
//	testnet [flags] demo|scale|slowseed|flashcrowd|churn|dht|whole|memory|bench|nat
//
// In netns mode (root) every peer runs in a network namespace of its own,
// joined by a bridge, its upload capped by tc tbf; in loopback mode (any
// user) peers share 127.0.0.1 and caps are p2pshare's own --max-upload.
// It imports no package of p2pshare: it only runs the binary.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type runner struct {
	bin     string
	raw     string // testnet/rawstream, built when a scenario needs it
	out     string
	mode    string
	timeout time.Duration
	start   time.Time
	procs   procs
	net     *netns
	// mdns lets peers find each other by mDNS (netns mode only: the
	// multicast stays on the namespaces' bridge).
	mdns bool

	cleanOnce sync.Once

	mu    sync.Mutex
	names map[string]string // peer ID -> name
	ports map[*peerNode]int
	next  int
}

func main() {
	var (
		bin     = flag.String("bin", "", "p2pshare binary (default: build ./cmd/p2pshare)")
		out     = flag.String("out", "", "output folder (default: testnet/out/<scenario>-<time>)")
		mode    = flag.String("mode", "auto", "network mode: auto, loopback or netns")
		peers   = flag.Int("peers", 0, "peers (demo: 5, flashcrowd: 1 seeder + N downloaders with N=8, dht: 50)")
		sizeMiB = flag.Int("size", 0, "file size in MiB (default per scenario)")
		capMbit = flag.Int("cap", 100, "upload cap per peer in Mbit/s")
		roots   = flag.Int("roots", 100, "dht: roots provided")
		ks      = flag.String("k", "1,2,4,8", "scale: seeder counts")
		slow    = flag.Bool("slow", false, "scale: one seeder capped at a tenth of the others")
		timeout = flag.Duration("timeout", 60*time.Second, "p2pshare get --timeout")
		quick   = flag.Bool("quick", false, "tiny sizes (tests)")
		fixed   = flag.Bool("fixed", false, "whole: only the fixed cost (fresh get of 1 MiB beside a fresh raw receiver), not the large transfers")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: testnet [flags] demo|scale|slowseed|flashcrowd|churn|dht|whole|memory|bench|nat\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	scenario := flag.Arg(0)
	cfg := config{peers: *peers, sizeMiB: *sizeMiB, capMbit: *capMbit, roots: *roots, ks: *ks, slow: *slow, quick: *quick, fixed: *fixed}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := newRunner(ctx, *bin, *out, *mode, scenario, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		os.Exit(1)
	}
	// On Ctrl-C or SIGTERM, clean up at once (processes may be mid-run)
	// and exit; otherwise when the scenario ends.
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "testnet: interrupted, cleaning up")
			r.cleanup()
			os.Exit(130)
		case <-done:
		}
	}()
	err = r.runScenario(ctx, scenario, cfg)
	close(done)
	r.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnet:", err)
		os.Exit(1)
	}
	fmt.Printf("\nresults: %s\n", r.out)
}

func newRunner(ctx context.Context, bin, out, mode, scenario string, timeout time.Duration) (*runner, error) {
	r := &runner{bin: bin, out: out, timeout: timeout, names: map[string]string{}, ports: map[*peerNode]int{}}
	r.procs.live = map[*exec.Cmd]bool{}
	if r.out == "" {
		r.out = filepath.Join("testnet", "out", scenario+"-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(filepath.Join(r.out, "logs"), 0o755); err != nil {
		return nil, err
	}
	if r.bin == "" {
		r.bin = filepath.Join(r.out, "p2pshare")
		if err := build(ctx, "./cmd/p2pshare", r.bin); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(r.bin)
	if err != nil {
		return nil, err
	}
	r.bin = abs
	switch mode {
	case "auto":
		if why := netnsUnavailable(); why != "" {
			r.mode = "loopback"
			fmt.Printf("mode: loopback (netns unavailable: %s)\n", why)
		} else {
			r.mode = "netns"
			fmt.Println("mode: netns (root and ip netns available: each peer in its own namespace, upload capped by tc tbf)")
		}
	case "loopback":
		r.mode = "loopback"
		fmt.Println("mode: loopback (as asked: peers on 127.0.0.1, caps by p2pshare --max-upload)")
	case "netns":
		if why := netnsUnavailable(); why != "" {
			return nil, fmt.Errorf("netns mode unavailable: %s", why)
		}
		r.mode = "netns"
		fmt.Println("mode: netns (as asked: each peer in its own namespace, upload capped by tc tbf)")
	default:
		return nil, fmt.Errorf("unknown mode %q (auto, loopback or netns)", mode)
	}
	if r.mode == "netns" {
		r.net = &netns{prefix: fmt.Sprintf("p2ps%d", os.Getpid()%100000)}
		if err := r.net.setup(); err != nil {
			r.net.teardown()
			return nil, err
		}
	}
	return r, nil
}

// cleanup ends every process and removes namespaces and repos. Later
// calls wait for the first to finish and do nothing more.
func (r *runner) cleanup() {
	r.cleanOnce.Do(r.doCleanup)
}

func (r *runner) doCleanup() {
	r.procs.stopAll(10 * time.Second)
	if r.net != nil {
		r.net.teardown()
	}
	os.RemoveAll(filepath.Join(r.out, "peers"))
	os.RemoveAll(filepath.Join(r.out, "data"))
	for _, b := range []string{r.bin, r.raw} {
		if b != "" && strings.HasPrefix(mustAbs(b), mustAbs(r.out)) {
			os.Remove(b)
		}
	}
}

// build builds the program in pkg (a path from the repo root) to out.
func build(ctx context.Context, pkg, out string) error {
	fmt.Printf("building %s ...\n", pkg)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	b := exec.CommandContext(ctx, "go", "build", "-o", mustAbs(out), pkg)
	b.Dir = root
	b.Stdout, b.Stderr = os.Stdout, os.Stderr
	if err := b.Run(); err != nil {
		return fmt.Errorf("building %s (run from the repo root): %w", pkg, err)
	}
	return nil
}

// moduleRoot finds the folder holding go.mod, from the working folder up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the testnet inside the p2pshare repo (no go.mod found)")
		}
		dir = parent
	}
}

func mustAbs(p string) string {
	a, _ := filepath.Abs(p)
	return a
}

// newPeer creates a peer with its own repo (and namespace in netns mode).
func (r *runner) newPeer(name string, capMbit int) (*peerNode, error) {
	ns, ip, upload := "", "127.0.0.1", ""
	if r.mode == "netns" {
		var err error
		if ns, ip, err = r.net.addPeer(capMbit); err != nil {
			return nil, err
		}
	} else if capMbit > 0 {
		upload = fmt.Sprintf("%dMbit", capMbit)
	}
	p, err := r.newPeerAt(name, ns, ip)
	if p != nil {
		p.upload = upload
	}
	return p, err
}

// loopPeer creates a peer on 127.0.0.1 with no cap, in either mode.
func (r *runner) loopPeer(name string) (*peerNode, error) {
	return r.newPeerAt(name, "", "127.0.0.1")
}

// newPeerAt creates a peer with its own repo that runs in namespace ns
// ("": none) and listens on ip.
func (r *runner) newPeerAt(name, ns, ip string) (*peerNode, error) {
	p := &peerNode{name: name, repo: filepath.Join(mustAbs(r.out), "peers", name), ip: ip, netns: ns}
	if err := os.MkdirAll(filepath.Dir(p.repo), 0o755); err != nil {
		return nil, err
	}
	id, err := r.run(p, "init")
	if err != nil {
		return nil, err
	}
	p.id = strings.TrimSpace(id)
	r.mu.Lock()
	r.names[p.id] = name
	r.mu.Unlock()
	return p, nil
}

func (r *runner) nameOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.names[id]; ok {
		return n
	}
	return id
}

// port gives each peer a fixed port (reused when a seed restarts, so its
// address in others' routing tables stays right); a peer in a namespace
// has its own IP and uses 4001.
func (r *runner) port(p *peerNode) int {
	if p.netns != "" {
		return 4001
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.ports[p]; ok {
		return n
	}
	n := freePort()
	r.ports[p] = n
	return n
}

// makeFile writes size random bytes and returns the path and SHA-256.
func (r *runner) makeFile(name string, size int64) (string, string, error) {
	dir := filepath.Join(mustAbs(r.out), "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		return "", "", err
	}
	return path, hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

var errVerify = errors.New("verification failed")
