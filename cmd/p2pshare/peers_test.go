package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPeersAndStatus: a seed and a `get --seed` process connected to it;
// after the transfer the seed's `peers` lists the downloader as inbound
// with the bytes it sent, and `status` shows the NAT state and LAN peers.
func TestPeersAndStatus(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	writeRandom(t, src, 2<<20)
	repoA, repoB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_, addrA := startSeed(t, repoA)
	root := addFile(t, repoA, src)
	in := run(t, "--repo", repoB, "init")
	idB := strings.TrimSpace(in.stdout)
	if in.code != 0 || !strings.HasPrefix(idB, "12D3") {
		t.Fatalf("init: %+v", in)
	}
	g := start(t, "get --seed", "--repo", repoB, "get", root, "-o", filepath.Join(dir, "out.bin"), "--seed",
		"--bootstrap", addrA, "--listen", loopback, "--timeout", "30s")
	g.firstLine(t, "got "+root, 30*time.Second)

	// The bandwidth counter's totals settle about once a second.
	var pb peerEvent
	waitFor(t, 10*time.Second, "peers --json to show the downloader with the bytes sent to it", func() bool {
		r := run(t, "--repo", repoA, "--json", "peers")
		if r.code != 0 {
			t.Fatalf("peers --json: %+v", r)
		}
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var ev peerEvent
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Type == "peer" && ev.PeerID == idB {
				pb = ev
				return ev.BytesUp >= 2<<20
			}
		}
		return false
	})
	if pb.Direction != "inbound" || pb.BytesDown == 0 || !strings.HasPrefix(pb.Addr, "/ip4/127.0.0.1/tcp/") || pb.LatencyMS <= 0 {
		t.Fatalf("peers --json shows the downloader as %+v: want inbound, bytes both ways, a loopback address, a latency", pb)
	}
	r := run(t, "--repo", repoA, "peers")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) < 2 || !regexp.MustCompile(`^peer +direction +latency +up +down +rate up +rate down +address$`).MatchString(lines[0]) {
		t.Fatalf("peers: %+v", r)
	}
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, idB+" ") })
	if i < 0 || !regexp.MustCompile(` inbound +[0-9.]+ ms +[0-9.]+ MiB `).MatchString(lines[i]) {
		t.Fatalf("peers shows no line `%s inbound <latency> <MiB up> ...`:\n%s", idB, r.stdout)
	}
	t.Logf("peers:\n%s", r.stdout)
	if q := run(t, "--repo", repoA, "-q", "peers"); !slices.Contains(strings.Fields(q.stdout), idB) {
		t.Fatalf("peers -q: %+v, want the peer IDs", q)
	}

	st := run(t, "--repo", repoA, "--json", "status")
	var ev statusEvent
	if st.code != 0 || json.Unmarshal([]byte(st.stdout), &ev) != nil {
		t.Fatalf("status --json: %+v", st)
	}
	if !slices.Contains([]string{"public", "private", "unknown"}, ev.NAT) || ev.MDNS || ev.LANPeers != 0 || ev.Peers < 1 {
		t.Fatalf("status --json: %+v; want a NAT state, mDNS off (P2PSHARE_NO_MDNS), no LAN peers, the downloader", ev)
	}
	txt := run(t, "--repo", repoA, "status")
	if !regexp.MustCompile(`(?m)^NAT: +(public|private|unknown)`).MatchString(txt.stdout) || !regexp.MustCompile(`(?m)^LAN peers: +off`).MatchString(txt.stdout) {
		t.Fatalf("status shows no NAT or LAN peers line:\n%s", txt.stdout)
	}
	t.Logf("status:\n%s", txt.stdout)
}

// TestPeersWithoutSeed: peers needs a running seed; without one it fails
// (exit 1) with one line saying how to start one.
func TestPeersWithoutSeed(t *testing.T) {
	r := run(t, "--repo", filepath.Join(t.TempDir(), "r"), "peers")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("peers without a seed: %+v, want exit 1", r)
	}
	oneLine(t, r.stderr, "start one with p2pshare seed")
}

// TestStatusWithoutSeed: status without a seed has the new fields too,
// with the NAT state unknown.
func TestStatusWithoutSeed(t *testing.T) {
	r := run(t, "--repo", filepath.Join(t.TempDir(), "r"), "--json", "status")
	var ev statusEvent
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ev) != nil || ev.Running || ev.NAT != "unknown" || !reflect.DeepEqual(ev.Addrs, []string{}) {
		t.Fatalf("status --json without a seed: %+v (%+v)", r, ev)
	}
}
