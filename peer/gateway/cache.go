package gateway

import (
	"context"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// CacheBytes bounds the memory the gateway keeps of the blocks it fetched
// from the swarm: 64 MiB, the blocks last used (about 64 leaves of 1 MiB).
// A block evicted is fetched again when asked for again.
const CacheBytes = 64 << 20

// cache is the gateway's blockstore: the node's own blocks (read-only),
// then the blocks fetched from the swarm, which boxo's blockservice puts
// here once the exchange has returned them (verified against their CIDs),
// kept in memory up to max bytes, the least recently used dropped first.
// Kubo writes what its gateway fetches into its repo; p2pshare's repo
// holds files it was asked to share or get, not a cache, so what a
// browser opens stays in memory and is gone when the seed stops.
type cache struct {
	blockstore.Blockstore // the node's

	mu   sync.Mutex
	lru  *simplelru.LRU[cid.Cid, blocks.Block]
	size int // cost of the blocks in lru
	max  int
}

func newCache(bs blockstore.Blockstore, max int) *cache {
	c := &cache{Blockstore: bs, max: max}
	// The LRU's own bound is on entries; the byte bound is kept here, by
	// evicting the oldest until the blocks fit (onEvict counts them out).
	c.lru, _ = simplelru.NewLRU[cid.Cid, blocks.Block](max, func(_ cid.Cid, b blocks.Block) {
		c.size -= cost(b)
	})
	return c
}

// entryCost is what the cache counts for one block besides its bytes (the
// CID, the list entry, the map slot), so that many tiny blocks are bounded
// too.
const entryCost = 128

// cost is what b counts against the cache's bound.
func cost(b blocks.Block) int { return len(b.RawData()) + entryCost }

// cached returns the block if the cache holds it.
func (c *cache) cached(k cid.Cid) (blocks.Block, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(k)
}

// Has reports whether the node or the cache holds k.
func (c *cache) Has(ctx context.Context, k cid.Cid) (bool, error) {
	if _, ok := c.cached(k); ok {
		return true, nil
	}
	return c.Blockstore.Has(ctx, k)
}

// Get returns the block from the cache, else from the node's store.
func (c *cache) Get(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	if b, ok := c.cached(k); ok {
		return b, nil
	}
	return c.Blockstore.Get(ctx, k)
}

// GetSize returns the block's size from the cache, else from the node's
// store.
func (c *cache) GetSize(ctx context.Context, k cid.Cid) (int, error) {
	if b, ok := c.cached(k); ok {
		return len(b.RawData()), nil
	}
	return c.Blockstore.GetSize(ctx, k)
}

// Put keeps a fetched block, evicting the least recently used ones past
// the byte bound. A block larger than the whole bound is not kept.
func (c *cache) Put(_ context.Context, b blocks.Block) error {
	n := cost(b)
	if n > c.max {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(b.Cid()) {
		return nil // the same CID, the same bytes
	}
	c.lru.Add(b.Cid(), b)
	c.size += n
	for c.size > c.max {
		c.lru.RemoveOldest()
	}
	return nil
}

// PutMany puts each block.
func (c *cache) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := c.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// DeleteBlock drops k from the cache; the node's blocks stay.
func (c *cache) DeleteBlock(_ context.Context, k cid.Cid) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.lru.Remove(k) {
		return ipld.ErrNotFound{Cid: k}
	}
	return nil
}
