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
	// before it is shown everything: it gets what it was shown elsewhere
	// (other seeds), or the crowd has moved on.
	revealIdle = 250 * time.Millisecond
)

// superSeed is a root's state while this node super-seeds it.
type superSeed struct {
	order  []int  // leaf indexes in random order
	next   int    // order[next:] have been shown to no one
	sent   []bool // by leaf index: uploaded at least once
	unsent int    // leaves never uploaded; super-seeding ends at 0
}

// startRevealLocked decides what a new stream for root is shown first. If
// this node holds all n leaves, other remotes are fetching root from it,
// and it has not uploaded each leaf once, ss is super-seeded: the returned
// have-map bits are the leaves shown to it. Otherwise it returns nil and
// ss is shown everything. ss must be subscribed already.
func (s *Service) startRevealLocked(ss *serverStream, root cid.Cid, n int) []byte {
	if len(s.subs[root]) < 2 {
		return nil // a lone remote: nothing to share out
	}
	sp := s.seeding[root]
	if sp == nil {
		sp = &superSeed{order: rand.Perm(n), sent: make([]bool, n), unsent: n}
		s.seeding[root] = sp
	}
	if sp.unsent == 0 {
		return nil
	}
	ss.shown = make([]byte, (n+7)/8)
	s.revealLocked(ss, revealAhead) // in the have-map, not as HAVEs
	return slices.Clone(ss.shown)
}

// revealLocked shows super-seeded stream ss up to k more leaves nobody was
// shown and returns the HAVEs to send.
func (s *Service) revealLocked(ss *serverStream, k int) []uint64 {
	sp := s.seeding[ss.root]
	if ss.shown == nil || sp == nil {
		return nil
	}
	var idx []uint64
	for ; k > 0 && sp.next < len(sp.order); k-- {
		i := sp.order[sp.next]
		sp.next++
		ss.shown[i/8] |= 1 << (i % 8)
		idx = append(idx, uint64(i))
	}
	return idx
}

// showAllLocked ends super-seeding for ss: it returns HAVEs for every
// leaf ss was not shown.
func (s *Service) showAllLocked(ss *serverStream) []uint64 {
	var idx []uint64
	if sp := s.seeding[ss.root]; sp != nil {
		for i := range len(sp.order) {
			if ss.shown[i/8]&(1<<(i%8)) == 0 {
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
	if sp == nil || li == nil || sp.unsent == 0 {
		return nil
	}
	i, ok := li.pos[c]
	if !ok || i >= len(sp.sent) || sp.sent[i] {
		return nil
	}
	sp.sent[i] = true
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

// reveal shows ss k more leaves if it is super-seeded (see revealLocked).
func (ss *serverStream) reveal(k int) {
	ss.svc.mu.Lock()
	idx := ss.svc.revealLocked(ss, k)
	ss.svc.mu.Unlock()
	ss.sendHaves(idx)
}

// showAll ends super-seeding for ss (see showAllLocked).
func (ss *serverStream) showAll() {
	ss.svc.mu.Lock()
	var idx []uint64
	if ss.shown != nil {
		idx = ss.svc.showAllLocked(ss)
	}
	ss.svc.mu.Unlock()
	ss.sendHaves(idx)
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
