package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// proc is what one whole process cost, measured from outside: wall time
// from start to exit, and CPU seconds (user + system) from its rusage.
type proc struct {
	Wall   float64 `json:"wall_s"`
	CPU    float64 `json:"cpu_s"`
	Sys    float64 `json:"sys_s"`        // the kernel's part of CPU
	RSSMiB float64 `json:"peak_rss_mib"` // peak resident set (ru_maxrss)
}

func procOf(c *exec.Cmd, wall time.Duration) proc {
	p := proc{Wall: wall.Seconds()}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		p.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		p.Sys = time.Duration(ru.Stime.Nano()).Seconds()
		p.RSSMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	return p
}

// timed runs c to its end and returns its cost.
func (r *runner) timed(c *exec.Cmd, log string) (proc, error) {
	logf, err := os.OpenFile(filepath.Join(r.out, "logs", log), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return proc{}, err
	}
	defer logf.Close()
	c.Stdout, c.Stderr = logf, logf
	t0 := time.Now()
	if err := c.Start(); err != nil {
		return proc{}, err
	}
	r.procs.add(c)
	err = c.Wait()
	r.procs.done(c)
	if err != nil {
		return proc{}, fmt.Errorf("%s: %v (see %s)", strings.Join(c.Args, " "), err, logf.Name())
	}
	return procOf(c, time.Since(t0)), nil
}

// server is a long-running process (a seed or a raw sender) whose whole
// life is measured: from start until it exits after SIGTERM.
type server struct {
	c     *exec.Cmd
	t0    time.Time
	addr  string
	exitc chan struct{}
}

// startRaw starts `rawstream send` and waits for its address.
func (r *runner) startRaw(ctx context.Context, size int64) (*server, error) {
	c := exec.Command(r.raw, "send", "-bytes", fmt.Sprint(size))
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(r.out, "logs", "rawstream-send.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	c.Stderr = logf
	s := &server{c: c, t0: time.Now(), exitc: make(chan struct{})}
	if err := c.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	r.procs.add(c)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		c.Wait()
		logf.Close()
		r.procs.done(c)
		close(s.exitc)
	}()
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			return nil, fmt.Errorf("rawstream send printed %q", l)
		}
		s.addr = addr
		return s, nil
	case <-s.exitc:
		return nil, fmt.Errorf("rawstream send exited at start (see %s)", logf.Name())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop ends the server with SIGTERM and returns its whole life's cost.
func (s *server) stop() proc {
	s.c.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exitc:
	case <-time.After(15 * time.Second):
		s.c.Process.Kill()
		<-s.exitc
	}
	return procOf(s.c, time.Since(s.t0))
}

// seedServer starts a fresh `p2pshare seed` for p (its repo already holds
// what it serves) and measures it as a server.
func (r *runner) seedServer(ctx context.Context, p *peerNode) (*server, error) {
	t0 := time.Now()
	if err := r.startSeed(ctx, p); err != nil {
		return nil, err
	}
	return &server{c: p.seed, t0: t0, addr: p.addr, exitc: p.stopc}, nil
}

// pair is one transfer between two whole processes.
type pair struct {
	Seconds float64 `json:"seconds"` // the receiving process, start to exit
	Sender  proc    `json:"sender"`
	Recv    proc    `json:"receiver"`
}

func (p pair) mbs(size int64) float64 { return float64(size) / 1e6 / p.Seconds }

// wholeResult is the whole scenario's outcome.
type wholeResult struct {
	Size       int64   `json:"size"`
	GetTmpfs   pair    `json:"get_tmpfs"`
	RawMemory  pair    `json:"raw_memory"`
	GetDisk    pair    `json:"get_disk"`
	RawDisk    pair    `json:"raw_disk"`
	SmallGetMs float64 `json:"small_get_median_ms"`
	// SmallKeptMs is the same get into a repo made before (a user's every
	// get but the first), each run of a file of its own.
	SmallKeptMs float64 `json:"small_get_kept_repo_median_ms"`
	SmallRawMs  float64 `json:"small_raw_median_ms"`
}

// warmMemory writes n bytes to a file in the tmpfs dir and removes it:
// the machine's memory is then backed, as it is on one that has run for
// a while. On a VM whose hypervisor backs guest memory on first touch
// (this one), the first write of 2 GiB into tmpfs took 2.2-6.0 s of
// system time and the same write into memory freed a moment before
// 0.3 s a GiB; without this, that cost lands in whichever measured run
// first grows the page cache (a get, which writes 1 GiB, not the raw
// receiver into memory, which writes none), and not in the others.
func warmMemory(dir string, n int64) error {
	f, err := os.CreateTemp(dir, "warm-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, mib)
	for ; n > 0; n -= mib {
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("warming memory: %w", err)
		}
	}
	return nil
}

// smallSize and smallRuns: the fixed cost is the median of smallRuns
// fresh processes fetching smallSize bytes.
const (
	smallSize = 1 * mib
	smallRuns = 15
)

