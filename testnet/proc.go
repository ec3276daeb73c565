package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs tracks every process the runner started, so that cleanup can end
// them all, also on Ctrl-C or failure.
type procs struct {
	mu   sync.Mutex
	live map[*exec.Cmd]bool
}

func (p *procs) add(c *exec.Cmd) {
	p.mu.Lock()
	p.live[c] = true
	p.mu.Unlock()
}

func (p *procs) done(c *exec.Cmd) {
	p.mu.Lock()
	delete(p.live, c)
	p.mu.Unlock()
}

// stopAll sends SIGTERM to every live process, then SIGKILL to those still
// running after grace.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	var cmds []*exec.Cmd
	for c := range p.live {
		cmds = append(cmds, c)
	}
	p.mu.Unlock()
	for _, c := range cmds {
		c.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for _, c := range cmds {
		for time.Now().Before(deadline) {
			if syscall.Kill(c.Process.Pid, 0) != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Process.Kill()
	}
}

// peerNode is one p2pshare peer: its repo, its network place and, while it
// runs, its seed process.
type peerNode struct {
	name   string
	repo   string
	id     string
	ip     string   // listen IP: 127.0.0.1 or its namespace address
	netns  string   // "" in loopback mode
	upload string   // --max-upload RATE for p2pshare ("" when tc caps it)
	flags  []string // more flags for its seed (--no-relay)

	seed  *exec.Cmd
	addr  string // first listen multiaddr with /p2p/, once seeding
	stopc chan struct{}
}

// command builds a p2pshare command for this peer (inside its namespace
// in netns mode). Unless the runner is set to use mDNS, peers find each
// other only as the scenario says (P2PSHARE_NO_MDNS): mDNS would connect
// every peer of the bridge to every other, and in loopback mode it would
// multicast out of the machine's real interfaces.
func (r *runner) command(p *peerNode, args ...string) *exec.Cmd {
	full := append([]string{"--repo", p.repo}, args...)
	var c *exec.Cmd
	if p.netns != "" {
		c = exec.Command("ip", append([]string{"netns", "exec", p.netns, r.bin}, full...)...)
	} else {
		c = exec.Command(r.bin, full...)
	}
	if !r.mdns {
		c.Env = append(os.Environ(), "P2PSHARE_NO_MDNS=1")
	}
	return c
}

// run runs a short p2pshare command and returns its stdout.
func (r *runner) run(p *peerNode, args ...string) (string, error) {
	c := r.command(p, args...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("%s: p2pshare %s: %v: %s", p.name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// startSeed starts `p2pshare seed` for p and waits for its listen line and
// its API socket.
func (r *runner) startSeed(ctx context.Context, p *peerNode, boot ...string) error {
	args := []string{"seed", "--listen", fmt.Sprintf("/ip4/%s/tcp/%d", p.ip, r.port(p))}
	for _, b := range boot {
		if b != "" {
			args = append(args, "--bootstrap", b)
		}
	}
	if p.upload != "" {
		args = append(args, "--max-upload", p.upload)
	}
	args = append(args, p.flags...)
	c := r.command(p, args...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(r.out, "logs", p.name+"-seed.log"))
	if err != nil {
		return err
	}
	c.Stderr = logf
	if err := c.Start(); err != nil {
		return err
	}
	r.procs.add(c)
	p.seed, p.stopc = c, make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		c.Wait()
		logf.Close()
		r.procs.done(c)
		close(p.stopc)
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			return fmt.Errorf("%s: seed printed %q", p.name, l)
		}
		p.addr = addr
	case <-p.stopc:
		return fmt.Errorf("%s: seed exited at start (see %s)", p.name, logf.Name())
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: seed did not start within 30 s", p.name)
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the local API so that add goes through the seed.
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(filepath.Join(p.repo, "api.sock")); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s: seed API socket never appeared", p.name)
}

// stopSeed stops p's seed: SIGTERM, or SIGKILL if kill is set.
func (r *runner) stopSeed(p *peerNode, kill bool) {
	if p.seed == nil {
		return
	}
	if kill {
		p.seed.Process.Kill()
	} else {
		p.seed.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.stopc:
	case <-time.After(15 * time.Second):
		p.seed.Process.Kill()
		<-p.stopc
	}
	p.seed = nil
}

// point is one progress sample of a download.
type point struct {
	T     float64 `json:"t"` // seconds since the scenario's start
	Bytes uint64  `json:"bytes"`
}

// getResult is what one `p2pshare get` reported.
type getResult struct {
	Peer    string            `json:"peer"`
	Bytes   uint64            `json:"bytes"`
	Seconds float64           `json:"seconds"`
	Start   float64           `json:"start"`   // seconds since the scenario's start, at launch
	Finish  float64           `json:"finish"`  // seconds since the scenario's start
	From    map[string]uint64 `json:"from"`    // bytes by source peer name
	Relayed map[string]uint64 `json:"relayed"` // the part of From that came through a relay
	Wasted  uint64            `json:"wasted"`  // bytes received but not used
	// WastedFrom is Wasted by source peer name.
	WastedFrom map[string]uint64 `json:"wasted_from,omitempty"`
	SHA256OK   bool              `json:"sha256_ok"`
	Attempts   int               `json:"attempts"`
	ExitCode   int               `json:"exit_code,omitempty"` // a failed get's
	Progress   []point           `json:"progress"`
	Err        string            `json:"error,omitempty"`
	// Proc is the get process's whole life, from outside: start to exit
	// (with --seed, until it was stopped), CPU and peak RSS.
	Proc proc `json:"process"`
}

// get runs `p2pshare --json get` for p, recording progress. finished (if
// set) is called once the download ends, well or badly; with keepSeeding
// the process stays up after its summary (as --seed) until stop closes.
func (r *runner) get(ctx context.Context, p *peerNode, root, out string, boot []string, keepSeeding bool, stop <-chan struct{}, finished func()) (*getResult, error) {
	args := []string{"--json", "get", root, "-o", out, "--timeout", r.timeout.String(),
		"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", p.ip, r.port(p))}
	for _, b := range boot {
		args = append(args, "--bootstrap", b)
	}
	if p.upload != "" {
		args = append(args, "--max-upload", p.upload)
	}
	if keepSeeding {
		args = append(args, "--seed")
	}
	c := r.command(p, args...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(r.out, "logs", p.name+"-get.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.Stderr = logf
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return nil, err
	}
	r.procs.add(c)
	defer r.procs.done(c)
	res := &getResult{Peer: p.name, Start: t0.Sub(r.start).Seconds(), From: map[string]uint64{}, Relayed: map[string]uint64{}}
	var once sync.Once
	finish := func() {
		if finished != nil {
			once.Do(finished)
		}
	}
	defer finish()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var sawSummary bool
	for sc.Scan() {
		var ev struct {
			Type      string            `json:"type"`
			BytesDone uint64            `json:"bytes_done"`
			Bytes     uint64            `json:"bytes"`
			Seconds   float64           `json:"seconds"`
			From      map[string]uint64 `json:"from"`
			Relayed   map[string]uint64 `json:"relayed_from"`
			Wasted    uint64            `json:"wasted"`
			WastedBy  map[string]uint64 `json:"wasted_from"`
			Message   string            `json:"message"`
			ExitCode  int               `json:"exit_code"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		now := time.Since(r.start).Seconds()
		switch ev.Type {
		case "status":
			res.Progress = append(res.Progress, point{now, ev.BytesDone})
		case "summary":
			sawSummary = true
			res.Bytes, res.Seconds, res.Finish, res.Wasted = ev.Bytes, ev.Seconds, now, ev.Wasted
			res.Progress = append(res.Progress, point{now, ev.Bytes})
			for id, b := range ev.From {
				res.From[r.nameOf(id)] += b
			}
			for id, b := range ev.Relayed {
				res.Relayed[r.nameOf(id)] += b
			}
			for id, b := range ev.WastedBy {
				if res.WastedFrom == nil {
					res.WastedFrom = map[string]uint64{}
				}
				res.WastedFrom[r.nameOf(id)] += b
			}
			finish()
			if keepSeeding {
				go func() {
					select {
					case <-stop:
					case <-ctx.Done():
					}
					c.Process.Signal(syscall.SIGTERM)
				}()
			}
		case "error":
			res.Err, res.ExitCode = ev.Message, ev.ExitCode
		}
	}
	err = c.Wait()
	res.Proc = procOf(c, time.Since(t0))
	if !sawSummary {
		if res.Err == "" {
			res.Err = fmt.Sprintf("get exited: %v", err)
		}
		return res, fmt.Errorf("%s: %s", p.name, res.Err)
	}
	return res, nil
}
