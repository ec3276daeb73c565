package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	peers, sizeMiB, capMbit, roots int
	ks                             string
	slow, quick                    bool
	fixed                          bool // whole: the fixed cost alone
}

const mib = 1 << 20

// size returns the file size for a scenario: the flag, else def (netns),
// defLoop (loopback) or 4 MiB with -quick.
func (r *runner) size(cfg config, def, defLoop int) int64 {
	switch {
	case cfg.sizeMiB > 0:
		return int64(cfg.sizeMiB) * mib
	case cfg.quick:
		return 4 * mib
	case r.mode == "loopback":
		return int64(defLoop) * mib
	}
	return int64(def) * mib
}

func (r *runner) runScenario(ctx context.Context, name string, cfg config) error {
	r.start = time.Now()
	switch name {
	case "demo":
		return r.demo(ctx, cfg)
	case "scale":
		_, err := r.scale(ctx, cfg)
		return err
	case "slowseed":
		_, err := r.slowSeed(ctx, cfg)
		return err
	case "flashcrowd":
		_, err := r.flashcrowd(ctx, cfg)
		return err
	case "churn":
		return r.churn(ctx, cfg)
	case "dht":
		return r.dht(ctx, cfg)
	case "whole":
		_, err := r.whole(ctx, cfg)
		return err
	case "memory":
		_, err := r.memory(ctx, cfg)
		return err
	case "bench":
		return r.bench(ctx, cfg)
	case "nat":
		return r.nat(ctx, cfg)
	}
	return fmt.Errorf("unknown scenario %q (demo, scale, slowseed, flashcrowd, churn, dht, whole, memory, bench, nat)", name)
}

// seedFile starts a seed on each peer (bootstrapping from the first) and
// adds the same file to each; it returns the root CID.
func (r *runner) seedFile(ctx context.Context, seeds []*peerNode, path string) (string, error) {
	var root string
	for i, s := range seeds {
		boot := ""
		if i > 0 {
			boot = seeds[0].addr
		}
		if err := r.startSeed(ctx, s, boot); err != nil {
			return "", err
		}
		out, err := r.run(s, "-q", "add", path)
		if err != nil {
			return "", err
		}
		root = strings.TrimSpace(out)
	}
	return root, nil
}

