package peertest

import (
	"context"
	"testing"

	bsclient "github.com/ipfs/boxo/bitswap/client"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/files"
	"github.com/ipfs/boxo/ipld/merkledag"
	unixfile "github.com/ipfs/boxo/ipld/unixfs/file"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// IPFSClient is an IPFS node made of boxo's own parts, as Kubo builds
// one: a Bitswap client on a libp2p host of its own (made by NewHost), an
// in-memory blockstore and a DAG service over both. It has no content
// routing: it fetches from the peers it is connected to.
type IPFSClient struct {
	// Host is the client's libp2p host.
	Host host.Host
	bs   *bsclient.Client
	dag  ipld.DAGService
}

// NewIPFSClient starts an IPFSClient and connects it to server. Both are
// stopped when the test ends.
func NewIPFSClient(t testing.TB, server peer.AddrInfo) *IPFSClient {
	t.Helper()
	h := NewHost(t)
	net := bsnet.NewFromIpfsHost(h)
	store := blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	bs := bsclient.New(context.Background(), net, nil, store)
	net.Start(bs)
	t.Cleanup(func() { net.Stop(); bs.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := h.Connect(ctx, server); err != nil {
		t.Fatalf("connecting to %s: %v", server.ID, err)
	}
	return &IPFSClient{Host: h, bs: bs, dag: merkledag.NewDAGService(blockservice.New(store, bs))}
}

// GetBlock fetches one block by Bitswap; it blocks until the block comes
// or ctx ends (ctx's error).
func (c *IPFSClient) GetBlock(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	return c.bs.GetBlock(ctx, k)
}

// Get fetches the whole UnixFS DAG under root by Bitswap and writes it to
// out as a file or folder, as `ipfs get` does.
func (c *IPFSClient) Get(ctx context.Context, root cid.Cid, out string) error {
	nd, err := c.dag.Get(ctx, root)
	if err != nil {
		return err
	}
	f, err := unixfile.NewUnixfsFile(ctx, c.dag, nd)
	if err != nil {
		return err
	}
	return files.WriteTo(f, out)
}
