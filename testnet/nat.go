package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// natCase is one run of the NAT setup: two public seeds ("the internet",
// on the bridge with public addresses), and two peers each behind a NAT
// router of its own: A seeds a file, B gets it.
type natCase struct {
	name  string
	kind  natKind // both routers'
	relay bool    // the public seeds offer a relay service
	size  int64
	cap   int // A's upload cap in Mbit/s (0: none)
	// timeout is B's get --timeout (0: the runner's).
	timeout time.Duration
	// net numbers the case's public subnet, 11.77.net.0/24, so that
	// cases of one run do not share addresses.
	net int
}

// natResult is what a natCase showed.
type natResult struct {
	get     *getResult // nil when the get failed
	err     error      // the get's failure: its one line
	exit    int        // and its exit status
	relayed uint64     // bytes that came through the relay
	direct  uint64     // bytes that came over a direct (hole-punched) connection
	aStatus string     // A's NAT state before the get, as status printed it
}

// pubIP is host h's address on case c's public subnet. The bridge is "the
// internet", so its addresses must be public ones (AutoNAT, AutoRelay and
// hole punching ignore private ones): 11.0.0.0/8 is routable, and these
// namespaces reach nothing outside themselves. Hosts 1 and 2 are the
// public seeds, 11 and 12 the NAT routers of A and B.
func (c natCase) pubIP(h int) string { return fmt.Sprintf("11.77.%d.%d", c.net, h) }

// How long, and how often, a NAT run waits for AutoNAT's verdicts.
const (
	natWaitNAT  = 90 * time.Second
	natWaitPoll = time.Second
)

// nodeStatus is the part of `p2pshare --json status` the NAT runs read.
type nodeStatus struct {
	NAT     string `json:"nat"`
	Relayed bool   `json:"relayed"`
	Peers   int    `json:"peers"`
}

func (r *runner) status(p *peerNode) (nodeStatus, error) {
	var st nodeStatus
	raw, err := r.run(p, "--json", "status")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(raw), &st)
}

// waitStatus polls p's status until ok holds, for up to natWaitNAT.
func (r *runner) waitStatus(ctx context.Context, p *peerNode, what string, ok func(nodeStatus) bool) (nodeStatus, error) {
	deadline := time.Now().Add(natWaitNAT)
	for {
		st, err := r.status(p)
		if err == nil && ok(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s: not %s after %s (status: nat %s, relayed %v, %d peers; %v)", p.name, what, natWaitNAT, st.NAT, st.Relayed, st.Peers, err)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(natWaitPoll):
		}
	}
}

