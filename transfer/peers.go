package transfer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerSink is what a peer source hands the streams it opens to: a
// session.
type peerSink interface {
	// has reports whether the sink already has a stream to id.
	has(id peer.ID) bool
	// add takes a new stream; false means it is not wanted (the session
	// is closing, or has one to that peer) and the caller closes it.
	add(r *remote) bool
	// offRelays drops the streams that run over a relay to peers that
	// now have a direct connection, and returns those peers to redial.
	offRelays() []peer.ID
	// takeOpening returns the request to send with HELLO on a new
	// stream, if there is one: at most one stream gets it.
	takeOpening() *opening
	// openingLost hands back a request that takeOpening gave, whose
	// stream failed or was not wanted.
	openingLost(o *opening)
}

// peerSource finds the peers a session fetches from and connects to
// them: the peers this node is connected to, those Providers names, asked
// again and again while the session lives (often while it has few peers,
// rarely once it has many), and those seen before and since gone (a seed
// that restarted), retried every rediscoverFew. Its goroutines are
// counted in the WaitGroup given to start and end with life.
type peerSource struct {
	h    host.Host
	root cid.Cid
	prov Providers
	obs  Observer
	sink peerSink
	life context.Context
	wg   *sync.WaitGroup
	once sync.Once
	// begun is set once start has run: its dials have asked for the
	// opening request (see Session.open).
	begun atomic.Bool

	mu      sync.Mutex
	known   map[peer.ID]peer.AddrInfo // every peer ever offered, to retry
	dialing map[peer.ID]bool
	banned  map[peer.ID]bool
	// unreached holds, for each peer offered that could not be
	// connected to (and has not been since), why.
	unreached map[peer.ID]error
}

func newPeerSource(life context.Context, wg *sync.WaitGroup, h host.Host, root cid.Cid, prov Providers, obs Observer, sink peerSink) *peerSource {
	return &peerSource{h: h, root: root, prov: prov, obs: obs, sink: sink, life: life, wg: wg,
		known: map[peer.ID]peer.AddrInfo{}, dialing: map[peer.ID]bool{}, banned: map[peer.ID]bool{}, unreached: map[peer.ID]error{}}
}

// start begins finding peers, once.
func (ps *peerSource) start() {
	ps.once.Do(func() {
		ps.begun.Store(true)
		// Ask the peers we are connected to as well, as bitswap does: in a
		// small network or a crowd they often hold the root, and asking
		// them needs no lookup.
		for i, p := range ps.h.Network().Peers() {
			if i == wantPeers {
				break
			}
			ps.offer(peer.AddrInfo{ID: p})
		}
		ps.wg.Add(2)
		go ps.discover()
		go ps.redial()
	})
}

// ban stops id from being dialled again.
func (ps *peerSource) ban(id peer.ID) {
	ps.mu.Lock()
	ps.banned[id] = true
	ps.mu.Unlock()
}

func (ps *peerSource) isBanned(id peer.ID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.banned[id]
}

// unreachable reports how many peers offered could not be connected to
// (and have not been since), with the last such error.
func (ps *peerSource) unreachable() (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var last error
	for _, err := range ps.unreached {
		last = err
	}
	return len(ps.unreached), last
}

// discover asks Providers for peers while the session lives.
func (ps *peerSource) discover() {
	defer ps.wg.Done()
	for {
		ctx, cancel := context.WithTimeout(ps.life, 30*time.Second)
		ps.obs.Lookup()
		for ai := range ps.prov.FindProviders(ctx, ps.root) {
			ps.offer(ai)
		}
		cancel()
		wait := rediscoverMany
		if ps.connected() < wantPeers {
			wait = rediscoverFew
		}
		select {
		case <-ps.life.Done():
			return
		case <-time.After(wait):
		}
	}
}

// connected counts the known peers the sink has a stream to.
func (ps *peerSource) connected() int {
	ps.mu.Lock()
	ids := make([]peer.ID, 0, len(ps.known))
	for id := range ps.known {
		ids = append(ids, id)
	}
	ps.mu.Unlock()
	n := 0
	for _, id := range ids {
		if ps.sink.has(id) {
			n++
		}
	}
	return n
}

// redial tries again, every rediscoverFew, the peers seen before and since
// gone, and moves streams off relays once a direct connection exists.
func (ps *peerSource) redial() {
	defer ps.wg.Done()
	t := time.NewTicker(rediscoverFew)
	defer t.Stop()
	for {
		select {
		case <-ps.life.Done():
			return
		case <-t.C:
		}
		ps.mu.Lock()
		var retry []peer.AddrInfo
		for id, ai := range ps.known {
			if !ps.dialing[id] && !ps.banned[id] {
				retry = append(retry, ai)
			}
		}
		ps.mu.Unlock()
		// A stream through a relay moves to the direct connection once
		// DCUtR (or a dial of ours) has opened one: a new stream goes over
		// it (the swarm prefers direct connections).
		for _, id := range ps.sink.offRelays() {
			retry = append(retry, peer.AddrInfo{ID: id})
		}
		for _, ai := range retry {
			ps.offer(ai)
		}
	}
}

// offer connects to a peer that may hold the root, unless the sink has a
// stream to it, it is being dialled or it is banned.
func (ps *peerSource) offer(ai peer.AddrInfo) {
	if ai.ID == ps.h.ID() || ps.sink.has(ai.ID) {
		return
	}
	ps.mu.Lock()
	if ps.life.Err() != nil || ps.banned[ai.ID] || ps.dialing[ai.ID] {
		ps.mu.Unlock()
		return
	}
	ps.dialing[ai.ID] = true
	if _, ok := ps.known[ai.ID]; (ok && len(ai.Addrs) > 0) || (!ok && len(ps.known) < maxKnown) {
		ps.known[ai.ID] = ai
	}
	ps.mu.Unlock()
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		o := ps.sink.takeOpening()
		r, err := dialRemote(ps.life, ps.h, ps.root, ai, o)
		joined := err == nil && ps.sink.add(r)
		if err == nil && !joined {
			r.close(false)
		}
		if o != nil && !joined {
			ps.sink.openingLost(o)
		}
		// The sink's lock is never taken under ps.mu: the session holds
		// its own while it bans (ps.mu).
		unreached := errors.Is(err, errUnreachable) && !ps.sink.has(ai.ID)
		ps.mu.Lock()
		delete(ps.dialing, ai.ID)
		switch {
		case err == nil:
			delete(ps.unreached, ai.ID)
		case unreached:
			ps.unreached[ai.ID] = err
		}
		ps.mu.Unlock()
	}()
}

// directlyConnected reports whether h has a direct (not relayed)
// connection to id.
func directlyConnected(h host.Host, id peer.ID) bool {
	return h.Network().Connectedness(id) == network.Connected
}
