package transfer

import (
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

// What a server keeps for a remote is bounded by constants and by the
// root's leaf count, never by how much the remote sends: the two queues
// below are a stream's only structures a remote adds to.

// wantQueue is one stream's WANTs waiting to be served, in arrival order
// and by request ID. It holds at most maxQueuedPerRemote WANTs, and a
// CANCEL removes its WANT at once, so a remote that sends WANT/CANCEL
// pairs and never reads (the writer blocked on it) cannot grow it.
// Its owner, serverStream, guards it with its mutex.
type wantQueue struct {
	order []*Msg
	byID  map[uint64]*Msg
}

// add queues a WANT. A second WANT with the ID of a queued one is ignored.
// It reports false, queuing nothing, if the queue is full.
func (q *wantQueue) add(m *Msg) bool {
	if _, dup := q.byID[m.ID]; dup {
		return true
	}
	if len(q.order) >= maxQueuedPerRemote {
		return false
	}
	if q.byID == nil {
		q.byID = map[uint64]*Msg{}
	}
	q.byID[m.ID] = m
	q.order = append(q.order, m)
	return true
}

// cancel removes the WANT with request ID id, if queued.
func (q *wantQueue) cancel(id uint64) {
	if m, ok := q.byID[id]; ok {
		q.take(m)
	}
}

// take removes m for serving; it reports false if m was cancelled
// meanwhile.
func (q *wantQueue) take(m *Msg) bool {
	if q.byID[m.ID] != m {
		return false
	}
	delete(q.byID, m.ID)
	if i := slices.Index(q.order, m); i >= 0 {
		q.order = slices.Delete(q.order, i, i+1)
	}
	return true
}

// len is the number of WANTs queued.
func (q *wantQueue) len() int { return len(q.order) }

// list returns the queued WANTs in arrival order (a copy).
func (q *wantQueue) list() []*Msg { return slices.Clone(q.order) }

// haveQueue is the set of leaf indexes to announce to one remote as HAVEs.
// It is a bitfield, so what waits for a remote that does not read is at
// most one bit per leaf of the root, however often leaves are announced.
// Its owner, serverStream, guards it with its mutex.
type haveQueue struct {
	bits   bitfield
	lo, hi int // every pending index is in [lo, hi)
}

// add queues HAVEs for idx; indexes no have-map could describe are
// dropped.
func (q *haveQueue) add(idx []uint64) {
	for _, v := range idx {
		if v >= maxLeaves {
			continue
		}
		i := int(v)
		if need := i/8 + 1; need > len(q.bits) {
			q.bits = append(q.bits, make(bitfield, need-len(q.bits))...)
		}
		if q.lo == q.hi {
			q.lo, q.hi = i, i+1
		} else {
			q.lo, q.hi = min(q.lo, i), max(q.hi, i+1)
		}
		q.bits.set(i)
	}
}

// take removes up to max pending indexes, lowest first, and appends them
// to out.
func (q *haveQueue) take(out []uint64, max int) []uint64 {
	for ; q.lo < q.hi && max > 0; q.lo++ {
		if q.bits.has(q.lo) {
			q.bits.unset(q.lo)
			out = append(out, uint64(q.lo))
			max--
		}
	}
	return out
}

// empty reports whether no HAVE is pending.
func (q *haveQueue) empty() bool {
	for ; q.lo < q.hi && !q.bits.has(q.lo); q.lo++ {
	}
	return q.lo >= q.hi
}

// acceptableCID reports whether a CID from the network may be looked up
// or served: codec raw or dag-pb, and a full-length sha2-256 or a short
// identity multihash (chunker.CheckCID). Anything else (md5, a truncated
// sha2-256, an absurd codec) is refused before it reaches the store.
func acceptableCID(c cid.Cid) bool { return chunker.CheckCID(c) == nil }
