package transfer

import (
	"time"

	"github.com/ipfs/go-cid"
)

// scheduler decides which peer is asked for which block, and when a
// request is given up on or duplicated. It is pure: events go in (a peer
// joins or leaves, HAVE, BLOCK, DONT_HAVE, a tick with the current time)
// and the requests to send or cancel come out; it does no I/O, starts no
// goroutine and reads no clock, so its decisions are table-tested. Its
// owner (a Session) serialises calls under its lock.
//
// Peers are named by a key the owner gives each connection, not by peer
// ID: a late event from a dropped connection cannot touch the state of a
// new one to the same peer.
type scheduler struct {
	leaves []cid.Cid // the root's distinct leaves; nil until setLeaves
	pk     *picker   // nil until setLeaves
	peers  map[uint64]*peerState
	// dueAt is, by leaf, when its first outstanding request should be
	// answered at its peer's measured rate.
	dueAt  map[int]time.Time
	nextID uint64
}

// peerState is what the scheduler knows of one connection.
type peerState struct {
	have     bitfield // the root's leaves it holds; nil if unknown
	count    uint64   // leaves the have-map describes
	win      window
	inflight map[uint64]*request
	asked    map[int]uint64 // leaf index -> request ID
	replied  time.Time      // when it last answered a request
}

func (p *peerState) has(i int) bool { return p.have != nil && p.have.has(i) }

// request is one WANT in flight.
type request struct {
	id       uint64
	peer     uint64 // the connection's key
	c        cid.Cid
	idx      int // leaf index, or -1 for a single block (Session.Block)
	sent     time.Time
	timedOut bool // given up on: others may be asked; kept in case it comes
}

func newScheduler() *scheduler {
	return &scheduler{peers: map[uint64]*peerState{}, dueAt: map[int]time.Time{}}
}

// addPeer registers a connection and the have-map it sent (nil bits: it
// did not say).
func (s *scheduler) addPeer(key uint64, have bitfield, count uint64) {
	p := &peerState{win: newWindow(minWindow, maxWindow), inflight: map[uint64]*request{}, asked: map[int]uint64{}}
	if count > 0 {
		p.have, p.count = have, count
	}
	s.peers[key] = p
	s.countHaveMap(p)
}

// countHaveMap counts a peer's have-map into leaf availability, if it
// describes the same leaf list as ours; a different view is dropped and
// only its HAVEs are trusted.
func (s *scheduler) countHaveMap(p *peerState) {
	if s.pk == nil || p.have == nil {
		return
	}
	if p.count != uint64(len(s.leaves)) {
		p.have, p.count = nil, 0
		return
	}
	for i := range s.leaves {
		if p.has(i) {
			s.pk.avail[i]++
		}
	}
}

// removePeer forgets a connection and returns its outstanding requests.
func (s *scheduler) removePeer(key uint64) []*request {
	p := s.peers[key]
	if p == nil {
		return nil
	}
	var out []*request
	for _, req := range p.inflight {
		s.finish(req)
		out = append(out, req)
	}
	if s.pk != nil && p.have != nil {
		for i := range s.leaves {
			if p.has(i) {
				s.pk.avail[i]--
			}
		}
	}
	delete(s.peers, key)
	return out
}

// setLeaves starts the download of the root's distinct leaves; held
// reports those already stored. seed seeds the picker's tie-breaks.
func (s *scheduler) setLeaves(leaves []cid.Cid, held func(int) bool, seed uint64) {
	s.leaves = leaves
	s.pk = newPicker(len(leaves), seed)
	for i := range leaves {
		if held(i) {
			s.pk.done(i)
		}
	}
	for _, p := range s.peers {
		s.countHaveMap(p)
	}
}

// left is how many leaves are still missing (0 before setLeaves).
func (s *scheduler) left() int {
	if s.pk == nil {
		return 0
	}
	return s.pk.left
}