// downloadAll runs get on every downloader at once; with keepSeeding each
// keeps serving until all have finished.
func (r *runner) downloadAll(ctx context.Context, dls []*peerNode, root, boot, sum string, keepSeeding bool) ([]*getResult, error) {
	// The test file was just written: its writeback is not the download's.
	syscall.Sync()
	res := make([]*getResult, len(dls))
	errs := make([]error, len(dls))
	stop := make(chan struct{})
	var wg, finished sync.WaitGroup
	finished.Add(len(dls))
	go func() {
		// Everyone serves until the last one finishes.
		finished.Wait()
		close(stop)
	}()
	for i, d := range dls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(mustAbs(r.out), "data", d.name+".out")
			res[i], errs[i] = r.get(ctx, d, root, out, []string{boot}, keepSeeding, stop, finished.Done)
			if res[i] != nil {
				res[i].Attempts = 1
				res[i].SHA256OK = errs[i] == nil && fileSHA(out) == sum
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	for _, g := range res {
		if !g.SHA256OK {
			return res, fmt.Errorf("%s: %w", g.Peer, errVerify)
		}
	}
	return res, nil
}

func mbps(bytes uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(bytes) * 8 / secs / 1e6
}

func (r *runner) demo(ctx context.Context, cfg config) error {
	n := cfg.peers
	if n == 0 {
		n = 5
		if cfg.quick {
			n = 3
		}
	}
	size := r.size(cfg, 64, 64)
	fmt.Printf("demo: %d peers; %s adds a %d MiB file, the other %d get it at once (upload cap %d Mbit/s each)\n", n, "p0", size/mib, n-1, cfg.capMbit)
	var peers []*peerNode
	for i := range n {
		p, err := r.newPeer(fmt.Sprintf("p%d", i), cfg.capMbit)
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	path, sum, err := r.makeFile("demo.bin", size)
	if err != nil {
		return err
	}
	root, err := r.seedFile(ctx, peers[:1], path)
	if err != nil {
		return err
	}
	fmt.Printf("p0 added %s\n", root)
	res, err := r.downloadAll(ctx, peers[1:], root, peers[0].addr, sum, true)
	sources := []string{}
	for _, p := range peers {
		sources = append(sources, p.name)
	}
	t := table{head: append([]string{"peer", "MiB", "seconds", "Mbit/s", "sha256"}, prefix("from ", sources)...)}
	for _, g := range res {
		if g == nil {
			continue
		}
		row := []string{g.Peer, fmt.Sprintf("%.1f", float64(g.Bytes)/mib), fmt.Sprintf("%.2f", g.Seconds), fmt.Sprintf("%.0f", mbps(g.Bytes, g.Seconds)), okStr(g.SHA256OK)}
		for _, s := range sources {
			row = append(row, fmt.Sprintf("%.1f", float64(g.From[s])/mib))
		}
		t.rows = append(t.rows, row)
	}
	t.print()
	multi := 0
	for _, g := range res {
		if g != nil && len(g.From) > 1 {
			multi++
		}
	}
	fmt.Printf("%d of %d downloads drew on several peers\n", multi, len(res))
	r.write("demo", cfg, map[string]any{"root": root, "size": size, "downloads": res}, res)
	return err
}

func prefix(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}

func okStr(b bool) string {
	if b {
		return "ok"
	}
	return "FAIL"
}

// scaleRow is one line of the scale scenario.
type scaleRow struct {
	K          int     `json:"k"`
	CapMbit    float64 `json:"cap_sum_mbit"`
	Mbit       float64 `json:"mbit"`
	Ratio      float64 `json:"ratio"`
	Seconds    float64 `json:"seconds"` // the get process, start to exit
	Sources    int     `json:"sources"`
	SlowSeeder bool    `json:"slow_seeder,omitempty"`
	// Tail is the rate of the download's last 10 % of bytes over the
	// rate of the rest (1: the tail is as fast).
	Tail float64 `json:"tail_ratio"`
}

// tailRatio compares, in a download's progress, the rate of its last
// 10 % of bytes with that of the first 90 % (from the first byte): 1
// when the end runs as fast as the rest, below 1 when the last leaves
// wait on a few links. It returns 0 if the series is too short to say.
func tailRatio(ps []point) float64 {
	if len(ps) < 2 {
		return 0
	}
	total := float64(ps[len(ps)-1].Bytes)
	start := -1.0
	for _, p := range ps {
		if p.Bytes > 0 {
			break
		}
		start = p.T
	}
	// t90: when 90 % had arrived, interpolated between samples.
	t90 := -1.0
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if float64(b.Bytes) >= 0.9*total {
			f := 0.0
			if b.Bytes > a.Bytes {
				f = (0.9*total - float64(a.Bytes)) / float64(b.Bytes-a.Bytes)
			}
			t90 = a.T + max(f, 0)*(b.T-a.T)
			break
		}
	}
	end := ps[len(ps)-1].T
	if start < 0 {
		start = ps[0].T
	}
	if t90 <= start || end <= t90 {
		return 0
	}
	return (0.1 * total / (end - t90)) / (0.9 * total / (t90 - start))
}

// swarm runs one download from k seeders (the last one at slowCap if > 0).
func (r *runner) swarm(ctx context.Context, cfg config, tag string, k int, slowCap int, size int64) (*getResult, error) {
	var seeds []*peerNode
	for i := range k {
		c := cfg.capMbit
		if slowCap > 0 && i == k-1 {
			c = slowCap
		}
		p, err := r.newPeer(fmt.Sprintf("%s-s%d", tag, i), c)
		if err != nil {
			return nil, err
		}
		seeds = append(seeds, p)
	}
	d, err := r.newPeer(tag+"-d", 0)
	if err != nil {
		return nil, err
	}
	path, sum, err := r.makeFile(tag+".bin", size)
	if err != nil {
		return nil, err
	}
	root, err := r.seedFile(ctx, seeds, path)
	if err != nil {
		return nil, err
	}
	res, err := r.downloadAll(ctx, []*peerNode{d}, root, seeds[0].addr, sum, false)
	for _, s := range seeds {
		r.stopSeed(s, false)
	}
	os.Remove(path)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

func (r *runner) scale(ctx context.Context, cfg config) ([]scaleRow, error) {
	var ks []int
	for _, s := range strings.Split(cfg.ks, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return nil, fmt.Errorf("bad -k %q", cfg.ks)
		}
		ks = append(ks, k)
	}
	fmt.Printf("scale: k seeders (upload cap %d Mbit/s each) to 1 downloader, k = %s\n", cfg.capMbit, cfg.ks)
	var rows []scaleRow
	var series []*getResult
	t := table{head: []string{"k", "sum of caps Mbit/s", "got Mbit/s", "ratio", "get process s", "tail rate / rest", "sources"}}
	for _, k := range ks {
		// 64 MiB per seeder (the size): about 5.6 s at every k,
		// timed as the get process from start to exit, so its fixed part
		// (start, DHT lookup, dials, the final fsync) counts.
		size := r.size(cfg, 64*k, 64*k)
		g, err := r.swarm(ctx, cfg, fmt.Sprintf("k%d", k), k, 0, size)
		if err != nil {
			return rows, err
		}
		series = append(series, g)
		row := scaleRow{K: k, CapMbit: float64(k * cfg.capMbit), Mbit: mbps(g.Bytes, g.Proc.Wall), Seconds: g.Proc.Wall, Sources: len(g.From), Tail: tailRatio(g.Progress)}
		row.Ratio = row.Mbit / row.CapMbit
		rows = append(rows, row)
		t.rows = append(t.rows, []string{strconv.Itoa(k), fmt.Sprintf("%.0f", row.CapMbit), fmt.Sprintf("%.1f", row.Mbit), fmt.Sprintf("%.2f", row.Ratio), fmt.Sprintf("%.2f", row.Seconds), fmt.Sprintf("%.2f", row.Tail), strconv.Itoa(row.Sources)})
	}
	t.print()
	r.write("scale", cfg, rows, series)
	return rows, nil
}

// slowSeed compares 3 seeders with 3 seeders plus one at a tenth of the cap.
func (r *runner) slowSeed(ctx context.Context, cfg config) (float64, error) {
	size := r.size(cfg, 128, 128)
	fmt.Printf("slowseed: 3 seeders at %d Mbit/s, then the same plus one at %d Mbit/s; %d MiB\n", cfg.capMbit, cfg.capMbit/10, size/mib)
	base, err := r.swarm(ctx, cfg, "fast3", 3, 0, size)
	if err != nil {
		return 0, err
	}
	withSlow, err := r.swarm(ctx, cfg, "slow4", 4, max(cfg.capMbit/10, 1), size)
	if err != nil {
		return 0, err
	}
	ratio := withSlow.Seconds / base.Seconds
	t := table{head: []string{"seeders", "seconds", "Mbit/s"}}
	t.rows = [][]string{
		{"3 fast", fmt.Sprintf("%.2f", base.Seconds), fmt.Sprintf("%.0f", mbps(base.Bytes, base.Seconds))},
		{"3 fast + 1 slow", fmt.Sprintf("%.2f", withSlow.Seconds), fmt.Sprintf("%.0f", mbps(withSlow.Bytes, withSlow.Seconds))},
	}
	t.print()
	fmt.Printf("time with the slow seeder / without: %.2f (target <= 1.10)\n", ratio)
	r.write("slowseed", cfg, map[string]any{"without": base, "with_slow": withSlow, "ratio": ratio}, nil)
	return ratio, nil
}

// crowdResult is the flashcrowd outcome.
type crowdResult struct {
	N            int          `json:"n"`
	Size         int64        `json:"size"`
	LowerBound   float64      `json:"lower_bound_s"`
	ClientServer float64      `json:"client_server_s"`
	Last         float64      `json:"last_s"`
	Downloads    []*getResult `json:"downloads"`
}

func (r *runner) flashcrowd(ctx context.Context, cfg config) (*crowdResult, error) {
	n := cfg.peers
	if n == 0 {
		n = 8
		if cfg.quick {
			n = 2
		}
	}
	size := r.size(cfg, 128, 128)
	capBytes := float64(cfg.capMbit) * 1e6 / 8
	F := float64(size)
	lb, cs := crowdBounds(F, capBytes, capBytes, n)
	fmt.Printf("flashcrowd: 1 seeder + %d downloaders starting together, %d MiB, every upload capped at %d Mbit/s\n", n, size/mib, cfg.capMbit)
	// Names (and so repos, and the seed's repo lock) are the crowd's own:
	// bench runs two crowds in one testnet.
	tag := fmt.Sprintf("c%d", n)
	seed, err := r.newPeer(tag+"-seed", cfg.capMbit)
	if err != nil {
		return nil, err
	}
	defer r.stopSeed(seed, false)
	var dls []*peerNode
	for i := range n {
		p, err := r.newPeer(fmt.Sprintf("%s-d%d", tag, i), cfg.capMbit)
		if err != nil {
			return nil, err
		}
		dls = append(dls, p)
	}
	path, sum, err := r.makeFile(tag+".bin", size)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	root, err := r.seedFile(ctx, []*peerNode{seed}, path)
	if err != nil {
		return nil, err
	}
	// The crowd writes n copies of the file at once: memory is warmed
	// first, as whole does (see warmMemory), or this VM's first touch of
	// guest memory is charged to the crowd. Three runs of 1+16 each way,
	// alternating, the cold ones 20 s after a warm-up: 8.59-8.89 s warm,
	// 8.91-9.91 s cold.
	if err := warmMemory("/dev/shm", 2*int64(n)*size); err != nil {
		return nil, err
	}
	res, err := r.downloadAll(ctx, dls, root, seed.addr, sum, true)
	out := &crowdResult{N: n, Size: size, LowerBound: lb, ClientServer: cs, Downloads: res}
	// The crowd starts when its first get is launched (downloadAll syncs
	// the disk before that: the test file's writeback is not the crowd's).
	start := math.Inf(1)
	for _, g := range res {
		if g != nil {
			start = math.Min(start, g.Start)
		}
	}
	t := table{head: []string{"peer", "finish s", "lower bound s", "x bound", "client-server s", "sha256"}}
	sort.Slice(res, func(i, j int) bool { return res[i] != nil && res[j] != nil && res[i].Finish < res[j].Finish })
	for _, g := range res {
		if g == nil {
			continue
		}
		fin := g.Finish - start
		out.Last = math.Max(out.Last, fin)
		t.rows = append(t.rows, []string{g.Peer, fmt.Sprintf("%.2f", fin), fmt.Sprintf("%.2f", lb), fmt.Sprintf("%.2f", fin/lb), fmt.Sprintf("%.2f", cs), okStr(g.SHA256OK)})
	}
	t.print()
	fmt.Printf("last finish %.2f s = %.2fx the lower bound (target <= 1.15 for 8, 1.5 for 16), %.1fx faster than client-server\n", out.Last, out.Last/lb, cs/out.Last)
	r.write(fmt.Sprintf("flashcrowd-%d", n), cfg, out, res)
	return out, err
}

func (r *runner) churn(ctx context.Context, cfg config) error {
	size := r.size(cfg, 192, 128)
	const nSeeds, nDls = 3, 3
	fmt.Printf("churn: %d seeders SIGKILLed and restarted at random while %d peers download %d MiB (caps %d Mbit/s)\n", nSeeds, nDls, size/mib, cfg.capMbit)
	var seeds, dls []*peerNode
	for i := range nSeeds {
		p, err := r.newPeer(fmt.Sprintf("s%d", i), cfg.capMbit)
		if err != nil {
			return err
		}
		seeds = append(seeds, p)
	}
	for i := range nDls {
		p, err := r.newPeer(fmt.Sprintf("d%d", i), cfg.capMbit)
		if err != nil {
			return err
		}
		dls = append(dls, p)
	}
	path, sum, err := r.makeFile("churn.bin", size)
	if err != nil {
		return err
	}
	root, err := r.seedFile(ctx, seeds, path)
	if err != nil {
		return err
	}
	boot := seeds[0].addr
	cctx, stopChurn := context.WithCancel(ctx)
	var kills int
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() { // the chaos monkey: never more than two seeders down
		defer cwg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-cctx.Done():
				return
			case <-time.After(time.Duration(200+rng.IntN(600)) * time.Millisecond):
			}
			s := seeds[rng.IntN(nSeeds)]
			if s.seed == nil {
				continue
			}
			r.stopSeed(s, true)
			kills++
			select {
			case <-cctx.Done():
			case <-time.After(time.Duration(300+rng.IntN(1200)) * time.Millisecond):
			}
			b := boot
			if s == seeds[0] {
				b = seeds[1].addr
			}
			if err := r.startSeed(ctx, s, b); err != nil {
				fmt.Println("restart:", err)
			}
		}
	}()
	res := make([]*getResult, nDls)
	var wg sync.WaitGroup
	for i, d := range dls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(mustAbs(r.out), "data", d.name+".out")
			for attempt := 1; attempt <= 20 && ctx.Err() == nil; attempt++ {
				// A user would list several bootstrap peers: any live
				// seeder will do.
				var boots []string
				for _, s := range seeds {
					boots = append(boots, s.addr)
				}
				g, err := r.get(ctx, d, root, out, boots, false, nil, nil)
				if err == nil {
					g.Attempts = attempt
					g.SHA256OK = fileSHA(out) == sum
					res[i] = g
					return
				}
				res[i] = g
			}
		}()
	}
	wg.Wait()
	stopChurn()
	cwg.Wait()
	t := table{head: []string{"peer", "attempts", "seconds (last attempt)", "sha256"}}
	var failed []string
	for i, g := range res {
		if g == nil || !g.SHA256OK {
			failed = append(failed, dls[i].name)
			t.rows = append(t.rows, []string{dls[i].name, "-", "-", "FAIL"})
			continue
		}
		t.rows = append(t.rows, []string{g.Peer, strconv.Itoa(g.Attempts), fmt.Sprintf("%.2f", g.Seconds), okStr(g.SHA256OK)})
	}
	t.print()
	fmt.Printf("%d seeder kills (SIGKILL) during the downloads\n", kills)
	r.write("churn", cfg, map[string]any{"kills": kills, "downloads": res}, res)
	if len(failed) > 0 {
		return fmt.Errorf("downloads failed under churn: %v", failed)
	}
	return nil
}