// runNAT builds c's network in namespaces (netns mode only), runs it and
// reports which path carried the bytes. An error is a failure of the
// setup; the get's own failure is in natResult.err.
func (r *runner) runNAT(ctx context.Context, c natCase) (*natResult, error) {
	if r.mode != "netns" {
		return nil, fmt.Errorf("the nat scenario needs netns mode (root, ip netns and nft)")
	}
	logf := func(format string, args ...any) {
		fmt.Printf("[%5.1fs] %s: %s\n", time.Since(r.start).Seconds(), c.name, fmt.Sprintf(format, args...))
	}
	var flags []string
	if !c.relay {
		flags = []string{"--no-relay"}
	}
	// The internet: two public seeds, so that AutoNAT on each has a peer
	// to confirm it is reachable (a relay service runs only then).
	var pub []*peerNode
	defer func() {
		for _, p := range pub {
			r.stopSeed(p, false)
		}
	}()
	for i, ip := range []string{c.pubIP(1), c.pubIP(2)} {
		ns, err := r.net.addOnBridge(func(int) string { return ip + "/24" }, 0)
		if err != nil {
			return nil, err
		}
		p, err := r.newPeerAt(fmt.Sprintf("%s-public%d", c.name, i+1), ns, ip)
		if err != nil {
			return nil, err
		}
		p.flags = flags
		boot := ""
		if i > 0 {
			boot = pub[0].addr
		}
		if err := r.startSeed(ctx, p, boot); err != nil {
			return nil, err
		}
		pub = append(pub, p)
	}
	st, err := r.waitStatus(ctx, pub[0], "public", func(s nodeStatus) bool { return s.NAT == "public" })
	if err != nil {
		return nil, err
	}
	logf("public seed %s: AutoNAT says %s (relay service %s)", c.pubIP(1), st.NAT, map[bool]string{true: "on", false: "off (--no-relay)"}[c.relay])

	nsA, ipA, err := r.net.addNAT(c.pubIP(11)+"/24", 1, c.kind, c.cap)
	if err != nil {
		return nil, err
	}
	nsB, ipB, err := r.net.addNAT(c.pubIP(12)+"/24", 2, c.kind, 0)
	if err != nil {
		return nil, err
	}
	a, err := r.newPeerAt(c.name+"-A", nsA, ipA)
	if err != nil {
		return nil, err
	}
	b, err := r.newPeerAt(c.name+"-B", nsB, ipB)
	if err != nil {
		return nil, err
	}
	if err := r.startSeed(ctx, a, pub[0].addr); err != nil {
		return nil, err
	}
	defer r.stopSeed(a, false)
	path, sum, err := r.makeFile(c.name+".bin", c.size)
	if err != nil {
		return nil, err
	}
	added, err := r.run(a, "-q", "add", path)
	if err != nil {
		return nil, err
	}
	root := strings.TrimSpace(added)
	logf("A (%s behind NAT %s, %s) seeds %s (%d MiB)", ipA, c.pubIP(11), c.kind, root, c.size>>20)
	st, err = r.waitStatus(ctx, a, "private with a relay address", func(s nodeStatus) bool {
		return s.NAT == "private" && (s.Relayed || !c.relay)
	})
	if err != nil {
		return nil, err
	}
	res := &natResult{aStatus: st.NAT}
	if st.Relayed {
		res.aStatus += ", reachable through a relay"
	}
	logf("A: AutoNAT says %s", res.aStatus)

	got := filepath.Join(mustAbs(r.out), "data", c.name+"-got.bin")
	if c.timeout > 0 {
		r.timeout = c.timeout
	}
	t0 := time.Now()
	g, err := r.get(ctx, b, root, got, []string{pub[0].addr}, false, nil, nil)
	if err != nil {
		if g == nil {
			return nil, err
		}
		res.err, res.exit = fmt.Errorf("%s", g.Err), g.ExitCode
		logf("B (%s behind NAT %s): get failed after %.1fs: %s", ipB, c.pubIP(12), time.Since(t0).Seconds(), g.Err)
		return res, nil
	}
	g.SHA256OK = fileSHA(got) == sum
	if !g.SHA256OK || g.Bytes != uint64(c.size) {
		return nil, fmt.Errorf("%s: got %d of %d bytes, SHA-256 ok=%v: %w", c.name, g.Bytes, c.size, g.SHA256OK, errVerify)
	}
	res.get = g
	res.relayed = g.Relayed[a.name]
	res.direct = g.From[a.name] - res.relayed
	logf("B (%s behind NAT %s): got %d MiB in %.1fs, SHA-256 ok; from A: %s through the relay, %s over a direct hole-punched connection",
		ipB, c.pubIP(12), g.Bytes>>20, g.Seconds, mibs(res.relayed), mibs(res.direct))
	return res, nil
}

func mibs(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// nat is the nat scenario: a peer behind one NAT seeds, a peer behind
// another gets it, with a public seed as the only bootstrap; three times:
// behind plain masquerade (the hole punch works), behind symmetric NATs
// (it cannot: everything through the relay) and with no relay service
// (no path at all: the get fails, saying why). Each prints which path
// carried the bytes.
func (r *runner) nat(ctx context.Context, cfg config) error {
	size := r.size(cfg, 48, 48)
	cases := []natCase{
		{name: "cone", kind: natCone, relay: true, size: size, cap: cfg.capMbit, net: 1},
		{name: "symmetric", kind: natSymmetric, relay: true, size: size, cap: cfg.capMbit, net: 2},
		{name: "norelay", kind: natCone, relay: false, size: 4 * mib, timeout: 20 * time.Second, net: 3},
	}
	fmt.Printf("nat: A behind one NAT seeds, B behind another gets it (bootstrap: a public seed); A's upload capped at %d Mbit/s\n", cfg.capMbit)
	type row struct {
		c   natCase
		res *natResult
	}
	var rows []row
	timeout := r.timeout
	for _, c := range cases {
		r.timeout = timeout
		res, err := r.runNAT(ctx, c)
		if err != nil {
			return err
		}
		rows = append(rows, row{c, res})
	}
	fmt.Printf("\n%-10s  %-24s  %-5s  %-34s  %s\n", "case", "NAT", "relay", "A's NAT state", "path that carried the bytes")
	for _, rw := range rows {
		path := fmt.Sprintf("none: get failed (exit %d): %v", rw.res.exit, rw.res.err)
		if g := rw.res.get; g != nil {
			path = fmt.Sprintf("%s through the relay, %s direct (hole-punched), in %.1fs", mibs(rw.res.relayed), mibs(rw.res.direct), g.Seconds)
		}
		fmt.Printf("%-10s  %-24s  %-5v  %-34s  %s\n", rw.c.name, rw.c.kind, rw.c.relay, rw.res.aStatus, path)
	}
	return nil
}
