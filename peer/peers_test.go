package peer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// TestPeers: after b downloads from a, each lists the other with the
// right direction, a latency and the bytes that went between them, and
// the per-peer waste adds up to the total.
func TestPeers(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 1<<20, 64<<10)
	b := startNode(t, NodeOptions{}, a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.Get(ctx, root, GetOptions{Out: filepath.Join(t.TempDir(), "out.bin")})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, w := range res.WastedFrom {
		sum += w
	}
	if sum != res.Wasted {
		t.Fatalf("WastedFrom %v adds up to %d, Wasted is %d", res.WastedFrom, sum, res.Wasted)
	}
	find := func(n *Node, id string) (PeerInfo, bool) {
		for _, p := range n.Peers(ctx) {
			if p.PeerID == id {
				return p, true
			}
		}
		return PeerInfo{}, false
	}
	// The bandwidth counter's totals settle about once a second.
	var pa, pb PeerInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		var okA, okB bool
		pb, okA = find(a, b.Host.ID().String())
		pa, okB = find(b, a.Host.ID().String())
		if okA && okB && pb.BytesUp >= int64(len(data)) && pa.BytesDown >= int64(len(data)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a sees b as %+v, b sees a as %+v: want the %d bytes a sent", pb, pa, len(data))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pb.Direction != "inbound" || pa.Direction != "outbound" {
		t.Fatalf("directions: a sees b %s, b sees a %s; want inbound, outbound", pb.Direction, pa.Direction)
	}
	if pb.LatencyMS <= 0 || pa.LatencyMS <= 0 || pb.Addr == "" {
		t.Fatalf("a sees b as %+v, b sees a as %+v: want a latency and an address", pb, pa)
	}
}

// TestStatusNAT: Status reports the reachability AutoNAT announces on
// the host's event bus.
func TestStatusNAT(t *testing.T) {
	n := startNode(t, NodeOptions{})
	ctx := context.Background()
	if st, err := n.Status(ctx); err != nil || st.NAT != "unknown" || st.MDNS || st.LANPeers != 0 {
		t.Fatalf("a fresh node's status: %+v (%v); want NAT unknown, mDNS off, no LAN peers", st, err)
	}
	em, err := n.Host.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPrivate}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.NAT == "private" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("NAT is %q after a private reachability event", st.NAT)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
