package main

import (
	"context"
	"os/exec"
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
