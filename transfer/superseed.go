package transfer

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
)

// Super-seeding (BitTorrent's answer to the same problem): a node that holds
// every leaf of a root and faces several remotes for it shows each new
// remote only a few leaves at a time, each leaf to one remote, until it
// has uploaded every leaf once; then it shows everything to everyone.
// Downloaders that start together would otherwise pick the same leaves
// from the seed (each sees them all as equally rare) and the seed's
// upload, the crowd's bottleneck, would carry copies the crowd could trade
// among itself. Downloaders need nothing special: the seed simply looks
// like a peer that gains leaves as it goes.
const (
	// revealAhead is how many leaves a remote is shown beyond those it has
	// asked for: every WANT shows one more, so a remote can always fill
	// its window.
	revealAhead = 4
	// revealIdle is how long a super-seeded remote may ask for nothing
	// before the leaves it was shown and did not ask for are shown to
	// others (it gets them elsewhere, or it stalled), and, if no remote of
	// the root is asking for anything either, it is shown everything.
	revealIdle = 500 * time.Millisecond
)

// superSeed is a root's state while this node super-seeds it.
type superSeed struct {
	order  []int  // leaf indexes in random order
	next   int    // order[next:] are to be shown, to no one yet
	pooled []bool // by leaf index: in order[next:]
	sent   []bool // by leaf index: uploaded at least once
	unsent int    // leaves never uploaded; super-seeding ends at 0
}

// startRevealLocked decides what a new stream for root is shown first. If
// this node holds all n leaves, other remotes are fetching root from it,
// and it has not uploaded each leaf once, ss is super-seeded: the returned
// have-map bits are the leaves shown to it. Otherwise it returns nil and
// ss is shown everything. ss must be subscribed already. When ss starts
// super-seeding, a remote that was shown everything while it was alone is
// super-seeded from then on too: the returned HAVEs show it a few leaves.
func (s *Service) startRevealLocked(ss *serverStream, root cid.Cid, n int) (bitfield, map[*serverStream][]uint64) {
	if len(s.subs[root]) < 2 {
		return nil, nil // a lone remote: nothing to share out
	}
	var out map[*serverStream][]uint64
	sp := s.seeding[root]
	if sp == nil {
		sp = s.newSuperSeedLocked(root, n)
		s.seeding[root] = sp
		if sp.unsent > 0 {
			out = map[*serverStream][]uint64{}
			for o := range s.subs[root] {
				if o != ss && o.shown == nil {
					o.shown = newBitfield(n)
					out[o] = s.revealLocked(o, revealAhead)
				}
			}
		}
	}
	if sp.unsent == 0 {
		return nil, out
	}
	ss.shown = newBitfield(n)
	s.revealLocked(ss, revealAhead) // in the have-map, not as HAVEs
	return slices.Clone(ss.shown), out
}

// newSuperSeedLocked starts super-seeding root's n leaves: those uploaded
// already to a remote still here are not shown, the rest in random order.
func (s *Service) newSuperSeedLocked(root cid.Cid, n int) *superSeed {
	sp := &superSeed{pooled: make([]bool, n), sent: make([]bool, n)}
	for o := range s.subs[root] {
		for i := range o.got.all() {
			if i < n {
				sp.sent[i] = true
			}
		}
	}
	for _, i := range rand.Perm(n) {
		if sp.sent[i] {
			continue
		}
		sp.order = append(sp.order, i)
		sp.pooled[i] = true
		sp.unsent++
	}
	return sp
}

// servesLocked reports whether ss may be sent leaf c now. While root is
// super-seeded, a super-seeded remote gets the leaves it was shown and
// those shown to nobody yet; the others are kept for the remotes they were
// shown to, or come from the crowd. The refusal (DONT_HAVE) is undone by
// the HAVEs that end super-seeding.
func (s *Service) servesLocked(ss *serverStream, c cid.Cid) bool {
	sp, li := s.seeding[ss.root], s.manifest[ss.root]
	if ss.shown == nil || sp == nil || li == nil {
		return true
	}
	i, ok := li.pos[c]
	return !ok || ss.shown.has(i) || sp.pooled[i]
}

// revealLocked shows super-seeded stream ss up to k more leaves nobody was
// shown and returns the HAVEs to send.
func (s *Service) revealLocked(ss *serverStream, k int) []uint64 {
	sp := s.seeding[ss.root]
	if ss.shown == nil || sp == nil {
		return nil
	}
	var idx []uint64
	for ; k > 0 && sp.next < len(sp.order); sp.next++ {
		i := sp.order[sp.next]
		if !sp.pooled[i] {
			continue // sent from the pool
		}
		k--
		sp.pooled[i] = false
		ss.shown.set(i)
		idx = append(idx, uint64(i))
	}
	return idx
}

// showAllLocked ends super-seeding for ss: it returns HAVEs for every
// leaf ss was not shown.
func (s *Service) showAllLocked(ss *serverStream) []uint64 {
	var idx []uint64
	if sp := s.seeding[ss.root]; sp != nil {
		for i := range len(sp.sent) {
			if !ss.shown.has(i) {
				idx = append(idx, uint64(i))
			}
		}
	}
	ss.shown = nil
	return idx
}

// sentLocked records that leaf c of ss's root was uploaded. When that was
// the last leaf never uploaded, super-seeding ends: every super-seeded
// stream of the root is shown the rest, returned as HAVEs by stream.
func (s *Service) sentLocked(ss *serverStream, c cid.Cid) map[*serverStream][]uint64 {
	sp, li := s.seeding[ss.root], s.manifest[ss.root]
	if li == nil {
		return nil
	}
	i, ok := li.pos[c]
	if !ok {
		return nil
	}
	if ss.got == nil {
		ss.got = newBitfield(len(li.leaves))
	}
	ss.got.set(i)
	if sp == nil || sp.unsent == 0 || i >= len(sp.sent) || sp.sent[i] {
		return nil
	}
	sp.sent[i] = true
	sp.pooled[i] = false
	if sp.unsent--; sp.unsent > 0 {
		return nil
	}
	out := map[*serverStream][]uint64{}
	for o := range s.subs[ss.root] {
		if o.shown != nil {
			out[o] = s.showAllLocked(o)
		}
	}
	return out
}