func (r *runner) dht(ctx context.Context, cfg config) error {
	n := cfg.peers
	if n == 0 {
		n = 50
		if cfg.quick {
			n = 6
		}
	}
	nRoots := cfg.roots
	if cfg.quick {
		nRoots = 5
	}
	fmt.Printf("dht: %d peers, %d roots provided from random peers, looked up (and fetched: 1 KiB each) from other random peers\n", n, nRoots)
	var peers []*peerNode
	for i := range n {
		p, err := r.newPeer(fmt.Sprintf("n%d", i), 0)
		if err != nil {
			return err
		}
		// Join through up to three earlier peers, as a real node would
		// list several bootstrappers.
		for attempt := 0; attempt < 3; attempt++ { // other bootstrappers on a retry
			var boot []string
			for _, k := range rand.Perm(len(peers))[:min(3, len(peers))] {
				boot = append(boot, peers[k].addr)
			}
			if err = r.startSeed(ctx, p, boot...); err == nil {
				break
			}
			fmt.Printf("%s: %v; retrying\n", p.name, err)
		}
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	type rootAt struct {
		cid, sum string
		by       int
	}
	var roots []rootAt
	for i := range nRoots {
		path, sum, err := r.makeFile(fmt.Sprintf("r%d.bin", i), 1024)
		if err != nil {
			return err
		}
		by := rand.IntN(n)
		out, err := r.run(peers[by], "-q", "add", path)
		if err != nil {
			return err
		}
		roots = append(roots, rootAt{strings.TrimSpace(out), sum, by})
	}
	// Provides run in the background of each seed: give them a moment.
	time.Sleep(2 * time.Second)
	var lat []float64
	ok := 0
	for i, rt := range roots {
		q := rand.IntN(n - 1)
		if q >= rt.by {
			q++
		}
		out := filepath.Join(mustAbs(r.out), "data", fmt.Sprintf("got%d", i))
		t0 := time.Now()
		_, err := r.run(peers[q], "get", rt.cid, "-o", out, "--timeout", "10s")
		d := time.Since(t0).Seconds()
		if err == nil && fileSHA(out) == rt.sum {
			ok++
			lat = append(lat, d)
		}
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return math.NaN()
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	t := table{head: []string{"peers", "lookups", "found", "success", "p50 s", "p99 s"}}
	t.rows = [][]string{{strconv.Itoa(n), strconv.Itoa(len(roots)), strconv.Itoa(ok), fmt.Sprintf("%.0f%%", 100*float64(ok)/float64(len(roots))), fmt.Sprintf("%.3f", pct(0.5)), fmt.Sprintf("%.3f", pct(0.99))}}
	t.print()
	fmt.Println("latency = a `p2pshare get` through the querying peer's seed: DHT lookup, dial and a 1 KiB fetch")
	r.write("dht", cfg, map[string]any{"peers": n, "lookups": len(roots), "found": ok, "p50_s": pct(0.5), "p99_s": pct(0.99), "latencies_s": lat}, nil)
	if ok != len(roots) {
		return fmt.Errorf("%d of %d lookups failed", len(roots)-ok, len(roots))
	}
	return nil
}

// bench measures the targets of issue 11 with whole processes timed from
// outside, each beside its reference from the same run, and prints them
// as one table of ratios (in-process Go benchmarks after it, for
// profiling only): 1-2 and 4's fixed cost from whole, 3 and 4's tail
// from scale, 5 from two flash crowds, 6 from memory.
func (r *runner) bench(ctx context.Context, cfg config) error {
	goRows, err := goBenchmarks(ctx)
	if err != nil {
		return err
	}
	// whole and memory use their own sizes whatever -size says for the
	// swarm scenarios.
	own := cfg
	own.sizeMiB = 0
	w, err := r.whole(ctx, own)
	if err != nil {
		return err
	}
	rows, err := r.scale(ctx, cfg)
	if err != nil {
		return err
	}
	crowd8, err := r.flashcrowd(ctx, cfg)
	if err != nil {
		return err
	}
	big := cfg
	big.peers = 16
	if big.quick {
		big.peers = 3
	}
	if big.sizeMiB == 0 && !big.quick {
		big.sizeMiB = 64
	}
	crowd16, err := r.flashcrowd(ctx, big)
	if err != nil {
		return err
	}
	mem, err := r.memory(ctx, own)
	if err != nil {
		return err
	}
	fmt.Printf("\nbench summary (%s mode), issue 11's targets: whole processes timed from outside, each beside its reference in this run\n", r.mode)
	t := table{head: []string{"target", "measure", "figure", "reference", "ratio", "goal"}}
	for _, row := range w.rows() {
		t.rows = append(t.rows, append([]string{wholeTarget(row[0])}, row...))
	}
	for _, s := range rows {
		t.rows = append(t.rows, []string{"3", fmt.Sprintf("scale k=%d, get process start to exit", s.K), fmt.Sprintf("%.1f Mbit/s", s.Mbit), fmt.Sprintf("%.0f Mbit/s (sum of caps)", s.CapMbit), fmt.Sprintf("%.2f", s.Ratio), ">= 0.90"})
	}
	if n := len(rows); n > 0 {
		s := rows[n-1]
		t.rows = append(t.rows, []string{"4", fmt.Sprintf("tail: rate of the last 10 %% (scale k=%d)", s.K), fmt.Sprintf("%.2f", s.Tail), "rate of the first 90 %", fmt.Sprintf("%.2f", s.Tail), ">= ~1.0"})
	}
	for _, c := range []struct {
		r    *crowdResult
		goal string
	}{{crowd8, "<= 1.15"}, {crowd16, "<= 1.5"}} {
		t.rows = append(t.rows, []string{"5", fmt.Sprintf("flashcrowd 1+%d, %d MiB, last finish", c.r.N, c.r.Size/mib), fmt.Sprintf("%.2f s", c.r.Last), fmt.Sprintf("%.2f s (lower bound)", c.r.LowerBound), fmt.Sprintf("%.2f", c.r.Last/c.r.LowerBound), c.goal})
	}
	t.rows = append(t.rows,
		[]string{"6", fmt.Sprintf("get of %d MiB, peak RSS", mem.Size/mib), fmt.Sprintf("%.0f MiB", mem.GetMiB), "150 MiB", fmt.Sprintf("%.2f", mem.GetMiB/150), "< 1"},
		[]string{"6", fmt.Sprintf("seed serving %d gets of it, peak RSS", mem.Downloads), fmt.Sprintf("%.0f MiB", mem.SeedMiB), "200 MiB", fmt.Sprintf("%.2f", mem.SeedMiB/200), "< 1"},
	)
	for _, row := range goRows {
		t.rows = append(t.rows, append([]string{"in-process (profiling only)"}, row...))
	}
	t.print()
	fmt.Printf("bench took %s\n", time.Since(r.start).Round(time.Second))
	return nil
}

// wholeTarget numbers a row of whole's table by the target.
func wholeTarget(measure string) string {
	switch {
	case strings.HasPrefix(measure, "  CPU"):
		return "2"
	case strings.HasPrefix(measure, "fresh get"):
		return "4"
	}
	return "1"
}

// crowdBounds returns the least time in which a seeder of upload uSeed and
// n downloaders of upload uDl each can all get F bytes,
// max(F/uSeed, n*F/(uSeed + n*uDl)), and the client-server time n*F/uSeed.
func crowdBounds(F, uSeed, uDl float64, n int) (lower, clientServer float64) {
	return math.Max(F/uSeed, float64(n)*F/(uSeed+float64(n)*uDl)), float64(n) * F / uSeed
}

// goBenchmarks runs the Go benchmarks that measure against a reference in
// the same run and returns one table row each.
func goBenchmarks(ctx context.Context) ([][]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	fmt.Println("go benchmarks: chunker add, transfer, get (a minute or two) ...")
	// -p 1: one package at a time, or the benchmarks share the cores.
	cmd := exec.CommandContext(ctx, "go", "test", "-p", "1", "-run", "^$", "-bench", "^(BenchmarkAdd|BenchmarkDownload|BenchmarkGet)$", "-benchtime", "2x", "./chunker", "./transfer", "./peer")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go benchmarks: %v\n%s", err, out)
	}
	fmt.Print(string(out))
	metrics := parseBench(string(out))
	f := func(name, key string) string { return fmt.Sprintf("%.0f MB/s", metrics[name][key]) }
	x := func(name, key string) string { return fmt.Sprintf("%.2f", metrics[name][key]) }
	return [][]string{
		{"add (chunker)", f("BenchmarkAdd", "add-MB/s"), f("BenchmarkAdd", "sha256-MB/s") + " (SHA-256, 1 core)", x("BenchmarkAdd", "x-sha256"), ">= 1.0"},
		{"transfer 1 to 1 (in-memory test store)", f("BenchmarkDownload", "get-MB/s"), f("BenchmarkDownload", "raw-MB/s") + " (raw stream)", x("BenchmarkDownload", "x-raw"), ""},
		{"get 1 GiB disk to tmpfs", f("BenchmarkGet", "get-MB/s"), f("BenchmarkGet", "raw-MB/s") + " (raw stream)", x("BenchmarkGet", "x-raw"), ">= 0.7"},
		{"get 1 GiB disk to disk, synced", f("BenchmarkGet", "get-disk-MB/s"), f("BenchmarkGet", "raw-disk-MB/s") + " (raw stream to file, synced)", x("BenchmarkGet", "x-raw-disk"), ""},
	}, nil
}

// parseBench reads `go test -bench` output: benchmark name (without the
// -N suffix) to unit to value.
func parseBench(out string) map[string]map[string]float64 {
	res := map[string]map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "-")
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		res[name] = m
	}
	return res
}
