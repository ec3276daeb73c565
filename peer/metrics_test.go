package peer

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// scrape fetches the metrics page and returns each sample line's value by
// its series (name with labels, as the text format writes it).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	_, body := peertest.HTTPGet(t, url, nil)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMoveDuringTransfer scrapes both ends of a real transfer
// through promhttp and checks that p2pshare's series, libp2p's and the DHT's move.
func TestMetricsMoveDuringTransfer(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, _ := addFile(t, a, 3<<20+5, 256<<10)
	b := startNode(t, NodeOptions{}, a)
	srvA := httptest.NewServer(a.MetricsHandler())
	defer srvA.Close()
	srvB := httptest.NewServer(b.MetricsHandler())
	defer srvB.Close()

	before := scrape(t, srvA.URL+"/metrics")
	if before["p2pshare_blocks_served_total"] != 0 {
		t.Fatalf("blocks served before any transfer: %v", before["p2pshare_blocks_served_total"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := b.Get(ctx, root, GetOptions{Out: filepath.Join(t.TempDir(), "out.bin")}); err != nil {
		t.Fatal(err)
	}
	// libp2p's bandwidth counter folds bytes into its totals once a
	// second: poll until they show the transfer.
	var up, down map[string]float64
	for {
		up, down = scrape(t, srvA.URL+"/metrics"), scrape(t, srvB.URL+"/metrics")
		if up["p2pshare_bytes_sent_total"] >= 3<<20 && down["p2pshare_bytes_received_total"] >= 3<<20 || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	const proto = `p2pshare_protocol_bytes_total{direction="out",protocol="/p2pshare/transfer/1.0.0"}`
	for _, c := range []struct {
		m    map[string]float64
		name string
		min  float64
	}{
		{up, "p2pshare_blocks_served_total", 13}, // 13 leaves (one root node may come too)
		{up, "p2pshare_block_bytes_served_total", 3<<20 + 5},
		{up, proto, 3<<20 + 5},
		{up, "p2pshare_bytes_sent_total", 3<<20 + 5},
		{up, "p2pshare_roots", 1},
		{up, "p2pshare_peers", 1},
		{down, "p2pshare_blocks_received_total", 13},
		{down, "p2pshare_block_bytes_received_total", 3<<20 + 5},
		{down, "p2pshare_bytes_received_total", 3<<20 + 5},
		{down, `p2pshare_download_duration_seconds_count{result="complete"}`, 1},
		{down, `p2pshare_provides_total{result="ok"}`, 0},
		{down, "p2pshare_provider_lookups_total", 1},
		{down, "libp2p_swarm_connections_opened_total", 1},
		{up, "rpc_inbound_messages_total", 1}, // the DHT's, through otel
		{down, "rpc_outbound_requests_total", 1},
		{down, "go_goroutines", 1},
	} {
		v, ok := c.m[c.name]
		if !ok {
			// libp2p's series carry labels: accept any series of the name.
			for k, x := range c.m {
				if strings.HasPrefix(k, c.name+"{") {
					v, ok = v+x, true
				}
			}
		}
		if !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want >= %v", c.name, v, ok, c.min)
		}
	}
	if got := down[`p2pshare_download_duration_seconds_count{result="complete"}`]; got != 1 {
		t.Errorf("download duration count = %v, want 1", got)
	}
	if got := down["p2pshare_downloads_active"]; got != 0 {
		t.Errorf("downloads active after the get = %v, want 0", got)
	}
	if got := down["p2pshare_verification_failures_total"]; got != 0 {
		t.Errorf("verification failures = %v, want 0", got)
	}
}
