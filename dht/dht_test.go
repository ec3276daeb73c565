package dht

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

func testCID(t *testing.T, s string) cid.Cid {
	t.Helper()
	m, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, m)
}

// startNetwork starts n DHT nodes; every node after the first bootstraps from
// the first.
func startNetwork(t *testing.T, n int) ([]host.Host, []*DHT) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hs := peertest.NewHosts(t, n)
	ds := make([]*DHT, n)
	for i, h := range hs {
		var boot []peer.AddrInfo
		if i > 0 {
			boot = []peer.AddrInfo{peertest.Info(hs[0])}
		}
		d, err := New(h, Config{Bootstrap: boot, DisableAutoRefresh: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		if err := d.Bootstrap(ctx); err != nil {
			t.Fatalf("node %d bootstrap: %v", i, err)
		}
		ds[i] = d
	}
	return hs, ds
}

func collect(ctx context.Context, ch <-chan peer.AddrInfo) map[peer.ID]peer.AddrInfo {
	out := map[peer.ID]peer.AddrInfo{}
	for ai := range ch {
		out[ai.ID] = ai
	}
	return out
}

func TestTwoNodes(t *testing.T) {
	hs, ds := startNetwork(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := testCID(t, "hello")
	if err := ds[0].Provide(ctx, c); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	found := collect(fctx, ds[1].FindProviders(fctx, c))
	ai, ok := found[hs[0].ID()]
	if !ok {
		t.Fatalf("B did not find A as provider; found %v", found)
	}
	if len(ai.Addrs) == 0 {
		t.Fatal("provider found without addresses")
	}
	if _, self := found[hs[1].ID()]; self {
		t.Error("FindProviders reported the searching node itself")
	}
}

func TestSeveralProvidersAndAbsentCID(t *testing.T) {
	hs, ds := startNetwork(t, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := testCID(t, "shared")
	for _, i := range []int{2, 4, 6} {
		if err := ds[i].Provide(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
	defer fcancel()
	found := collect(fctx, ds[5].FindProviders(fctx, c))
	for _, i := range []int{2, 4, 6} {
		if _, ok := found[hs[i].ID()]; !ok {
			t.Errorf("provider %d not found (found %d)", i, len(found))
		}
	}
	// Nobody provides this one: the channel closes within the deadline.
	actx, acancel := context.WithTimeout(ctx, 3*time.Second)
	defer acancel()
	start := time.Now()
	if got := collect(actx, ds[3].FindProviders(actx, testCID(t, "absent"))); len(got) != 0 {
		t.Errorf("found providers for an absent CID: %v", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("search for an absent CID outlived its context")
	}
}

func TestBootstrapUnreachable(t *testing.T) {
	h := peertest.NewHost(t)
	gone := peertest.NewHost(t)
	info := peertest.Info(gone)
	gone.Close()
	d, err := New(h, Config{Bootstrap: []peer.AddrInfo{info}, DisableAutoRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err == nil {
		t.Fatal("bootstrap through a closed peer succeeded")
	}
}

// TestOwnNetwork checks that the prefix is /p2pshare: a DHT speaking the
// default /ipfs protocol does not become part of our routing table.
func TestOwnNetwork(t *testing.T) {
	_, ds := startNetwork(t, 2)
	other := peertest.NewHost(t)
	k, err := kad.New(other, kad.Mode(kad.ModeServer), kad.DisableAutoRefresh())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := other.Connect(ctx, peertest.Info(ds[0].h)); err != nil {
		t.Fatal(err)
	}
	// Identify has run once the protocols are known.
	for {
		protos, _ := ds[0].h.Peerstore().GetProtocols(other.ID())
		if len(protos) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("identify never completed")
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, p := range ds[0].kad.RoutingTable().ListPeers() {
		if p == other.ID() {
			t.Fatal("an /ipfs DHT node joined the /p2pshare routing table")
		}
	}
	if k.RoutingTable().Find(ds[0].h.ID()) != "" {
		t.Fatal("our node joined the /ipfs routing table")
	}
}

func TestUnprovideAndClose(t *testing.T) {
	_, ds := startNetwork(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := testCID(t, "x")
	if err := ds[0].Provide(ctx, c); err != nil {
		t.Fatal(err)
	}
	ds[0].Unprovide(c)
	ds[0].mu.Lock()
	n := len(ds[0].provided)
	ds[0].mu.Unlock()
	if n != 0 {
		t.Fatalf("%d CIDs still reprovided after Unprovide", n)
	}
}

// TestBootstrapThroughForeignDHT: a bootstrap peer that answers but does
// not speak the /p2pshare DHT is reported at once, naming the cause.
func TestBootstrapThroughForeignDHT(t *testing.T) {
	other := peertest.NewHost(t)
	k, err := kad.New(other, kad.Mode(kad.ModeServer), kad.DisableAutoRefresh())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	d, err := New(peertest.NewHost(t), Config{Bootstrap: []peer.AddrInfo{peertest.Info(other)}, DisableAutoRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = d.Bootstrap(ctx)
	if !errors.Is(err, ErrNoBootstrap) || !strings.Contains(err.Error(), "p2pshare") || ctx.Err() != nil {
		t.Fatalf("bootstrap through an /ipfs DHT node: %v (context: %v)", err, ctx.Err())
	}
}

// TestBootstrapPastADeadPeer: one bootstrap peer that never completes a
// handshake (TCP accepts, then silence) does not hold Bootstrap up once
// another one answered.
func TestBootstrapPastADeadPeer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open and silent until the test ends
		}
	}()
	silent, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	dead := peer.AddrInfo{ID: peertest.Info(peertest.NewHost(t)).ID, Addrs: []ma.Multiaddr{silent}}
	hs, _ := startNetwork(t, 1)
	d, err := New(peertest.NewHost(t), Config{Bootstrap: []peer.AddrInfo{dead, peertest.Info(hs[0])}, DisableAutoRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Bootstrap took %v: it waited for the silent peer", took)
	}
}
