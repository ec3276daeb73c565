// Package nodetest starts real p2pshare nodes for the tests of packages
// built on peer (the gateway, the status page): a fresh repo, a real host
// on loopback TCP.
package nodetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/peer"
)

// Start runs a node with opts on a fresh repo in t.TempDir(), listening on
// 127.0.0.1 (opts.Listen is replaced); repo and node close with the test.
func Start(t testing.TB, opts peer.NodeOptions) *peer.Node {
	t.Helper()
	r, err := peer.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	opts.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := peer.Start(ctx, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Info is n's peer ID and addresses, for another node's Bootstrap.
func Info(n *peer.Node) libp2ppeer.AddrInfo {
	return libp2ppeer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}
}