// have records a HAVE. Before setLeaves it is kept with the have-map.
func (s *scheduler) have(key uint64, i uint64) {
	p := s.peers[key]
	switch {
	case p == nil:
	case s.pk == nil:
		if p.have != nil && i < p.count {
			p.have.set(int(i))
		}
	case i < uint64(len(s.leaves)):
		if p.have == nil {
			p.have, p.count = newBitfield(len(s.leaves)), uint64(len(s.leaves))
		}
		if !p.has(int(i)) {
			p.have.set(int(i))
			s.pk.avail[i]++
		}
	}
}

// replied notes that a connection answered request id at now; it reports
// false if no request ever had that ID (a protocol violation; a reply to
// a request that was cancelled is not one).
func (s *scheduler) replied(key, id uint64, now time.Time) bool {
	if id == 0 || id > s.nextID {
		return false
	}
	if p := s.peers[key]; p != nil {
		p.replied = now
	}
	return true
}

// pending returns request id of the connection if it is still in flight.
func (s *scheduler) pending(key, id uint64) *request {
	if p := s.peers[key]; p != nil {
		return p.inflight[id]
	}
	return nil
}

// delivered records a verified BLOCK of size bytes answering request id;
// stored says whether the store kept it. It reports false if nobody waits
// for the block any more (another copy came first, or it was cancelled),
// and returns the endgame duplicates to cancel.
func (s *scheduler) delivered(key, id uint64, size int, now time.Time, stored bool) (bool, []*request) {
	p := s.peers[key]
	if p == nil {
		return false, nil
	}
	req := p.inflight[id]
	if req == nil {
		return false, nil
	}
	s.finish(req)
	p.win.delivered(size, now)
	if !stored || req.idx < 0 || s.pk == nil || !s.pk.need[req.idx] {
		return true, nil
	}
	s.pk.done(req.idx)
	var cancels []*request
	for _, o := range s.peers {
		if dupID, ok := o.asked[req.idx]; ok {
			if dup := o.inflight[dupID]; dup != nil {
				s.finish(dup)
				cancels = append(cancels, dup)
			}
		}
	}
	return true, cancels
}

// dontHave records a DONT_HAVE for request id and returns the request
// (nil if it was no longer in flight).
func (s *scheduler) dontHave(key, id uint64) *request {
	p := s.peers[key]
	if p == nil {
		return nil
	}
	req := p.inflight[id]
	if req == nil {
		return nil
	}
	s.finish(req)
	if req.idx >= 0 && p.has(req.idx) {
		p.have.unset(req.idx)
		s.pk.avail[req.idx]--
	}
	return req
}

// cancel gives up request id of the connection (Session.Block's timeout).
func (s *scheduler) cancel(key, id uint64) {
	if req := s.pending(key, id); req != nil {
		s.finish(req)
	}
}

// finish removes a request from its peer and the picker.
func (s *scheduler) finish(req *request) {
	p := s.peers[req.peer]
	if p == nil {
		return
	}
	if _, ok := p.inflight[req.id]; !ok {
		return
	}
	delete(p.inflight, req.id)
	if req.idx >= 0 {
		delete(p.asked, req.idx)
		if !req.timedOut && s.pk != nil {
			s.pk.released(req.idx)
		}
	}
}

// blockPeer chooses whom to ask for a single block: a connection not in
// tried, one whose have-map names the root's leaves first.
func (s *scheduler) blockPeer(tried map[uint64]bool) (uint64, bool) {
	best, found, known := uint64(0), false, false
	for key, p := range s.peers {
		if tried[key] {
			continue
		}
		if !found || (!known && p.have != nil) {
			best, found, known = key, true, p.have != nil
		}
	}
	return best, found
}

// want records a request for c (leaf idx, or -1) to the connection.
func (s *scheduler) want(key uint64, c cid.Cid, idx int, now time.Time) *request {
	return s.wantAs(key, s.reserve(), c, idx, now)
}

// reserve names a request before it is made: a session's opening request
// goes out with HELLO, before its connection is known here (see wantAs).
func (s *scheduler) reserve() uint64 {
	s.nextID++
	return s.nextID
}

