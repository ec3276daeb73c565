package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
)

// TestCacheBound: the cache never holds more than its bound, drops the
// least recently used block first, and keeps none larger than the bound.
func TestCacheBound(t *testing.T) {
	ctx := context.Background()
	const blockSize = 1000
	max := 10 * (blockSize + entryCost)
	c := newCache(blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())), max)
	var bs []blocks.Block
	for i := range 30 {
		data := fmt.Appendf(make([]byte, 0, blockSize), "block %d", i)
		bs = append(bs, blocks.NewBlock(data[:blockSize:blockSize]))
	}
	for i, b := range bs {
		if err := c.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i == 9 {
			c.Get(ctx, bs[0].Cid()) // block 0 is now the most recently used
		}
		if i == 14 {
			has0, _ := c.Has(ctx, bs[0].Cid())
			has1, _ := c.Has(ctx, bs[1].Cid())
			if !has0 || has1 {
				t.Errorf("after 15 puts: block 0 (used last) held %v, block 1 (oldest) held %v", has0, has1)
			}
		}
		if c.size > max {
			t.Fatalf("after %d puts the cache holds %d, bound %d", i+1, c.size, max)
		}
	}
	for i, b := range bs {
		has, _ := c.Has(ctx, b.Cid())
		if want := i >= 20; has != want {
			t.Errorf("block %d held: %v, want %v", i, has, want)
		}
	}
	big := blocks.NewBlock(make([]byte, max))
	c.Put(ctx, big)
	if has, _ := c.Has(ctx, big.Cid()); has || c.size > max {
		t.Errorf("a block larger than the bound: held %v, size %d", has, c.size)
	}
}
