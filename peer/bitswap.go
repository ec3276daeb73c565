package peer

import (
	"context"

	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	bsserver "github.com/ipfs/boxo/bitswap/server"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
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

// startBitswap starts serving bs on h, each block sent under up.
func startBitswap(h host.Host, bs blockstore.Blockstore, up uploadCap) *bitswapServer {
	net := bsnet.NewFromIpfsHost(h)
	srv := bsserver.New(context.Background(), net, bitswapBlocks{Blockstore: bs, up: up},
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

// bitswapBlocks is the repo's read-only Blockstore as the Bitswap server
// reads it: each block sent under the upload cap, and the empty block
// sized so that boxo's engine sends it.
type bitswapBlocks struct {
	blockstore.Blockstore
	up uploadCap
}

// Get returns the verified block, once the upload cap lets its bytes go:
// the server calls Get just before it sends the block.
func (b bitswapBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	blk, err := b.Blockstore.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := b.up.WaitUpload(ctx, len(blk.RawData())); err != nil {
		return nil, err
	}
	return blk, nil
}

// GetSize is the block's recorded size, except that the empty block (the
// one leaf of every empty file) reports 1, not 0: boxo's engine takes a
// size of 0 for "not here" and would answer DONT_HAVE for it forever, so
// no empty file could be fetched. The size only weighs the block's task in
// the server's queue.
func (b bitswapBlocks) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := b.Blockstore.GetSize(ctx, c)
	if err == nil && n == 0 {
		n = 1
	}
	return n, err
}
