package transfer

import (
	"math/rand/v2"
	"slices"
)

// Super-seeding (BitTorrent's answer to the same problem): a node that holds
// every leaf of a root and faces several remotes for it shows each new
// remote only a few leaves at a time, each leaf to one remote, until it
// has uploaded every leaf once. After that a remote is shown the rest only
// once it has asked this node for nothing for a while and no other remote
// is being served, or after a few idles whatever others do (see idle):
// the crowd has every leaf then, and copies this node sent while the last
// leaves were still crossing its upload would delay them. (Flash crowds
// in netns, 100 Mbit/s: 1+8 of 128 MiB ran 12.36-12.96 s, median 12.49,
// against 12.52-13.91 s, median 12.77, when every remote was shown
// everything at once; 1+16 of 64 MiB 8.56-9.46 s against 9.01-9.61 s.
// Checking for idle remotes four times as often from then on, so that this
// node's upload helps relay the last leaves sooner: 1+8 12.36-13.10 s,
// median 12.42, against 12.33-12.99 s, median 12.53, 8 runs each
// alternating.)
// Downloaders that start together would otherwise pick the same leaves
// from the seed (each sees them all as equally rare) and the seed's
// upload, the crowd's bottleneck, would carry copies the crowd could trade
// among itself. Downloaders need nothing special: the seed simply looks
// like a peer that gains leaves as it goes.

// crowd is the remotes fetching one root from this node and, while this
// node super-seeds the root, which leaves each was shown and which were
// uploaded. Its methods are pure (no locks, no I/O, no clock) and name
// leaves by index, -1 for a block that is not a leaf: the Service owns
// one crowd per root with remotes, under its mutex, and sends the HAVEs
// and wake-ups they return.
type crowd struct {
	remotes map[*serverStream]*remoteView
	seeding bool   // super-seeding began
	order   []int  // leaf indexes in random order
	next    int    // order[next:] are to be shown, to no one yet
	pooled  []bool // by leaf index: in order[next:]
	sent    []bool // by leaf index: uploaded at least once
	unsent  int    // leaves never uploaded
}

// remoteView is what one remote of a crowd was shown and sent.
type remoteView struct {
	shown   bitfield // while it is super-seeded, the leaves shown to it; nil: all
	stalled bool     // its unrequested leaves were shown to others
	waited  int      // idles while others were served, once every leaf was uploaded
	got     bitfield // leaves uploaded to it
}

func newCrowd() *crowd { return &crowd{remotes: map[*serverStream]*remoteView{}} }

// join adds remote r, shown everything until start says otherwise.
func (c *crowd) join(r *serverStream) { c.remotes[r] = &remoteView{} }

// leave removes r. The leaves it was shown and nobody was sent go back to
// be shown to others; the remotes returned are to be woken, so that an
// idle writer feeds its remote from them.
func (c *crowd) leave(r *serverStream) []*serverStream {
	var wake []*serverStream
	if v := c.remotes[r]; v != nil && v.shown != nil && c.reclaim(v) > 0 {
		wake = c.others(r)
	}
	delete(c.remotes, r)
	return wake
}

// start decides what remote r, joined already, is shown first of a root
// this node holds all n leaves of. If other remotes are fetching it too
// and not every leaf was uploaded once, r is super-seeded: the returned
// have-map bits are the leaves shown to it. Otherwise start returns nil
// and r is shown everything. When super-seeding begins, a remote that was
// shown everything while it was alone is super-seeded from then on too:
// the returned HAVEs, by remote, show it a few leaves.
func (c *crowd) start(r *serverStream, n int) (bitfield, map[*serverStream][]uint64) {
	v := c.remotes[r]
	if v == nil || len(c.remotes) < 2 {
		return nil, nil // a lone remote: nothing to share out
	}
	var out map[*serverStream][]uint64
	if !c.seeding {
		c.begin(n)
		if c.unsent > 0 {
			out = map[*serverStream][]uint64{}
			for o, ov := range c.remotes {
				if o != r && ov.shown == nil {
					ov.shown = newBitfield(n)
					out[o] = c.reveal(ov, revealAhead)
				}
			}
		}
	}
	if c.unsent == 0 {
		return nil, out
	}
	v.shown = newBitfield(n)
	c.reveal(v, revealAhead) // in the have-map, not as HAVEs
	return slices.Clone(v.shown), out
}

// begin starts super-seeding n leaves: those uploaded already to a remote
// still here are not shown, the rest in random order.
func (c *crowd) begin(n int) {
	c.seeding = true
	c.pooled, c.sent = make([]bool, n), make([]bool, n)
	for _, v := range c.remotes {
		for i := range v.got.all() {
			if i < n {
				c.sent[i] = true
			}
		}
	}
	for _, i := range rand.Perm(n) {
		if c.sent[i] {
			continue
		}
		c.order = append(c.order, i)
		c.pooled[i] = true
		c.unsent++
	}
}

// allUploaded reports whether super-seeding began and every leaf was
// uploaded once since.
func (c *crowd) allUploaded() bool { return c != nil && c.seeding && c.unsent == 0 }

// superSeeded reports whether r is still shown leaves a few at a time.
func (c *crowd) superSeeded(r *serverStream) bool {
	v := c.remotes[r]
	return v != nil && v.shown != nil
}

// serves reports whether r may be sent leaf i now. A super-seeded remote
// gets the leaves it was shown and those shown to nobody yet; the others
// are kept for the remotes they were shown to, or come from the crowd.
// The refusal (DONT_HAVE) is undone by the HAVEs of showAll (see idle).
func (c *crowd) serves(r *serverStream, i int) bool {
	v := c.remotes[r]
	if v == nil || v.shown == nil || i < 0 || i >= len(c.pooled) {
		return true
	}
	return v.shown.has(i) || c.pooled[i]
}

