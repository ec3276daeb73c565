package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLANDiscovery runs a seed and a downloader in two network namespaces
// on one bridge, neither given a bootstrap peer: mDNS must find the seed,
// the two must join one DHT (the downloader finds the provider record
// there), and the get must succeed. The multicast stays on the bridge of
// the test's own namespaces.
func TestLANDiscovery(t *testing.T) {
	if why := netnsUnavailable(); why != "" {
		t.Skipf("LAN discovery test needs network namespaces (root and ip netns): %s", why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	r, err := newRunner(ctx, "", out, "netns", "lan", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cleanup)
	t.Setenv("P2PSHARE_LOG_LEVEL", "debug") // for logTail, should it fail
	r.mdns = true
	seedPeer, err := r.newPeer("seed", 0)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := r.newPeer("dl", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.startSeed(ctx, seedPeer); err != nil { // no bootstrap
		t.Fatal(err)
	}
	path, sum, err := r.makeFile("lan.bin", 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	added, err := r.run(seedPeer, "-q", "add", path)
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(added)
	got := filepath.Join(out, "data", "got.bin")
	// Without mDNS on the downloader's side nothing leads it to the seed:
	// what the get below finds, mDNS found.
	r.mdns, r.timeout = false, 5*time.Second
	t0 := time.Now()
	_, err = r.get(ctx, dl, root, got, nil, false, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no providers") {
		t.Fatalf("get with --no-mdns and no bootstrap: %v, want no providers found", err)
	}
	t.Logf("with --no-mdns, after %.1fs: %v", time.Since(t0).Seconds(), err)
	r.mdns, r.timeout = true, 30*time.Second
	start := time.Now()
	res, err := r.get(ctx, dl, root, got, nil, false, nil, nil) // no bootstrap
	if err != nil {
		logTail(t, filepath.Join(out, "logs", "dl-get.log"), filepath.Join(out, "logs", "seed-seed.log"))
		t.Fatalf("get with no bootstrap on the LAN: %v", err)
	}
	if fileSHA(got) != sum || res.Bytes != 3<<20 {
		t.Fatalf("got %d bytes, SHA-256 ok=%v", res.Bytes, fileSHA(got) == sum)
	}
	t.Logf("get found the seed by mDNS and fetched %d bytes in %.1fs (from %v)", res.Bytes, time.Since(start).Seconds(), res.From)
	// The seed took the downloader into its DHT routing table.
	var st struct {
		RoutingTable int `json:"routing_table"`
	}
	raw, err := r.run(seedPeer, "--json", "status")
	if err != nil || json.Unmarshal([]byte(raw), &st) != nil || st.RoutingTable < 1 {
		t.Fatalf("seed status %q (%v): want the downloader in its routing table", raw, err)
	}
}

// logTail logs the last lines of each named log, for a failure's reader.
func logTail(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Logf("%s: %v", p, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("last lines of %s:\n%s", filepath.Base(p), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}
