package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTinyDemo runs the demo scenario end to end with 3 real peers and a
// few MiB, so that the runner cannot rot: every download must verify.
func TestTinyDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	r, err := newRunner(ctx, "", out, "loopback", "demo", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.cleanup()
	if err := r.runScenario(ctx, "demo", config{quick: true, capMbit: 200}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results struct {
			Size      int64
			Downloads []getResult
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Results.Downloads) != 2 {
		t.Fatalf("%d downloads in results.json, want 2", len(doc.Results.Downloads))
	}
	for _, d := range doc.Results.Downloads {
		if !d.SHA256OK || d.Bytes != uint64(doc.Results.Size) {
			t.Errorf("%s: sha256 ok=%v bytes=%d of %d", d.Peer, d.SHA256OK, d.Bytes, doc.Results.Size)
		}
		var from uint64
		for _, b := range d.From {
			from += b
		}
		if from < d.Bytes {
			t.Errorf("%s: sources account for %d of %d bytes", d.Peer, from, d.Bytes)
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "progress.svg"))
	if err != nil || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("progress.svg missing or empty (%v)", err)
	}
	// Cleanup leaves no peer processes and no repos behind.
	r.cleanup()
	if _, err := os.Stat(filepath.Join(out, "peers")); !os.IsNotExist(err) {
		t.Error("peer repos left behind")
	}
	r.procs.mu.Lock()
	n := len(r.procs.live)
	r.procs.mu.Unlock()
	if n != 0 {
		t.Errorf("%d processes still tracked after cleanup", n)
	}
}

func TestCrowdBounds(t *testing.T) {
	const F = 100.0
	cases := []struct {
		name           string
		uSeed, uDl     float64
		n              int
		lower, cliServ float64
	}{
		{"equal caps: the seed's own upload bounds", 10, 10, 8, 10, 80},
		{"slow downloaders: the swarm's total upload bounds", 10, 1, 8, 800.0 / 18, 80},
		{"one downloader", 10, 0, 1, 10, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lower, cs := crowdBounds(F, c.uSeed, c.uDl, c.n)
			if math.Abs(lower-c.lower) > 1e-9 || math.Abs(cs-c.cliServ) > 1e-9 {
				t.Fatalf("bounds = %v, %v; want %v, %v", lower, cs, c.lower, c.cliServ)
			}
		})
	}
}

func TestParseBench(t *testing.T) {
	out := "BenchmarkAdd-2   	       5	  89344030 ns/op	3004.51 MB/s	      3005 add-MB/s	      1779 sha256-MB/s	         1.689 x-sha256\nPASS\n"
	m := parseBench(out)["BenchmarkAdd"]
	if m["add-MB/s"] != 3005 || m["x-sha256"] != 1.689 || m["MB/s"] != 3004.51 {
		t.Fatalf("parsed %v", m)
	}
}

// TestTinyWhole runs the whole scenario with a few MiB: both programs
// transfer every byte (the get's output verifies), and every figure a
// user reads off its table is measured, none left at zero.
func TestTinyWhole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	r, err := newRunner(ctx, "", out, "loopback", "whole", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.cleanup()
	w, err := r.whole(ctx, config{quick: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]pair{"get tmpfs": w.GetTmpfs, "get disk": w.GetDisk, "raw memory": w.RawMemory, "raw disk": w.RawDisk} {
		if p.Seconds <= 0 || p.Sender.CPU <= 0 || p.Recv.CPU <= 0 || p.Sender.Wall < p.Seconds {
			t.Errorf("%s: %+v (want times and CPU seconds measured, the sender alive for the whole transfer)", name, p)
		}
	}
	if w.SmallGetMs <= 0 || w.SmallKeptMs <= 0 || w.SmallRawMs <= 0 {
		t.Errorf("fixed cost: get %v ms (new repo), %v ms (repo made before), raw %v ms", w.SmallGetMs, w.SmallKeptMs, w.SmallRawMs)
	}
}

// TestTailRatio: the tail measure of bench, from synthetic progress.
func TestTailRatio(t *testing.T) {
	even := []point{{0, 0}, {1, 0}, {2, 10}, {3, 20}, {4, 30}, {5, 40}, {6, 50}, {7, 60}, {8, 70}, {9, 80}, {10, 90}, {11, 100}}
	slowEnd := []point{{0, 0}, {1, 0}, {10, 90}, {13, 100}} // 90 in 9 s, the last 10 in 3 s
	cases := []struct {
		name string
		ps   []point
		want float64
	}{
		{"a steady download", even, 1},
		{"the last 10 % three times slower", slowEnd, 1.0 / 3},
		{"too short to say", []point{{0, 100}}, 0},
	}
	for _, c := range cases {
		if got := tailRatio(c.ps); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: tail ratio %v, want %v", c.name, got, c.want)
		}
	}
}

// TestTinyMemory runs the memory scenario with a few MiB: real processes,
// peak RSS read from their rusage.
func TestTinyMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := newRunner(ctx, "", t.TempDir(), "loopback", "memory", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.cleanup()
	m, err := r.memory(ctx, config{quick: true})
	if err != nil {
		t.Fatal(err)
	}
	// A Go process holding a libp2p host takes more than 10 MiB, and a
	// 4 MiB transfer far less than a GiB: a zero or absurd reading means
	// rusage was not read.
	for name, v := range map[string]float64{"get": m.GetMiB, "seed": m.SeedMiB, "largest concurrent get": m.GetsMaxMiB} {
		if v < 10 || v > 1024 {
			t.Errorf("%s peak RSS %.1f MiB", name, v)
		}
	}
}
