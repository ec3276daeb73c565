package transfer

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestRecentBlocks: the last recentKeep leaves kept are served from
// memory; an older one is evicted, and its buffer is recycled only once
// every writer sending it is done, never under a writer.
func TestRecentBlocks(t *testing.T) {
	leaf := func(i int) (cid.Cid, *Msg) {
		data := []byte(fmt.Sprintf("leaf %d", i))
		h, err := mh.Sum(data, mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(data), pooledLen) // as ReadMsg's, for the pool
		copy(buf, data)
		return cid.NewCidV1(cid.Raw, h), &Msg{Type: MsgBlock, Data: buf, buf: buf}
	}
	var r recentBlocks
	c0, m0 := leaf(0)
	r.keep(c0, m0)
	data, done, ok := r.get(c0)
	if !ok || !bytes.Equal(data, []byte("leaf 0")) {
		t.Fatalf("get of a kept leaf: %q, %v", data, ok)
	}
	// Evict leaf 0 while it is being sent: its buffer must stay.
	for i := 1; i <= recentKeep; i++ {
		c, m := leaf(i)
		r.keep(c, m)
	}
	if _, _, ok := r.get(c0); ok {
		t.Fatal("the oldest leaf is still served after recentKeep newer ones")
	}
	if len(r.byCID) != recentKeep {
		t.Fatalf("%d leaves kept, want %d", len(r.byCID), recentKeep)
	}
	if m0.Data == nil || !bytes.Equal(data, []byte("leaf 0")) {
		t.Fatal("an evicted leaf's buffer was recycled while a writer was sending it")
	}
	done()
	done() // twice: harmless
	if m0.Data != nil {
		t.Fatal("an evicted leaf's buffer was not recycled once its writer was done")
	}
	// A leaf kept twice keeps the first copy and recycles the second.
	c1, _ := leaf(1)
	_, dup := leaf(1)
	r.keep(c1, dup)
	if dup.Data != nil {
		t.Fatal("a second copy of a kept leaf was not recycled")
	}
	if data, done, ok := r.get(c1); !ok || !bytes.Equal(data, []byte("leaf 1")) {
		t.Fatalf("get of leaf 1: %q, %v", data, ok)
	} else {
		done()
	}
}