// whole measures p2pshare as users meet it: a `p2pshare seed` process and
// a fresh `p2pshare get` process over loopback TCP (in either mode),
// timed from outside, CPU seconds from each process's rusage, beside a
// raw libp2p stream between two processes (testnet/rawstream) in the same
// run; into tmpfs against the raw stream into memory, onto the disk
// (synced) against the raw stream written to the same disk and synced.
// Then the fixed cost: a fresh get of 1 MiB against a fresh raw receiver
// of 1 MiB, each the median of smallRuns, the get both with a new repo
// (a user's first get) and with one made before (every later get, each
// run of a file of its own, so that nothing is there already).
func (r *runner) whole(ctx context.Context, cfg config) (*wholeResult, error) {
	size := r.size(cfg, 1024, 1024)
	shm, err := os.MkdirTemp("/dev/shm", "p2ps-whole-")
	if err != nil {
		return nil, fmt.Errorf("whole needs a tmpfs at /dev/shm: %w", err)
	}
	defer os.RemoveAll(shm)
	disk := filepath.Join(mustAbs(r.out), "data")
	if r.raw == "" {
		r.raw = filepath.Join(r.out, "rawstream")
		if err := build(ctx, "./testnet/rawstream", r.raw); err != nil {
			return nil, err
		}
	}
	if cfg.fixed {
		size = 0 // the large transfers are skipped
		fmt.Printf("whole -fixed: the fixed cost of %d MiB, a fresh `p2pshare get` beside a fresh raw receiver (median of %d)\n", smallSize/mib, smallRuns)
	} else {
		fmt.Printf("whole: %d MiB from a `p2pshare seed` process to a fresh `p2pshare get` process over loopback TCP, beside a raw libp2p stream between two processes; then the fixed cost of %d MiB (median of %d)\n", size/mib, smallSize/mib, smallRuns)
	}
	seed, err := r.loopPeer("whole-seed")
	if err != nil {
		return nil, err
	}
	var path, sum, root string
	if size > 0 {
		if path, sum, err = r.makeFile("whole.bin", size); err != nil {
			return nil, err
		}
	}
	small, smallSum, err := r.makeFile("small.bin", smallSize)
	if err != nil {
		return nil, err
	}
	// One file per run of the kept repo, so that none is there already.
	var kept, keptSums, keptRoots []string
	for i := range smallRuns {
		f, sum, err := r.makeFile(fmt.Sprintf("small%d.bin", i), smallSize)
		if err != nil {
			return nil, err
		}
		kept, keptSums = append(kept, f), append(keptSums, sum)
	}
	if size > 0 {
		fmt.Printf("warming memory first: %d MiB written to tmpfs and removed (see warmMemory)\n", 2*size/mib)
		if err := warmMemory(shm, 2*size); err != nil {
			return nil, err
		}
	}
	// A user shares a file written some time before, not this instant:
	// let the files' timestamps age past the seed's trust margin for
	// identities (peer.identityMargin) before add.
	syscall.Sync()
	time.Sleep(3 * time.Second)
	if size > 0 {
		out, err := r.run(seed, "-q", "add", path)
		if err != nil {
			return nil, err
		}
		root = strings.TrimSpace(out)
	}
	out, err := r.run(seed, "-q", "add", small)
	if err != nil {
		return nil, err
	}
	smallRoot := strings.TrimSpace(out)
	if out, err = r.run(seed, append([]string{"-q", "add"}, kept...)...); err != nil {
		return nil, err
	}
	if keptRoots = strings.Fields(out); len(keptRoots) != smallRuns {
		return nil, fmt.Errorf("add of %d files printed %q", smallRuns, out)
	}

	n := 0
	// getOnce runs a get of root into dir in peer d's repo, or a new
	// repo if d is nil.
	getOnce := func(d *peerNode, root, dir, sum string) (proc, error) {
		n++
		if d == nil {
			var err error
			if d, err = r.loopPeer(fmt.Sprintf("whole-get%d", n)); err != nil {
				return proc{}, err
			}
			defer os.RemoveAll(d.repo)
		}
		dst := filepath.Join(dir, fmt.Sprintf("get%d.bin", n))
		defer os.Remove(dst)
		syscall.Sync() // the last run's writeback is not this one's
		c := r.command(d, "-q", "get", root, "-o", dst, "--bootstrap", seed.addr,
			"--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", r.timeout.String())
		p, err := r.timed(c, d.name+".log")
		if err == nil && fileSHA(dst) != sum {
			err = fmt.Errorf("%s: %w", d.name, errVerify)
		}
		return p, err
	}
	rawOnce := func(s *server, size int64, dir string) (proc, error) {
		args := []string{"recv", "-bytes", fmt.Sprint(size), "-addr", s.addr}
		if dir != "" {
			args = append(args, "-o", dir)
		}
		syscall.Sync()
		return r.timed(exec.Command(r.raw, args...), "rawstream-recv.log")
	}
	getPair := func(dir string) (pair, error) {
		s, err := r.seedServer(ctx, seed)
		if err != nil {
			return pair{}, err
		}
		g, err := getOnce(nil, root, dir, sum)
		sp := s.stop()
		seed.seed = nil
		return pair{g.Wall, sp, g}, err
	}
	rawPair := func(dir string) (pair, error) {
		s, err := r.startRaw(ctx, size)
		if err != nil {
			return pair{}, err
		}
		g, err := rawOnce(s, size, dir)
		return pair{g.Wall, s.stop(), g}, err
	}
	res := &wholeResult{Size: size}
	// Each p2pshare run beside its reference, one after the other.
	for _, m := range []struct {
		p   *pair
		run func() (pair, error)
	}{
		{&res.RawMemory, func() (pair, error) { return rawPair("") }},
		{&res.GetTmpfs, func() (pair, error) { return getPair(shm) }},
		{&res.RawDisk, func() (pair, error) { return rawPair(disk) }},
		{&res.GetDisk, func() (pair, error) { return getPair(disk) }},
	} {
		if size == 0 {
			break
		}
		if *m.p, err = m.run(); err != nil {
			return nil, err
		}
	}

	// The fixed cost: fresh receivers against one running server each.
	medianOf := func(run func(i int) (proc, error)) (float64, error) {
		var ms []float64
		for i := range smallRuns {
			p, err := run(i)
			if err != nil {
				return 0, err
			}
			ms = append(ms, p.Wall*1000)
		}
		sort.Float64s(ms)
		return ms[len(ms)/2], nil
	}
	s, err := r.seedServer(ctx, seed)
	if err != nil {
		return nil, err
	}
	res.SmallGetMs, err = medianOf(func(int) (proc, error) { return getOnce(nil, smallRoot, shm, smallSum) })
	if err == nil {
		var user *peerNode
		if user, err = r.loopPeer("whole-user"); err == nil {
			res.SmallKeptMs, err = medianOf(func(i int) (proc, error) { return getOnce(user, keptRoots[i], shm, keptSums[i]) })
			os.RemoveAll(user.repo)
		}
	}
	s.stop()
	seed.seed = nil
	if err != nil {
		return nil, err
	}
	if s, err = r.startRaw(ctx, smallSize); err != nil {
		return nil, err
	}
	res.SmallRawMs, err = medianOf(func(int) (proc, error) { return rawOnce(s, smallSize, "") })
	s.stop()
	if err != nil {
		return nil, err
	}
	if path != "" {
		os.Remove(path)
	}
	os.Remove(small)
	for _, f := range kept {
		os.Remove(f)
	}

	t := table{head: []string{"measure", "p2pshare", "raw stream", "ratio", "target"}}
	t.rows = res.rows()
	t.print()
	fmt.Println("whole processes timed from outside (start to exit); CPU = user + system seconds of each process's whole life (rusage), the system part in brackets")
	r.write("whole", cfg, res, nil)
	return res, nil
}

