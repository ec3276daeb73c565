// Package gateway serves a node's blocks over HTTP as an IPFS gateway,
// through github.com/ipfs/boxo/gateway: deserialized files and folders under
// /ipfs/<CID>[/path] (content types, directory listings, Range requests,
// streaming) and the trustless formats (?format=raw, ?format=car with
// dag-scope and entity-bytes). It owns the adapter from the node's block
// store to boxo's blockstore; it knows nothing of the DHT or of downloads.
//
// The gateway answers from the blocks the node holds (offline exchange):
// a block the node does not hold is a 5xx/404 from boxo, not a swarm fetch.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// Blocks is what the gateway reads: verified blocks by CID. Get must return
// data that matches c (the gateway checks again before serving it) and an
// error that errors.Is NotFound when the block is absent.
type Blocks interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
}

// ErrReadOnly is returned by the adapter's writes: the gateway never stores.
var ErrReadOnly = errors.New("gateway blockstore is read-only")

// NewHandler returns an http.Handler serving /ipfs/ paths from b. notFound
// is the error b returns for an absent block (tested with errors.Is).
func NewHandler(b Blocks, notFound error) (http.Handler, error) {
	bs := &store{b: b, notFound: notFound}
	backend, err := gateway.NewBlocksBackend(blockservice.New(bs, offline.Exchange(bs)))
	if err != nil {
		return nil, fmt.Errorf("building the gateway backend: %w", err)
	}
	h := gateway.NewHandler(gateway.Config{DeserializedResponses: true, NoDNSLink: true}, backend)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", h)
	return mux, nil
}

// Serve listens on addr (a bare ":PORT" or "PORT" listens on loopback
// only) and serves h until ctx ends. It returns the bound address once the
// listener is up; the server goroutine ends when ctx does.
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, error) {
	l, err := net.Listen("tcp", LoopbackDefault(addr))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go srv.Serve(l)
	context.AfterFunc(ctx, func() { srv.Close() })
	return l.Addr(), nil
}

// LoopbackDefault gives an address without a host the loopback host, so the
// gateway is reachable from other machines only when the user names a host.
func LoopbackDefault(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return net.JoinHostPort("127.0.0.1", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// store adapts Blocks to boxo's blockstore.Blockstore, read-only.
type store struct {
	b        Blocks
	notFound error
}

var _ blockstore.Blockstore = (*store)(nil)

func (s *store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if c.Prefix().MhType == multihash.IDENTITY {
		return true, nil
	}
	return s.b.Has(ctx, c)
}

func (s *store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Prefix().MhType == multihash.IDENTITY { // the data is the CID itself (bafkqaaa: empty)
		dm, err := multihash.Decode(c.Hash())
		if err != nil {
			return nil, err
		}
		return blocks.NewBlockWithCid(dm.Digest, c)
	}
	data, err := s.b.Get(ctx, c)
	if err != nil {
		if errors.Is(err, s.notFound) {
			return nil, ipld.ErrNotFound{Cid: c}
		}
		return nil, err
	}
	// Checked again here, whatever Blocks promises: nothing unverified is served.
	sum, err := c.Prefix().Sum(data)
	if err != nil || !sum.Equals(c) {
		return nil, fmt.Errorf("block %s does not match its CID", c)
	}
	return blocks.NewBlockWithCid(data, c)
}

func (s *store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	b, err := s.Get(ctx, c)
	if err != nil {
		return -1, err
	}
	return len(b.RawData()), nil
}

func (s *store) Put(context.Context, blocks.Block) error       { return ErrReadOnly }
func (s *store) PutMany(context.Context, []blocks.Block) error { return ErrReadOnly }
func (s *store) DeleteBlock(context.Context, cid.Cid) error    { return ErrReadOnly }

func (s *store) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, errors.New("gateway blockstore does not list its keys")
}
