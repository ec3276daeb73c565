package peer

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/p2pshare/p2pshare/chunker"
)

// Blockstore is the repo's blocks as a read-only boxo Blockstore, for the
// servers that speak the IPFS ecosystem's protocols (the Bitswap server,
// the HTTP gateway in peer/gateway): the blocks this node holds (the DAG
// nodes in the repo, leaves read from the added files), each checked by
// Store.Get on every read (re-hashed, or read from a file unchanged since
// it was verified), and nothing else. A block
// missing or no longer valid (its file changed) is ipld.ErrNotFound.
func (r *Repo) Blockstore() blockstore.Blockstore { return readOnlyBlocks{st: r.st} }

// errReadOnly is what readOnlyBlocks answers to writes: blocks enter the
// repo through add, import and get only.
var errReadOnly = errors.New("the repo's blockstore is read-only")

// readOnlyBlocks is Repo.Blockstore.
type readOnlyBlocks struct{ st *Store }

// Has reports whether the block can be served. Only CIDs the network may
// carry (chunker.CheckCID: full sha2-256 or identity) are looked up.
func (b readOnlyBlocks) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if chunker.CheckCID(c) != nil {
		return false, nil
	}
	return b.st.Has(ctx, c)
}

// Get returns the verified block.
func (b readOnlyBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
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
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns the block's size from the index, without reading it:
// servers ask it for every want, so it must stay cheap. A leaf whose file
// changed still reports its recorded size; Get then finds it invalid.
func (b readOnlyBlocks) GetSize(ctx context.Context, c cid.Cid) (int, error) {
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
func (readOnlyBlocks) Put(context.Context, blocks.Block) error { return errReadOnly }

// PutMany refuses: see errReadOnly.
func (readOnlyBlocks) PutMany(context.Context, []blocks.Block) error { return errReadOnly }

// DeleteBlock refuses: see errReadOnly.
func (readOnlyBlocks) DeleteBlock(context.Context, cid.Cid) error { return errReadOnly }

// AllKeysChan refuses: no server lists the store, and a listing of every
// block is not something p2pshare offers remotes.
func (readOnlyBlocks) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, fmt.Errorf("listing blocks: %w", errReadOnly)
}