// rows gives the whole scenario's table rows: figure, reference, ratio
// and target of each measure.
func (w *wholeResult) rows() [][]string {
	mb := func(p pair) string { return fmt.Sprintf("%.0f MB/s", p.mbs(w.Size)) }
	cpu := func(p proc) string { return fmt.Sprintf("%.2f s (sys %.2f)", p.CPU, p.Sys) }
	x := func(a, b float64) string { return fmt.Sprintf("%.2f", a/b) }
	var rows [][]string
	for _, m := range []struct {
		name      string
		get, raw  pair
		rateGoal  string
		reference string
	}{
		{"into tmpfs", w.GetTmpfs, w.RawMemory, ">= 0.7", "into memory"},
		{"onto disk, synced", w.GetDisk, w.RawDisk, ">= 0.7", "to the same disk, synced"},
	} {
		if w.Size == 0 {
			break // -fixed
		}
		label := fmt.Sprintf("%d MiB seed -> get %s", w.Size/mib, m.name)
		rows = append(rows,
			[]string{label, mb(m.get), mb(m.raw) + " (" + m.reference + ")", x(m.get.mbs(w.Size), m.raw.mbs(w.Size)), m.rateGoal},
			[]string{"  CPU, seed vs raw sender", cpu(m.get.Sender), cpu(m.raw.Sender), x(m.get.Sender.CPU, m.raw.Sender.CPU), "<= 1.3"},
			[]string{"  CPU, get vs raw receiver", cpu(m.get.Recv), cpu(m.raw.Recv), x(m.get.Recv.CPU, m.raw.Recv.CPU), "<= 1.5"},
		)
	}
	rows = append(rows, []string{fmt.Sprintf("fresh get of %d MiB, new repo, median of %d", smallSize/mib, smallRuns),
		fmt.Sprintf("%.0f ms", w.SmallGetMs), fmt.Sprintf("%.0f ms (fresh raw receiver)", w.SmallRawMs), x(w.SmallGetMs, w.SmallRawMs), "<= 2.0"})
	rows = append(rows, []string{fmt.Sprintf("fresh get of %d MiB, repo made before", smallSize/mib),
		fmt.Sprintf("%.0f ms", w.SmallKeptMs), fmt.Sprintf("%.0f ms (fresh raw receiver)", w.SmallRawMs), x(w.SmallKeptMs, w.SmallRawMs), "<= 2.0"})
	return rows
}