// reveal shows v up to k more leaves nobody was shown and returns them.
func (c *crowd) reveal(v *remoteView, k int) []uint64 {
	if v.shown == nil || !c.seeding {
		return nil
	}
	var idx []uint64
	for ; k > 0 && c.next < len(c.order); c.next++ {
		i := c.order[c.next]
		if !c.pooled[i] {
			continue // sent from the pool
		}
		k--
		c.pooled[i] = false
		v.shown.set(i)
		idx = append(idx, uint64(i))
	}
	return idx
}

// showAll ends super-seeding for v: it returns every leaf v was not shown.
func (c *crowd) showAll(v *remoteView) []uint64 {
	var idx []uint64
	for i := range len(c.sent) {
		if !v.shown.has(i) {
			idx = append(idx, uint64(i))
		}
	}
	v.shown = nil
	return idx
}

// uploaded records that leaf i of the root's n was sent to r. The last
// leaf never uploaded ends nothing by itself: remotes are shown the rest
// as they idle (see idle), and a remote that joins from then on is shown
// everything (see start).
func (c *crowd) uploaded(r *serverStream, i, n int) {
	v := c.remotes[r]
	if v == nil || i < 0 || i >= n {
		return
	}
	if v.got == nil {
		v.got = newBitfield(n)
	}
	v.got.set(i)
	if !c.seeding || c.unsent == 0 || i >= len(c.sent) || c.sent[i] {
		return
	}
	c.sent[i] = true
	c.pooled[i] = false
	c.unsent--
}

// wanted handles r's WANT for leaf i: a super-seeded remote asking for a
// leaf it may have is shown one more, returned, so it always has a few to
// ask for. A WANT that will be refused shows nothing, or a remote that
// once saw everything would be shown leaves faster than it can take them.
func (c *crowd) wanted(r *serverStream, i int) []uint64 {
	v := c.remotes[r]
	if v == nil || v.shown == nil || !c.serves(r, i) {
		return nil
	}
	v.stalled = false
	return c.reveal(v, 1)
}

// feed returns leaves to show a super-seeded remote that has nothing left
// to ask for: new ones while there are, then, once every leaf was shown,
// half of those shown to another remote and not sent yet (see steal;
// that remote gets them from the crowd). A stalled remote is not fed
// (see idle).
func (c *crowd) feed(r *serverStream) []uint64 {
	v := c.remotes[r]
	if v == nil || v.shown == nil || v.stalled || len(c.unsentShown(v)) > 0 {
		return nil
	}
	if idx := c.reveal(v, revealAhead); len(idx) > 0 {
		return idx
	}
	return c.steal(r, v)
}

// steal moves to v (r's) half the leaves shown to another remote that
// nobody was sent, from the remote with the most (at least 2: one is
// likely on its way), and returns them. Those the other remote asked for
// already are refused when its turn comes: the last leaves go out over
// several connections at once instead of queued on one.
func (c *crowd) steal(r *serverStream, v *remoteView) []uint64 {
	var from *remoteView
	var spare []int
	for o, ov := range c.remotes {
		if o == r || ov.shown == nil {
			continue
		}
		cand := c.unsentShown(ov)
		if len(cand) >= 2 && len(cand) > len(spare) {
			from, spare = ov, cand
		}
	}
	var idx []uint64
	for _, i := range spare[:(len(spare)+1)/2] {
		from.shown.unset(i)
		v.shown.set(i)
		idx = append(idx, uint64(i))
	}
	return idx
}

// unsentShown returns the leaves shown to v that nobody was sent.
func (c *crowd) unsentShown(v *remoteView) []int {
	var out []int
	for i := range v.shown.all() {
		if !c.sent[i] {
			out = append(out, i)
		}
	}
	return out
}

// idle handles a super-seeded remote r that asked for nothing for
// revealIdle; busy says whether another remote of the root was being
// served meanwhile. The leaves r was shown and nobody was sent go back to
// be shown to others (a WANT it still sends for them is refused): it gets
// them elsewhere, or it stalled, and it is fed no more until it asks for
// something. It is shown everything (the HAVEs returned) only if no other
// remote is busy: while others are, this node's upload carries leaves
// uploaded to nobody yet, and r gets the rest from the crowd. Once every
// leaf was uploaded, r is shown everything at its maxIdleWaits-th idle
// even while others are busy. The remotes returned are to be woken, to be
// fed the leaves given back.
func (c *crowd) idle(r *serverStream, busy bool) (haves []uint64, wake []*serverStream) {
	v := c.remotes[r]
	if v == nil || v.shown == nil {
		return nil, nil
	}
	if c.reclaim(v) > 0 {
		v.stalled = true
		wake = c.others(r)
	}
	if c.allUploaded() && busy {
		// Every leaf was uploaded: others being served delay r's turn,
		// but only so long, or a remote that keeps this node busy while
		// it withholds leaves only it was sent would stall the rest.
		v.waited++
		busy = v.waited < maxIdleWaits
	}
	if !busy {
		haves = c.showAll(v)
	}
	return haves, wake
}

// reclaim puts the leaves shown to v that nobody was sent back in the
// pool and returns how many there were.
func (c *crowd) reclaim(v *remoteView) int {
	var back []int
	for _, i := range c.unsentShown(v) {
		v.shown.unset(i)
		if !c.pooled[i] {
			c.pooled[i] = true
			back = append(back, i)
		}
	}
	c.order, c.next = append(c.order[c.next:], back...), 0
	return len(back)
}

// others returns the remotes other than r.
func (c *crowd) others(r *serverStream) []*serverStream {
	var out []*serverStream
	for o := range c.remotes {
		if o != r {
			out = append(out, o)
		}
	}
	return out
}
