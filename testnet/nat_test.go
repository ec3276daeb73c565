package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// natTest runs one natCase in network namespaces (root, ip netns and nft
// needed) and returns what it showed.
func natTest(t *testing.T, c natCase) *natResult {
	t.Helper()
	if why := netnsUnavailable(); why != "" {
		t.Skipf("NAT traversal test needs network namespaces (root and ip netns): %s", why)
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("NAT traversal test needs nft (Debian: nftables)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := newRunner(ctx, "", t.TempDir(), "netns", "nat", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cleanup)
	r.start = time.Now()
	res, err := r.runNAT(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestNATHolePunch: A behind one NAT (plain masquerade) seeds, B behind
// another gets it with only the public seed as bootstrap. The bytes must
// arrive, verified; the download starts through the public seed's relay
// and moves to a direct connection that DCUtR punches through both NATs:
// some bytes must come over it.
func TestNATHolePunch(t *testing.T) {
	res := natTest(t, natCase{name: "cone", kind: natCone, relay: true, size: 48 << 20, cap: 100})
	if res.err != nil {
		t.Fatalf("get behind NAT: %v", res.err)
	}
	t.Logf("from A: %s through the relay, %s direct", mibs(res.relayed), mibs(res.direct))
	if res.direct == 0 {
		t.Fatalf("no byte came over a direct connection (%s through the relay): the hole punch did not happen", mibs(res.relayed))
	}
}

// TestNATSymmetric: both NATs pick a random port for every connection
// (masquerade fully-random), so the addresses the peers learn for each
// other are never the ones a hole punch needs. The get must still
// complete, verified, every byte through the relay, over as many
// circuits as the relay's data limit (16 MiB each way) takes.
func TestNATSymmetric(t *testing.T) {
	res := natTest(t, natCase{name: "symmetric", kind: natSymmetric, relay: true, size: 40 << 20, cap: 100})
	if res.err != nil {
		t.Fatalf("get behind symmetric NATs: %v", res.err)
	}
	t.Logf("from A: %s through the relay, %s direct", mibs(res.relayed), mibs(res.direct))
	if res.direct != 0 || res.relayed < 40<<20 {
		t.Fatalf("%s through the relay and %s direct: want all 40 MiB through the relay (no hole punch through symmetric NATs)", mibs(res.relayed), mibs(res.direct))
	}
}

// TestNATNoRelay: the public seeds run with --no-relay, so A behind its
// NAT has no relay address and B no path to it. The get must fail with
// the one line saying so (exit 1), not a generic "no providers" stall.
func TestNATNoRelay(t *testing.T) {
	res := natTest(t, natCase{name: "norelay", kind: natCone, relay: false, size: 4 << 20, timeout: 20 * time.Second})
	if res.err == nil {
		t.Fatalf("get succeeded with no relay and both peers behind NAT (%s relayed, %s direct)", mibs(res.relayed), mibs(res.direct))
	}
	t.Logf("get failed (exit %d): %v", res.exit, res.err)
	if msg := res.err.Error(); !strings.Contains(msg, "none could be reached, directly or through a relay") || strings.Contains(msg, "\n") || res.exit != 1 {
		t.Fatalf("get failed with %q (exit %d), want exit 1 and the one line saying the peer holding it cannot be reached", msg, res.exit)
	}
}