// wantAs is want for a request named by reserve.
func (s *scheduler) wantAs(key, id uint64, c cid.Cid, idx int, now time.Time) *request {
	p := s.peers[key]
	req := &request{id: id, peer: key, c: c, idx: idx, sent: now}
	p.inflight[req.id] = req
	if idx >= 0 {
		p.asked[idx] = req.id
		if s.pk.inflight[idx] == 0 {
			// The pipeline ahead of it, this request included.
			s.dueAt[idx] = now.Add(p.win.expect(p.active(), typicalLeaf, requestFloor))
		}
		s.pk.requested(idx)
	}
	return req
}

// tick gives up requests that waited too long (their leaves may be asked
// of others) and fills every peer's window; it returns the requests to
// send.
func (s *scheduler) tick(now time.Time) []*request {
	if s.pk == nil {
		return nil
	}
	for _, p := range s.peers {
		silent := p.silent(now)
		for _, req := range p.inflight {
			if req.idx < 0 || req.timedOut {
				continue
			}
			if silent || now.Sub(req.sent) > p.win.timeout(typicalLeaf, requestFloor) {
				req.timedOut = true
				s.pk.released(req.idx)
				p.win.timedOut()
			}
		}
	}
	share := s.shares()
	var out []*request
	for key, p := range s.peers {
		if p.silent(now) {
			continue // not sent more until it answers
		}
		// In the endgame a leaf is asked of another peer too if it is
		// overdue or this peer should deliver it sooner: a leaf stuck
		// behind a slow or busy peer is rescued, one queued at a peer as
		// fast as any is not fetched twice.
		ownDue := now.Add(p.win.expect(p.active()+1, typicalLeaf, requestFloor))
		skip := func(i int) bool {
			if _, mine := p.asked[i]; mine {
				return true
			}
			due := s.dueAt[i]
			return s.pk.inflight[i] > 0 && now.Before(due) && !ownDue.Before(due)
		}
		limit := min(p.win.size, share(p))
		for p.active() < limit && len(p.inflight) < maxInflight {
			i, ok := s.pk.pick(p.has, skip)
			if !ok {
				break
			}
			out = append(out, s.want(key, s.leaves[i], i, now))
		}
	}
	return out
}

// shares returns, for each peer, how many leaves it may hold requested:
// its part, by measured rate, of half the leaves still missing (at least
// minWindow). Early in a download this is above every window and changes
// nothing. Near the end it keeps half the missing leaves unrequested, for
// whichever link frees up first, instead of queued behind seconds of work
// at the peers that asked first: a link that slows near the end holds few
// leaves, and the links finish together.
func (s *scheduler) shares() func(*peerState) int {
	var total float64
	for _, p := range s.peers {
		total += p.win.rate
	}
	half := float64(s.pk.left) / 2
	return func(p *peerState) int {
		if total <= 0 || p.win.rate <= 0 {
			return maxWindow // no rate yet: the window alone limits it
		}
		return max(minWindow, int(half*p.win.rate/total)+1)
	}
}

// active counts a peer's requests that still hold a window slot.
func (p *peerState) active() int {
	n := 0
	for _, req := range p.inflight {
		if !req.timedOut {
			n++
		}
	}
	return n
}

// silent reports whether the peer has left requests unanswered for
// silentAfter (or three leaves' time at its measured rate) without
// answering any.
func (p *peerState) silent(now time.Time) bool {
	if len(p.inflight) == 0 {
		return false
	}
	var since time.Time // the oldest request, or the last answer if later
	for _, req := range p.inflight {
		if since.IsZero() || req.sent.Before(since) {
			since = req.sent
		}
	}
	if p.replied.After(since) {
		since = p.replied
	}
	wait := silentAfter
	if p.win.rate > 0 {
		wait = max(wait, p.win.expect(3, typicalLeaf, 0))
	}
	return now.Sub(since) > wait
}
