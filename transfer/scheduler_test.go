package transfer

import (
	"fmt"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// schedHarness drives a scheduler through events with a fake clock.
type schedHarness struct {
	t      *testing.T
	s      *scheduler
	now    time.Time
	leaves []cid.Cid
	sent   map[uint64]*request // every request tick or want returned, by ID
}

func newSchedHarness(t *testing.T, n int) *schedHarness {
	h := &schedHarness{t: t, s: newScheduler(), now: time.Unix(1000, 0), sent: map[uint64]*request{}}
	for i := range n {
		sum, err := mh.Sum(fmt.Appendf(nil, "leaf %d", i), mh.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		h.leaves = append(h.leaves, cid.NewCidV1(cid.Raw, sum))
	}
	return h
}

// peer adds connection key holding the given leaves (all if none given).
func (h *schedHarness) peer(key uint64, has ...int) {
	n := len(h.leaves)
	b := newBitfield(n)
	if len(has) == 0 {
		for i := range n {
			b.set(i)
		}
	}
	for _, i := range has {
		b.set(i)
	}
	h.s.addPeer(key, b, uint64(n))
}

func (h *schedHarness) start() {
	h.s.setLeaves(h.leaves, func(int) bool { return false }, 1)
}

// tick advances the clock by d and returns the new requests by peer.
func (h *schedHarness) tick(d time.Duration) map[uint64][]int {
	h.now = h.now.Add(d)
	out := map[uint64][]int{}
	for _, req := range h.s.tick(h.now) {
		h.sent[req.id] = req
		out[req.peer] = append(out[req.peer], req.idx)
	}
	return out
}

// answer delivers every in-flight request of peer for leaf idx, d apart,
// and returns the cancels.
func (h *schedHarness) deliver(key uint64, idx int, d time.Duration) []*request {
	h.t.Helper()
	for _, req := range h.s.peers[key].inflight {
		if req.idx == idx {
			h.now = h.now.Add(d)
			if !h.s.replied(key, req.id, h.now) {
				h.t.Fatalf("request %d unknown", req.id)
			}
			ok, cancels := h.s.delivered(key, req.id, typicalLeaf, h.now, true)
			if !ok {
				h.t.Fatalf("delivery of leaf %d from %d not wanted", idx, key)
			}
			return cancels
		}
	}
	h.t.Fatalf("peer %d has no request for leaf %d", key, idx)
	return nil
}

func (h *schedHarness) inflight(key uint64) map[int]bool {
	out := map[int]bool{}
	for _, req := range h.s.peers[key].inflight {
		if !req.timedOut {
			out[req.idx] = true
		}
	}
	return out
}

func TestSchedulerFillsWindowsWithWhatEachPeerHas(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		peers map[uint64][]int // nil: every leaf
		want  map[uint64]int   // requests after the first tick
	}{
		{"one peer, a window's worth", 20, map[uint64][]int{1: nil}, map[uint64]int{1: minWindow}},
		{"two peers, a window each", 20, map[uint64][]int{1: nil, 2: nil}, map[uint64]int{1: minWindow, 2: minWindow}},
		{"a peer with two leaves gets two", 20, map[uint64][]int{1: nil, 2: {3, 7}}, map[uint64]int{1: minWindow, 2: 2}},
		{"fewer leaves than windows: each asked once", 3, map[uint64][]int{1: nil, 2: nil}, map[uint64]int{1: 3, 2: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newSchedHarness(t, c.n)
			for key, has := range c.peers {
				h.peer(key, has...)
			}
			h.start()
			got := h.tick(0)
			seen := map[int]bool{}
			total := 0
			for key, idx := range got {
				for _, i := range idx {
					if c.peers[key] != nil && !h.s.peers[key].has(i) {
						t.Fatalf("peer %d asked for leaf %d it does not have", key, i)
					}
					if seen[i] {
						t.Fatalf("leaf %d asked twice before the endgame", i)
					}
					seen[i] = true
				}
				total += len(idx)
			}
			wantTotal := 0
			for key, n := range c.want {
				wantTotal += n
				if n > 0 && len(got[key]) != n && c.n >= 2*minWindow {
					t.Fatalf("peer %d asked %d, want %d (%v)", key, len(got[key]), n, got)
				}
			}
			if total != wantTotal {
				t.Fatalf("%d requests, want %d (%v)", total, wantTotal, got)
			}
		})
	}
}

func TestSchedulerMovesRequests(t *testing.T) {
	cases := []struct {
		name string
		// event happens to peer 1's requests; then peer 2 should get them
		event func(h *schedHarness)
	}{
		{"peer 1 silent past silentAfter", func(h *schedHarness) {
			h.tick(silentAfter + time.Millisecond)
		}},
		{"peer 1 past the timeout, answering now and then", func(h *schedHarness) {
			// It answers (so it is not silent) but never these requests.
			for range 9 {
				h.now = h.now.Add(time.Second)
				h.s.replied(1, 1, h.now)
				h.tick(0)
			}
		}},
		{"peer 1 dropped", func(h *schedHarness) {
			if out := h.s.removePeer(1); len(out) != minWindow {
				t.Fatalf("removePeer returned %d requests, want %d", len(out), minWindow)
			}
		}},
		{"peer 1 says DONT_HAVE", func(h *schedHarness) {
			for id := range h.s.peers[1].inflight {
				if h.s.dontHave(1, id) == nil {
					t.Fatal("DONT_HAVE for an in-flight request found none")
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newSchedHarness(t, minWindow)
			h.peer(1)
			h.start()
			first := h.tick(0)[1]
			if len(first) != minWindow {
				t.Fatalf("peer 1 asked %d, want %d", len(first), minWindow)
			}
			c.event(h)
			h.peer(2)
			h.tick(0)
			got := h.inflight(2)
			if len(got) != minWindow {
				t.Fatalf("peer 2 got %v, want all %d leaves of peer 1", got, minWindow)
			}
			if p1 := h.s.peers[1]; p1 != nil && len(h.inflight(1)) != 0 {
				t.Fatalf("peer 1 still holds window slots for %v", h.inflight(1))
			}
		})
	}
}

func TestSchedulerSilentPeerGetsNoMore(t *testing.T) {
	h := newSchedHarness(t, 40)
	h.peer(1)
	h.start()
	h.tick(0)
	if got := h.tick(silentAfter + time.Millisecond)[1]; len(got) != 0 {
		t.Fatalf("a silent peer was sent %v", got)
	}
	// It answers: it is sent requests again.
	h.deliver(1, h.sent[1].idx, 0)
	if got := h.tick(0)[1]; len(got) == 0 {
		t.Fatal("a peer that answered again was sent nothing")
	}
}

func TestSchedulerEndgame(t *testing.T) {
	h := newSchedHarness(t, 2)
	h.peer(1)
	h.start()
	if got := h.tick(0)[1]; len(got) != 2 {
		t.Fatalf("peer 1 asked %v, want both leaves", got)
	}
	// A peer joins with its window empty: in the endgame it may ask for
	// the same leaves, but only those due later than it would deliver.
	// Peer 1 has no measured rate (2 × floor per leaf expected), nor
	// does peer 2: nothing is duplicated while both are as fast.
	h.peer(2)
	if got := h.tick(0)[2]; len(got) != 0 {
		t.Fatalf("peer 2 duplicated %v though not faster", got)
	}
	// Once peer 1's requests are overdue, peer 2 is asked too.
	dup := h.tick(2*requestFloor + time.Millisecond)[2]
	if len(dup) != 2 {
		t.Fatalf("overdue leaves not duplicated: peer 2 got %v", dup)
	}
	// The first copy to arrive cancels the other.
	cancels := h.deliver(2, dup[0], 0)
	if len(cancels) != 1 || cancels[0].peer != 1 || cancels[0].idx != dup[0] {
		t.Fatalf("cancels %+v, want peer 1's request for leaf %d", cancels, dup[0])
	}
	// peer 1's copy arriving now is wasted.
	if ok, _ := h.s.delivered(1, cancels[0].id, typicalLeaf, h.now, true); ok {
		t.Fatal("a cancelled duplicate counted as delivered")
	}
	h.deliver(1, dup[1], 0)
	if h.s.left() != 0 {
		t.Fatalf("%d leaves left", h.s.left())
	}
	if got := h.tick(time.Second); len(got) != 0 {
		t.Fatalf("requests after completion: %v", got)
	}
}

func TestSchedulerDuplicatesCapped(t *testing.T) {
	h := newSchedHarness(t, 1)
	for key := range uint64(6) {
		h.peer(key + 1)
	}
	h.start()
	h.tick(0)
	h.tick(time.Minute) // every request overdue many times over
	for range 5 {
		h.tick(time.Millisecond)
	}
	asked := 0
	for _, p := range h.s.peers {
		asked += len(p.inflight)
	}
	if asked > maxDuplicates+1 { // the timed-out first request is kept
		t.Fatalf("one leaf asked of %d peers, cap %d", asked, maxDuplicates)
	}
}

func TestSchedulerRepliesValidated(t *testing.T) {
	h := newSchedHarness(t, 4)
	h.peer(1)
	h.start()
	h.tick(0)
	if h.s.replied(1, 0, h.now) || h.s.replied(1, 99, h.now) {
		t.Fatal("a reply to a request never made was accepted")
	}
	if !h.s.replied(1, 1, h.now) {
		t.Fatal("a reply to request 1 refused")
	}
	// Late events from a dropped connection touch nothing.
	h.s.removePeer(1)
	h.s.have(1, 2)
	if ok, _ := h.s.delivered(1, 2, typicalLeaf, h.now, true); ok || h.s.dontHave(1, 3) != nil {
		t.Fatal("a dropped connection's reply was counted")
	}
}

// A request named before its connection joined (a session's opening
// WANT, sent with HELLO) is recorded under that name, which no later
// request takes, and its reply is accepted once.
func TestSchedulerReservedRequest(t *testing.T) {
	h := newSchedHarness(t, 4)
	id := h.s.reserve()
	h.peer(1)
	root := h.leaves[0] // any CID: a block that is not a leaf here
	if req := h.s.wantAs(1, id, root, -1, h.now); req.id != id {
		t.Fatalf("wantAs recorded request %d, want %d", req.id, id)
	}
	if next := h.s.want(1, root, -1, h.now); next.id == id {
		t.Fatalf("want reused the reserved name %d", id)
	}
	if !h.s.replied(1, id, h.now) || h.s.pending(1, id) == nil {
		t.Fatal("the reply to the reserved request was refused")
	}
	if ok, _ := h.s.delivered(1, id, 100, h.now, true); !ok || h.s.pending(1, id) != nil {
		t.Fatal("the reserved request was not delivered")
	}
	if ok, _ := h.s.delivered(1, id, 100, h.now, true); ok {
		t.Fatal("the reserved request was delivered twice")
	}
}

func TestSchedulerHavesBeforeAndAfterStart(t *testing.T) {
	h := newSchedHarness(t, 8)
	h.peer(1, 0) // holds leaf 0
	h.s.have(1, 5)
	h.s.have(1, 99) // out of range: ignored
	h.start()
	got := h.tick(0)[1]
	if len(got) != 2 {
		t.Fatalf("asked %v, want leaves 0 and 5", got)
	}
	h.s.have(1, 6)
	if got := h.tick(0)[1]; len(got) != 1 || got[0] != 6 {
		t.Fatalf("asked %v after HAVE 6, want [6]", got)
	}
	if h.s.pk.avail[6] != 1 || h.s.pk.avail[1] != 0 {
		t.Fatalf("availability %v", h.s.pk.avail)
	}
}

// TestSchedulerTailSpread: near the end of a download from peers whose
// rates are known, at most about half the missing leaves are requested,
// in proportion to rate, so the last ones go to whichever link frees up
// rather than queueing behind one.
func TestSchedulerTailSpread(t *testing.T) {
	const n = 400
	h := newSchedHarness(t, n)
	h.peer(1)
	h.peer(2)
	h.start()
	// Peer 1 delivers at 50 MiB/s, peer 2 at 25, until few leaves are
	// left.
	for step := 0; h.s.left() > 60; step++ {
		h.tick(20 * time.Millisecond)
		for key := range uint64(2) {
			if key == 1 && step%2 == 1 {
				continue
			}
			for i := range h.inflight(key + 1) {
				h.deliver(key+1, i, 0)
				break
			}
		}
	}
	h.tick(0)
	left := h.s.left()
	f1, f2 := len(h.inflight(1)), len(h.inflight(2))
	if f1+f2 > left/2+2*minWindow {
		t.Fatalf("%d + %d requested of %d missing: the tail is queued, not spread", f1, f2, left)
	}
	if f1 <= f2 {
		t.Fatalf("the faster peer holds %d, the slower %d", f1, f2)
	}
	// Early on the windows alone limit it.
	e := newSchedHarness(t, n)
	e.peer(1)
	e.start()
	for range 200 {
		e.tick(0)
		for i := range e.inflight(1) {
			e.deliver(1, i, 10*time.Millisecond)
			break
		}
	}
	e.tick(0)
	if got := len(e.inflight(1)); got != e.s.peers[1].win.size {
		t.Fatalf("early in the download %d in flight, window %d", got, e.s.peers[1].win.size)
	}
}
