package transfer

import (
	"sync"

	"github.com/ipfs/go-cid"
)

// recentBlocks keeps the last few leaves this node's sessions verified and
// stored while remotes fetch the same root from it: a crowd asks for a leaf
// the moment its HAVE goes out, and such a leaf is then sent from memory
// instead of being read back from the download's file and hashed again (a
// file being written never has an identity old enough to be trusted, see
// peer.Store), which in a crowd of 16 cost as much CPU as verifying what
// arrives. The bytes were verified against their CID, so what is sent is
// right whatever happens to the file meanwhile. At most recentKeep
// buffers of at most MaxBlockSize are kept; one is recycled once evicted
// and no longer being sent.
type recentBlocks struct {
	mu    sync.Mutex
	byCID map[cid.Cid]*recentBlock
	order []cid.Cid // kept leaves, oldest first
}

// recentBlock is a kept leaf and how many writers are sending it.
type recentBlock struct {
	m       *Msg
	senders int
	evicted bool
}

// recentKeep is how many leaves are kept: a second of a 100 Mbit/s
// download, and at most 8 MiB.
const recentKeep = 8

// keep takes m, the verified block c, and keeps it in place of the oldest
// kept one. m's memory reservation on its stream is returned (the stream
// may end first): what is kept here is bounded by recentKeep instead.
func (r *recentBlocks) keep(c cid.Cid, m *Msg) {
	m.unreserve()
	r.mu.Lock()
	if r.byCID == nil {
		r.byCID = map[cid.Cid]*recentBlock{}
	}
	if r.byCID[c] != nil {
		r.mu.Unlock()
		m.Release()
		return
	}
	r.byCID[c] = &recentBlock{m: m}
	r.order = append(r.order, c)
	var free []*Msg
	for len(r.order) > recentKeep {
		old := r.byCID[r.order[0]]
		delete(r.byCID, r.order[0])
		r.order = r.order[1:]
		old.evicted = true
		if old.senders == 0 {
			free = append(free, old.m)
		}
	}
	r.mu.Unlock()
	for _, m := range free {
		m.Release()
	}
}

// get returns the kept block c and done, to call once it is sent (the
// data must not be used after), or ok false if c is not kept.
func (r *recentBlocks) get(c cid.Cid) (data []byte, done func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.byCID[c]
	if b == nil {
		return nil, nil, false
	}
	b.senders++
	var once sync.Once
	return b.m.Data, func() { once.Do(func() { r.sent(b) }) }, true
}

func (r *recentBlocks) sent(b *recentBlock) {
	r.mu.Lock()
	b.senders--
	free := b.evicted && b.senders == 0
	r.mu.Unlock()
	if free {
		b.m.Release()
	}
}