// wanted handles a WANT for c: a super-seeded remote asking for a leaf it
// may have is shown one more, so it always has a few to ask for. A WANT
// that will be refused shows nothing, or a remote that once saw
// everything would be shown leaves faster than it can take them.
func (ss *serverStream) wanted(c cid.Cid) {
	s := ss.svc
	s.mu.Lock()
	var idx []uint64
	if ss.shown != nil && s.servesLocked(ss, c) {
		ss.stalled = false
		idx = s.revealLocked(ss, 1)
	}
	s.mu.Unlock()
	ss.sendHaves(idx)
}

// feed shows a super-seeded remote that has nothing left to ask for a few
// more leaves: new ones while there are, then, once every leaf was shown,
// half of those shown to another remote and not sent yet (see
// stealLocked; that remote gets them from the crowd). A stalled remote is
// not fed (see idle).
func (ss *serverStream) feed() {
	s := ss.svc
	s.mu.Lock()
	var idx []uint64
	if sp := s.seeding[ss.root]; ss.shown != nil && sp != nil && !ss.stalled && len(s.unsentShownLocked(ss, sp)) == 0 {
		if idx = s.revealLocked(ss, revealAhead); len(idx) == 0 {
			idx = s.stealLocked(ss, sp)
		}
	}
	s.mu.Unlock()
	ss.sendHaves(idx)
}

// stealLocked moves to ss half the leaves shown to another remote that
// nobody was sent, from the remote with the most (at least 2: one is
// likely on its way), and returns them as HAVEs. Those the other remote
// asked for already are refused when its turn comes: the last leaves go
// out over several connections at once instead of queued on one.
func (s *Service) stealLocked(ss *serverStream, sp *superSeed) []uint64 {
	var from *serverStream
	var spare []int
	for o := range s.subs[ss.root] {
		if o == ss || o.shown == nil {
			continue
		}
		cand := s.unsentShownLocked(o, sp)
		if len(cand) >= 2 && len(cand) > len(spare) {
			from, spare = o, cand
		}
	}
	var idx []uint64
	for _, i := range spare[:(len(spare)+1)/2] {
		from.shown.unset(i)
		ss.shown.set(i)
		idx = append(idx, uint64(i))
	}
	return idx
}

// unsentShownLocked returns the leaves shown to ss that nobody was sent.
func (s *Service) unsentShownLocked(ss *serverStream, sp *superSeed) []int {
	var out []int
	for i := range ss.shown.all() {
		if !sp.sent[i] {
			out = append(out, i)
		}
	}
	return out
}

// idle handles a super-seeded remote that asked for nothing for
// revealIdle. The leaves it was shown and nobody was sent go back to be
// shown to others (a WANT it still sends for them is refused): it gets
// them elsewhere, or it stalled, and it is fed no more until it asks for
// something. It is shown everything only once no remote of the root is
// being served either: while others are, this node's upload carries
// leaves uploaded to nobody yet, and the idle remote gets the rest from
// the crowd.
func (ss *serverStream) idle(now time.Time) {
	s := ss.svc
	s.mu.Lock()
	var idx []uint64
	if sp := s.seeding[ss.root]; ss.shown != nil && sp != nil {
		if s.reclaimLocked(ss, sp) > 0 {
			ss.stalled = true
		}
		busy := false
		for o := range s.subs[ss.root] {
			busy = busy || (o != ss && o.servedSince(now.Add(-revealIdle)))
		}
		if !busy {
			idx = s.showAllLocked(ss)
		}
	}
	s.mu.Unlock()
	ss.sendHaves(idx)
}

// reclaimLocked puts the leaves shown to ss that nobody was sent back in
// the pool, wakes the other remotes' writers to be fed from it, and
// returns how many there were.
func (s *Service) reclaimLocked(ss *serverStream, sp *superSeed) int {
	var back []int
	for _, i := range s.unsentShownLocked(ss, sp) {
		ss.shown.unset(i)
		if !sp.pooled[i] {
			sp.pooled[i] = true
			back = append(back, i)
		}
	}
	sp.order, sp.next = append(sp.order[sp.next:], back...), 0
	if len(back) > 0 {
		for o := range s.subs[ss.root] {
			if o != ss {
				o.signal() // an idle writer feeds its remote from the pool
			}
		}
	}
	return len(back)
}

// leaveLocked unsubscribes ss: the leaves it was shown and nobody was sent
// go to the others.
func (s *Service) leaveLocked(ss *serverStream) {
	if sp := s.seeding[ss.root]; ss.shown != nil && sp != nil {
		s.reclaimLocked(ss, sp)
	}
	delete(s.subs[ss.root], ss)
	s.dropIndexLocked(ss.root)
}

// servedSince reports whether a block was on its way to ss at or after t.
func (ss *serverStream) servedSince(t time.Time) bool {
	return ss.busyAt.Load() >= t.UnixNano()
}

// superSeeded reports whether ss is still shown leaves a few at a time.
func (ss *serverStream) superSeeded() bool {
	ss.svc.mu.Lock()
	defer ss.svc.mu.Unlock()
	return ss.shown != nil
}

func sendHaves(out map[*serverStream][]uint64) {
	for o, idx := range out {
		o.sendHaves(idx)
	}
}
