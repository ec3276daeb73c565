package peer

import (
	"context"
	"errors"
	"fmt"

	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	bsserver "github.com/ipfs/boxo/bitswap/server"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pshare/p2pshare/chunker"
)

// Bounds on what one Bitswap remote can make the server hold or do. boxo's
// defaults are the same or looser; they are set here so that a boxo upgrade
// cannot move them.
const (
	// bitswapMaxWants is the most wantlist entries kept per remote (boxo
	// drops the newest past it, and reads no more than this many entries
	// of one message).
	bitswapMaxWants = 1024
	// bitswapMaxCIDBytes is the longest CID accepted in a wantlist (a
	// CIDv1 with a 64-byte digest and worst-case varints; sha2-256 CIDs are
	// 36 bytes).
	bitswapMaxCIDBytes = 168
	// bitswapMaxOutstandingBytes is how many block bytes are queued for
	// one remote at a time: 4 MiB, four 1 MiB leaves.
	bitswapMaxOutstandingBytes = 4 << 20
	// bitswapTaskWorkers is how many envelopes (one or a few blocks each)
	// are read and sent at once, across all remotes: it bounds the block
	// bytes in memory to about this many leaves.
	bitswapTaskWorkers = 8
	// bitswapStoreWorkers is how many blockstore lookups run at once.
	bitswapStoreWorkers = 16
)

// bitswapProtocols are the stream protocols bsnet registers, so that Close
// can take them off the host again.
var bitswapProtocols = []protocol.ID{
	bsnet.ProtocolBitswap, bsnet.ProtocolBitswapOneOne,
	bsnet.ProtocolBitswapOneZero, bsnet.ProtocolBitswapNoVers,
}

// bitswapServer serves the repo's blocks to IPFS nodes (Kubo, Helia, boxo)
// over the standard /ipfs/bitswap protocols, with boxo's own server: it
// answers wants, never asks for blocks itself and stores nothing.
type bitswapServer struct {
	h   host.Host
	net interface{ Stop() }
	srv *bsserver.Server
}

// uploadCap is the node's upload rate cap: transfer.Service, whose
// WaitUpload the transfer protocol's own uploads wait on too, so that
// --max-upload caps both protocols together.
type uploadCap interface {
	WaitUpload(ctx context.Context, n int) error
}

// startBitswap starts serving st on h, each block sent under up.
func startBitswap(h host.Host, st *Store, up uploadCap) *bitswapServer {
	net := bsnet.NewFromIpfsHost(h)
	srv := bsserver.New(context.Background(), net, bitswapBlocks{st: st, up: up},
		bsserver.MaxQueuedWantlistEntriesPerPeer(bitswapMaxWants),
		bsserver.MaxCidSize(bitswapMaxCIDBytes),
		bsserver.MaxOutstandingBytesPerPeer(bitswapMaxOutstandingBytes),
		bsserver.TaskWorkerCount(bitswapTaskWorkers),
		bsserver.EngineTaskWorkerCount(bitswapTaskWorkers),
		bsserver.EngineBlockstoreWorkerCount(bitswapStoreWorkers),
	)
	net.Start(srv)
	return &bitswapServer{h: h, net: net, srv: srv}
}

// Close stops serving and waits for the server's goroutines to end.
func (b *bitswapServer) Close() {
	for _, p := range bitswapProtocols {
		b.h.RemoveStreamHandler(p)
	}
	b.net.Stop()
	b.srv.Close()
}

// errReadOnly is what bitswapBlocks answers to writes: the Bitswap server
// only reads, and blocks enter the repo through add, import and get.
var errReadOnly = errors.New("the Bitswap blockstore is read-only")

// bitswapBlocks is the repo's Store as a read-only boxo Blockstore: the
// blocks this node holds (the DAG nodes in the repo, leaves read from the
// added files and verified on every read), nothing else. A block missing
// or no longer valid (its file changed) is ipld.ErrNotFound, which the
// server answers with DONT_HAVE.
type bitswapBlocks struct {
	st *Store
	up uploadCap
}

var _ blockstore.Blockstore = bitswapBlocks{}

// Has reports whether the block can be served. Only CIDs the network may
// carry (chunker.CheckCID: full sha2-256 or identity) are looked up.
func (b bitswapBlocks) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if chunker.CheckCID(c) != nil {
		return false, nil
	}
	return b.st.Has(ctx, c)
}

// Get returns the verified block, once the upload cap lets its bytes go:
// the server calls Get just before it sends the block.
func (b bitswapBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if chunker.CheckCID(c) != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	data, err := b.st.Get(ctx, c)
	if errors.Is(err, ErrBlockNotFound) || errors.Is(err, chunker.ErrHashMismatch) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, err
	}
	if err := b.up.WaitUpload(ctx, len(data)); err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns the block's size from the index, without reading it:
// the server asks it for every want, so it must stay cheap. A leaf whose
// file changed still reports its recorded size; Get then finds it invalid.
//
// The empty block (the one leaf of every empty file) reports 1, not 0:
// boxo's engine takes a size of 0 for "not here" and would answer
// DONT_HAVE for it forever, so no empty file could be fetched. The size
// only weighs the block's task in the server's queue.
func (b bitswapBlocks) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := b.size(ctx, c)
	if err == nil && n == 0 {
		n = 1
	}
	return n, err
}

func (b bitswapBlocks) size(ctx context.Context, c cid.Cid) (int, error) {
	if chunker.CheckCID(c) != nil {
		return 0, ipld.ErrNotFound{Cid: c}
	}
	n, err := b.st.ix.ds.GetSize(ctx, blockKey(c))
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, ds.ErrNotFound) {
		return 0, err
	}
	if isRaw(c) {
		locs, err := b.st.ix.locations(ctx, c)
		if err != nil {
			return 0, err
		}
		if len(locs) > 0 && locs[0].Size <= chunker.MaxBlockSize {
			return int(locs[0].Size), nil
		}
	}
	return 0, ipld.ErrNotFound{Cid: c}
}

// Put refuses: see errReadOnly.
func (bitswapBlocks) Put(context.Context, blocks.Block) error { return errReadOnly }

// PutMany refuses: see errReadOnly.
func (bitswapBlocks) PutMany(context.Context, []blocks.Block) error { return errReadOnly }

// DeleteBlock refuses: see errReadOnly.
func (bitswapBlocks) DeleteBlock(context.Context, cid.Cid) error { return errReadOnly }

// AllKeysChan refuses: the server never lists the store, and a listing
// of every block is not something p2pshare offers remotes.
func (bitswapBlocks) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, fmt.Errorf("listing blocks: %w", errReadOnly)
}
