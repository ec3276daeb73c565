package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// memoryResult is the memory scenario's outcome: peak RSS (ru_maxrss) of
// whole processes.
type memoryResult struct {
	Size       int64   `json:"size"`
	GetMiB     float64 `json:"get_peak_rss_mib"`       // one get of the file
	SeedMiB    float64 `json:"seed_peak_rss_mib"`      // a seed serving Downloads gets at once
	Downloads  int     `json:"downloads"`              // concurrent gets served
	GetsMaxMiB float64 `json:"concurrent_get_max_mib"` // the largest of those gets
}

// memory measures what a large file costs in memory, from outside: a
// fresh `p2pshare get` of it from a seed over loopback, then a fresh seed
// serving four fresh gets of it at once. The outputs go to the disk and
// are removed as each get ends.
func (r *runner) memory(ctx context.Context, cfg config) (*memoryResult, error) {
	size := r.size(cfg, 4096, 4096)
	const downloads = 4
	fmt.Printf("memory: peak RSS of a `get` of %d MiB, then of a `seed` serving %d gets of it at once (loopback)\n", size/mib, downloads)
	seed, err := r.loopPeer("mem-seed")
	if err != nil {
		return nil, err
	}
	path, sum, err := r.makeFile("mem.bin", size)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	out, err := r.run(seed, "-q", "add", path)
	if err != nil {
		return nil, err
	}
	root := strings.TrimSpace(out)
	res := &memoryResult{Size: size, Downloads: downloads}

	// One get, from a seed that has served nobody yet.
	srv, err := r.seedServer(ctx, seed)
	if err != nil {
		return nil, err
	}
	one, err := r.memGets(ctx, root, sum, seed.addr, 1)
	srv.stop()
	if err != nil {
		return nil, err
	}
	res.GetMiB = one[0].RSSMiB

	// A fresh seed serving four at once.
	srv, err = r.seedServer(ctx, seed)
	if err != nil {
		return nil, err
	}
	many, err := r.memGets(ctx, root, sum, seed.addr, downloads)
	res.SeedMiB = srv.stop().RSSMiB
	if err != nil {
		return nil, err
	}
	for _, p := range many {
		res.GetsMaxMiB = max(res.GetsMaxMiB, p.RSSMiB)
	}
	t := table{head: []string{"process", "peak RSS MiB", "target"}}
	t.rows = [][]string{
		{fmt.Sprintf("get of %d MiB", size/mib), fmt.Sprintf("%.0f", res.GetMiB), "< 150"},
		{fmt.Sprintf("seed serving %d gets at once", downloads), fmt.Sprintf("%.0f", res.SeedMiB), "< 200"},
		{fmt.Sprintf("the largest of those %d gets", downloads), fmt.Sprintf("%.0f", res.GetsMaxMiB), ""},
	}
	t.print()
	r.write("memory", cfg, res, nil)
	return res, nil
}

// memGets runs n fresh gets of root at once, checks each output and
// returns each process's cost.
func (r *runner) memGets(ctx context.Context, root, sum, boot string, n int) ([]proc, error) {
	procs := make([]proc, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		d, err := r.loopPeer(fmt.Sprintf("mem-get%d-%d", n, i))
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer os.RemoveAll(d.repo)
			dst := filepath.Join(mustAbs(r.out), "data", d.name+".out")
			defer os.Remove(dst)
			c := r.command(d, "-q", "get", root, "-o", dst, "--bootstrap", boot,
				"--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", r.timeout.String())
			procs[i], errs[i] = r.timed(c, d.name+".log")
			if errs[i] == nil && fileSHA(dst) != sum {
				errs[i] = fmt.Errorf("%s: %w", d.name, errVerify)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return procs, err
		}
	}
	return procs, ctx.Err()
}
