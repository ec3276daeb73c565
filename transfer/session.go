package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/chunker"
)

// Session tuning.
const (
	// minWindow and maxWindow bound each peer's requests in flight.
	minWindow, maxWindow = 4, 32
	// requestFloor is the shortest time a request may wait before its
	// leaf is also asked of another peer.
	requestFloor = 2 * time.Second
	// blockAttempt bounds one peer's answer to Block.
	blockAttempt = 10 * time.Second
	// wantPeers is how many peers a session looks for; below it, it asks
	// Providers again every rediscoverFew, else every rediscoverMany.
	wantPeers      = 16
	rediscoverFew  = 2 * time.Second
	rediscoverMany = 15 * time.Second
	dialTimeout    = 10 * time.Second
	// silentAfter is how long a peer may leave requests unanswered (no
	// BLOCK, no DONT_HAVE at all) before they are asked of others, unless
	// its measured rate says three leaves take longer: long past a round
	// trip and a first block on any usable link, and short enough that a
	// peer that accepts requests and never answers holds them under 3 s.
	silentAfter = 1500 * time.Millisecond
	// maxInflight bounds one peer's requests outstanding, those that timed
	// out included: a peer that sits on requests is not sent more.
	maxInflight = 2 * maxWindow
	// maxKnown bounds the peers a session remembers to redial.
	maxKnown = 1024
)

// PeerStats counts what a session received from one peer.
type PeerStats struct {
	Bytes uint64 // verified block bytes
	// Relayed is the part of Bytes that came through a circuit relay (a
	// limited connection); the rest came over a direct one.
	Relayed uint64
	Blocks  uint64
	Wasted  uint64 // bytes of blocks that arrived after another copy or a cancel
	Bad     bool   // sent a block that failed verification, and was dropped
}

// Session fetches the blocks of one root from every peer that has them.
// Its methods are safe for concurrent use.
//
// Its parts: a peer source finds and connects peers and hands their
// streams (remotes) to the session; each remote's reader reports what
// arrives (remoteEvents); the pure scheduler decides what to ask of whom;
// put workers verify and store blocks. The session's lock guards the
// scheduler and everything below mu.
type Session struct {
	svc   *Service
	root  cid.Cid
	bs    BlockStore // where this session's blocks go: the service's, or WithStore's
	peers *peerSource

	life   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// For the Observer: when the session started, whether its last
	// Download completed, and that Close reported it once; notDownload
	// (NotADownload) skips the reports.
	started     time.Time
	completed   atomic.Bool
	closed      sync.Once
	notDownload bool

	puts    chan arrival // blocks received, for the put workers
	changed chan struct{}

	mu      sync.Mutex
	sched   *scheduler
	remotes map[peer.ID]*remote
	conns   map[uint64]*remote // the same, by scheduler key
	joined  uint64             // remotes added so far (the last key)
	stats   map[peer.ID]*PeerStats
	waiters map[uint64]chan []byte // Block's requests: the verified data, or nil
	err     error                  // why the session cannot go on (a failed Put), ends Download
	// The opening request (see opening): made once, by the first Block
	// before any remote joined; held here until a stream takes it.
	opened  bool
	opening *opening
}

// opening is a session's first Block request, sent with HELLO on the
// first stream the peer source opens rather than after the peer's
// have-map: the block arrives a round trip sooner. Its fields are set
// when it is made, but for key, which ss.mu guards.
type opening struct {
	c     cid.Cid
	id    uint64      // reserved in the scheduler
	reply chan []byte // Block's waiter (in waiters while it waits)
	key   uint64      // the remote it went to, once that joined
}

// Put pipeline: blocks waiting to be verified and stored, and the
// goroutines that do it. The queue bounds memory at putQueue blocks.
const (
	putQueue   = 8
	putWorkers = 2
)

// arrival is a BLOCK received from r.
type arrival struct {
	r *remote
	m *Msg
}

// SessionOption configures a Session.
type SessionOption func(*Session)

// WithStore makes a session keep its blocks in bs (asking it what it has,
// and putting what arrives there) instead of the service's BlockStore:
// a download that owns its output hands itself to its session this way.
func WithStore(bs BlockStore) SessionOption {
	return func(ss *Session) { ss.bs = bs }
}

// NotADownload makes a session that fetches blocks on demand (the HTTP
// gateway's) go uncounted by the Observer's DownloadStarted and
// DownloadFinished, which count downloads.
func NotADownload() SessionOption {
	return func(ss *Session) { ss.notDownload = true }
}

// NewSession starts a session for root; it finds peers through prov and
// through remotes that ask us for the same root. Close it when done.
func (s *Service) NewSession(root cid.Cid, prov Providers, opts ...SessionOption) *Session {
	life, cancel := context.WithCancel(context.Background())
	ss := &Session{
		svc: s, root: root, bs: s.bs, life: life, cancel: cancel,
		sched: newScheduler(), remotes: map[peer.ID]*remote{}, conns: map[uint64]*remote{},
		stats: map[peer.ID]*PeerStats{}, waiters: map[uint64]chan []byte{}, changed: make(chan struct{}, 1),
		puts: make(chan arrival, putQueue), started: time.Now(),
	}
	ss.peers = newPeerSource(life, &ss.wg, s.h, root, prov, s.obs, ss)
	for _, o := range opts {
		o(ss)
	}
	if !ss.notDownload {
		s.obs.DownloadStarted()
	}
	// Received blocks are verified and stored by putWorkers goroutines, so
	// that reading the network and writing the disk overlap.
	for range putWorkers {
		ss.wg.Add(1)
		go ss.putLoop()
	}
	s.mu.Lock()
	if s.sessions[root] == nil {
		s.sessions[root] = map[*Session]struct{}{}
	}
	s.sessions[root][ss] = struct{}{}
	s.mu.Unlock()
	return ss
}

// Close ends the session: its streams are closed and its goroutines waited
// for. Blocks already stored stay.
func (ss *Session) Close() error {
	ss.cancel()
	ss.mu.Lock()
	for _, r := range ss.remotes {
		r.close(false)
	}
	ss.mu.Unlock()
	ss.wg.Wait()
	ss.svc.mu.Lock()
	delete(ss.svc.sessions[ss.root], ss)
	ss.svc.dropIndexLocked(ss.root)
	ss.svc.mu.Unlock()
	ss.closed.Do(func() {
		if !ss.notDownload {
			ss.svc.obs.DownloadFinished(time.Since(ss.started), ss.completed.Load())
		}
	})
	return nil
}

// Stats returns what each peer has delivered so far.
func (ss *Session) Stats() map[peer.ID]PeerStats {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make(map[peer.ID]PeerStats, len(ss.stats))
	for p, s := range ss.stats {
		out[p] = *s
	}
	return out
}

// Unreached reports the peers offered to the session that it could not
// connect to (and has not since), with the last such error: peers found
// by Providers but behind a NAT with no relay address, say.
func (ss *Session) Unreached() (int, error) { return ss.peers.unreachable() }

// Peers returns the number of peers the session has a stream to.
func (ss *Session) Peers() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.remotes)
}

func (ss *Session) signal() {
	select {
	case ss.changed <- struct{}{}:
	default:
	}
}

// has is peerSink's: whether the session has a stream to id.
func (ss *Session) has(id peer.ID) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.remotes[id] != nil
}

// add is peerSink's: it takes a new stream and starts its loops.
func (ss *Session) add(r *remote) bool {
	ss.mu.Lock()
	if ss.life.Err() != nil || ss.remotes[r.id] != nil {
		ss.mu.Unlock()
		return false
	}
	ss.joined++
	r.key = ss.joined
	ss.remotes[r.id], ss.conns[r.key] = r, r
	ss.sched.addPeer(r.key, r.haveMap, r.count)
	r.haveMap = nil // the scheduler's now
	var cancel *Msg
	if o := r.opening; o != nil {
		o.key = r.key
		ss.sched.wantAs(r.key, o.id, o.c, -1, time.Now())
		if ss.waiters[o.id] == nil { // Block gave up on it meanwhile
			ss.sched.cancel(r.key, o.id)
			cancel = &Msg{Type: MsgCancel, ID: o.id}
		}
	}
	ss.mu.Unlock()
	if cancel != nil {
		r.send(ss.life, cancel) // queued: the writer starts below
	}
	r.run(ss.life, &ss.wg, ss)
	ss.signal()
	return true
}

// takeOpening is peerSink's: the opening request, while Block waits for it.
func (ss *Session) takeOpening() *opening {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	o := ss.opening
	ss.opening = nil
	if o == nil || ss.waiters[o.id] == nil {
		return nil
	}
	return o
}

// openingLost is peerSink's: Block asks otherwise.
func (ss *Session) openingLost(o *opening) {
	ss.mu.Lock()
	w := ss.takeWaiterLocked(o.id)
	ss.mu.Unlock()
	if w != nil {
		w <- nil
	}
}

// offRelays is peerSink's: streams through a relay to peers that now have
// a direct connection are dropped, and what was in flight on them is
// asked again, on the new stream or of others.
func (ss *Session) offRelays() []peer.ID {
	ss.mu.Lock()
	var relayed []*remote
	for id, r := range ss.remotes {
		if r.limited && directlyConnected(ss.svc.h, id) {
			relayed = append(relayed, r)
		}
	}
	ss.mu.Unlock()
	ids := make([]peer.ID, 0, len(relayed))
	for _, r := range relayed {
		ss.drop(r, "", nil)
		ids = append(ids, r.id)
	}
	return ids
}

// have is remoteEvents': a HAVE from r.
func (ss *Session) have(r *remote, idx uint64) {
	ss.mu.Lock()
	ss.sched.have(r.key, idx)
	ss.mu.Unlock()
	ss.signal()
}

// block is remoteEvents': a BLOCK from r, queued for the put workers once
// the download cap allows its bytes.
func (ss *Session) block(r *remote, m *Msg) bool {
	ss.mu.Lock()
	ok := ss.sched.replied(r.key, m.ID, time.Now())
	ss.mu.Unlock()
	if !ok {
		m.Release()
		ss.drop(r, BanUnsolicited, fmt.Errorf("BLOCK for request %d", m.ID))
		return false
	}
	if err := waitBytes(ss.life, ss.svc.down, len(m.Data)); err != nil {
		m.Release()
		return false
	}
	select {
	case ss.puts <- arrival{r, m}:
		return true
	case <-r.closed:
	case <-ss.life.Done():
	}
	m.Release()
	return false
}

// dontHave is remoteEvents': a DONT_HAVE from r.
func (ss *Session) dontHave(r *remote, id uint64) bool {
	ss.mu.Lock()
	if !ss.sched.replied(r.key, id, time.Now()) {
		ss.mu.Unlock()
		ss.drop(r, BanUnsolicited, fmt.Errorf("DONT_HAVE for request %d", id))
		return false
	}
	var reply chan []byte
	if req := ss.sched.dontHave(r.key, id); req != nil {
		reply = ss.takeWaiterLocked(id)
	}
	ss.mu.Unlock()
	if reply != nil {
		reply <- nil
	}
	ss.signal()
	return true
}

// takeWaiterLocked returns and forgets the Block call waiting for request
// id, if any.
func (ss *Session) takeWaiterLocked(id uint64) chan []byte {
	w := ss.waiters[id]
	delete(ss.waiters, id)
	return w
}

// drop is remoteEvents': it forgets a remote. One dropped with a reason
// (not "") misbehaved: it is reset with a protocol violation, reported to
// the Observer with detail, and never asked again in this session.
func (ss *Session) drop(r *remote, why BanReason, detail error) {
	bad := why != ""
	ss.mu.Lock()
	if ss.conns[r.key] != r {
		ss.mu.Unlock()
		return // dropped already
	}
	delete(ss.conns, r.key)
	delete(ss.remotes, r.id)
	var replies []chan []byte
	for _, req := range ss.sched.removePeer(r.key) {
		if w := ss.takeWaiterLocked(req.id); w != nil {
			replies = append(replies, w)
		}
	}
	if bad {
		ss.peers.ban(r.id) // before the lock goes: no redial slips in
	}
	ss.mu.Unlock()
	if bad {
		ss.svc.obs.PeerBanned(r.id, ss.root, why, detail)
	}
	for _, w := range replies {
		w <- nil
	}
	r.close(bad)
	ss.signal()
}

func (ss *Session) putLoop() {
	defer ss.wg.Done()
	for {
		select {
		case a := <-ss.puts:
			ss.store(a.r, a.m)
		case <-ss.life.Done():
			return
		}
	}
}

// store verifies and stores a BLOCK; a remote that sent a bad one is
// dropped (and its stream reset). A block the store fails to keep ends
// the session (see fail).
func (ss *Session) store(r *remote, m *Msg) {
	ss.mu.Lock()
	req := ss.sched.pending(r.key, m.ID)
	if req == nil {
		ss.wastedLocked(r, m) // cancelled or unknown: ignore
		return
	}
	ss.mu.Unlock()
	// The size first: hashing what no CID of ours can name costs time.
	bad := errTooLarge
	if len(m.Data) <= MaxBlockSize {
		bad = chunker.Verify(req.c, m.Data)
	}
	if bad != nil {
		ss.mu.Lock()
		ss.statsLocked(r.id).Bad = true
		ss.mu.Unlock()
		ss.svc.obs.VerifyFailed()
		m.Release()
		ss.drop(r, BanBadBlock, fmt.Errorf("%w (%d bytes)", bad, len(m.Data)))
		return
	}
	putErr := ss.bs.Put(ss.life, req.c, m.Data)
	if putErr != nil {
		ss.fail(fmt.Errorf("storing block %s: %w", req.c, putErr))
	} else {
		ss.svc.obs.BlockReceived(len(m.Data))
	}
	ss.mu.Lock()
	ok, cancels := ss.sched.delivered(r.key, m.ID, len(m.Data), time.Now(), putErr == nil)
	if !ok {
		ss.wastedLocked(r, m) // another copy came first
		return
	}
	st := ss.statsLocked(r.id)
	st.Bytes += uint64(len(m.Data))
	if r.limited {
		st.Relayed += uint64(len(m.Data))
	}
	st.Blocks++
	reply := ss.takeWaiterLocked(m.ID)
	type cancel struct {
		r  *remote
		id uint64
	}
	var cs []cancel
	for _, c := range cancels {
		if o := ss.conns[c.peer]; o != nil {
			cs = append(cs, cancel{o, c.id})
		}
	}
	ss.mu.Unlock()
	for _, c := range cs {
		c.r.send(ss.life, &Msg{Type: MsgCancel, ID: c.id})
	}
	var keep *Msg // a stored leaf nobody waits for: announce may keep it
	switch {
	case reply != nil && putErr == nil:
		m.unreserve()
		reply <- m.Data // the caller's now: not recycled
	case reply != nil:
		m.Release()
		reply <- nil
	case putErr == nil && req.idx >= 0:
		keep = m
	default:
		m.Release()
	}
	if putErr == nil && req.idx >= 0 {
		ss.svc.announce(ss.root, req.c, keep)
	}
	ss.signal()
}

// fail ends the session's downloads with err, unless the session is
// closing (a Put cancelled by Close is no failure). The peer that sent
// the block is not blamed.
func (ss *Session) fail(err error) {
	if ss.life.Err() != nil || errors.Is(err, context.Canceled) {
		return
	}
	ss.mu.Lock()
	if ss.err == nil {
		ss.err = err
	}
	ss.mu.Unlock()
	ss.signal()
}

// wastedLocked counts a block nobody waits for any more, releases ss.mu
// and the block's buffer.
func (ss *Session) wastedLocked(r *remote, m *Msg) {
	ss.statsLocked(r.id).Wasted += uint64(len(m.Data))
	ss.mu.Unlock()
	m.Release()
}

func (ss *Session) statsLocked(p peer.ID) *PeerStats {
	st := ss.stats[p]
	if st == nil {
		st = &PeerStats{}
		ss.stats[p] = st
	}
	return st
}

// Block returns block c, from the store if it is there, else from one of
// the root's peers (verified, then stored). It is meant for the DAG's
// internal nodes, before Download.
func (ss *Session) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	if data, err := ss.bs.Get(ctx, c); err == nil {
		return data, nil
	}
	tried := map[uint64]bool{}
	o := ss.open(c) // before the peer source starts: its first dial takes it
	ss.peers.start()
	if o != nil {
		data, err := ss.awaitOpening(ctx, o)
		if data != nil || err != nil {
			return data, err
		}
		ss.mu.Lock()
		if o.key != 0 {
			tried[o.key] = true // it said DONT_HAVE, or failed
		}
		ss.mu.Unlock()
	}
	for {
		ss.mu.Lock()
		var r *remote
		var req *request
		reply := make(chan []byte, 1)
		if key, ok := ss.sched.blockPeer(tried); ok {
			tried[key] = true
			r = ss.conns[key]
			req = ss.sched.want(key, c, -1, time.Now())
			ss.waiters[req.id] = reply
		}
		joined := ss.joined
		ss.mu.Unlock()
		if req == nil {
			// Nobody (left) to ask: everyone is asked again once a peer
			// joins, or in a second (not at every change: a peer that
			// answers DONT_HAVE at once would be asked in a busy loop).
			clear(tried)
			if err := ss.awaitPeer(ctx, joined); err != nil {
				return nil, err
			}
			continue
		}
		r.send(ss.life, &Msg{Type: MsgWant, ID: req.id, CID: c})
		select {
		case data := <-reply:
			if data != nil {
				return data, nil
			}
			ss.mu.Lock()
			err := ss.err
			ss.mu.Unlock()
			if err != nil {
				return nil, err
			}
		case <-time.After(blockAttempt):
			ss.abandon(r, req.id)
		case <-ctx.Done():
			ss.abandon(r, req.id)
			return nil, ss.ctxErr(ctx)
		}
	}
}

// open makes the opening request for c, if this is the session's first
// Block and its peer source has not started dialling (a dial takes the
// opening as it starts).
func (ss *Session) open(c cid.Cid) *opening {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.opened || ss.joined > 0 || ss.peers.begun.Load() {
		return nil
	}
	ss.opened = true
	o := &opening{c: c, id: ss.sched.reserve(), reply: make(chan []byte, 1)}
	ss.waiters[o.id] = o.reply
	ss.opening = o
	return o
}

// awaitOpening waits for the opening request's block: nil data and a nil
// error mean it was not had (DONT_HAVE, a lost stream, no answer in
// blockAttempt, or another remote joined while the stream that carries
// it has not: a peer that takes HELLO and stays silent holds nobody up)
// and Block asks as usual.
func (ss *Session) awaitOpening(ctx context.Context, o *opening) ([]byte, error) {
	timeout := time.After(blockAttempt)
	changed := ss.changed
	// Also looked at every so often: another Block call (the gateway
	// makes several at once) may take the signal of a join.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case data := <-o.reply:
			if data != nil {
				return data, nil
			}
			ss.mu.Lock()
			err := ss.err
			ss.mu.Unlock()
			return nil, err
		case <-tick.C:
			if _, overtaken := ss.openingState(o); overtaken {
				ss.abandonOpening(o)
				return nil, nil
			}
		case <-changed:
			carried, overtaken := ss.openingState(o)
			switch {
			case overtaken:
				ss.abandonOpening(o)
				ss.signal() // passed on, for other Block calls and Download
				return nil, nil
			case carried:
				changed = nil // its stream joined: only its answer counts now
				ss.signal()
			}
		case <-timeout:
			ss.abandonOpening(o)
			return nil, nil
		case <-ctx.Done():
			ss.abandonOpening(o)
			return nil, ss.ctxErr(ctx)
		}
	}
}

// openingState reports whether the opening request's stream has joined
// (carried), or another remote has joined while it has not (overtaken).
func (ss *Session) openingState(o *opening) (carried, overtaken bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return o.key != 0, o.key == 0 && ss.joined > 0
}

// abandonOpening gives up the opening request, cancelling it if it went
// out.
func (ss *Session) abandonOpening(o *opening) {
	ss.mu.Lock()
	if ss.opening == o {
		ss.opening = nil
	}
	r := ss.conns[o.key]
	delete(ss.waiters, o.id)
	ss.mu.Unlock()
	if r != nil {
		ss.abandon(r, o.id)
	}
}

// abandon gives up Block's request id to r and cancels it.
func (ss *Session) abandon(r *remote, id uint64) {
	ss.mu.Lock()
	ss.sched.cancel(r.key, id)
	delete(ss.waiters, id)
	ss.mu.Unlock()
	r.send(ss.life, &Msg{Type: MsgCancel, ID: id})
}

// awaitPeer returns when a remote joins past the count joined, a second
// passes or ctx ends (then with the reason).
func (ss *Session) awaitPeer(ctx context.Context, joined uint64) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ss.changed:
			ss.mu.Lock()
			j := ss.joined
			ss.mu.Unlock()
			if j != joined {
				return nil
			}
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ss.ctxErr(ctx)
		}
	}
}

func (ss *Session) ctxErr(ctx context.Context) error {
	ss.mu.Lock()
	n := len(ss.stats) + len(ss.remotes)
	ss.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("%w: %w", ErrNoPeers, context.Cause(ctx))
	}
	return context.Cause(ctx)
}

// Download fetches every leaf the store does not have yet, from all peers
// at once, and returns nil once all are stored. leaves is the root's leaf
// list in DAG order (duplicates are fetched once). Cancelling ctx stops it;
// what was stored stays. A block the store fails to keep (other than by
// cancellation: a full disk, say) ends it at once with an error wrapping
// the store's, "storing block <cid>: ...".
//
// Every 100 ms, and whenever something arrives, the scheduler moves
// requests that a slow peer sits on to others, fills every peer's window
// with the rarest leaves it has, and in the endgame asks several peers
// for the last leaves, cancelling the rest when one arrives.
func (ss *Session) Download(ctx context.Context, leaves []cid.Cid) error {
	li := ss.svc.adoptIndex(ss.root, leaves)
	held := make([]bool, len(li.leaves))
	for i, c := range li.leaves {
		ok, err := ss.bs.Has(ctx, c)
		if err != nil {
			return err
		}
		held[i] = ok
	}
	ss.mu.Lock()
	ss.sched.setLeaves(li.leaves, func(i int) bool { return held[i] }, uint64(time.Now().UnixNano()))
	ss.mu.Unlock()
	ss.peers.start()

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	type want struct {
		r *remote
		m *Msg
	}
	for {
		ss.mu.Lock()
		if ss.err != nil {
			err := ss.err
			ss.mu.Unlock()
			return err
		}
		if ss.sched.left() == 0 {
			ss.mu.Unlock()
			ss.completed.Store(true)
			return nil
		}
		var wants []want
		for _, req := range ss.sched.tick(time.Now()) {
			wants = append(wants, want{ss.conns[req.peer], &Msg{Type: MsgWant, ID: req.id, CID: req.c}})
		}
		ss.mu.Unlock()
		for _, w := range wants {
			w.r.send(ss.life, w.m)
		}
		select {
		case <-ss.changed:
		case <-tick.C:
		case <-ctx.Done():
			return ss.ctxErr(ctx)
		}
	}
}

// typicalLeaf is the leaf size used to size timeouts (1 MiB, the default
// chunk; smaller leaves only make timeouts more lenient).
const typicalLeaf = 1 << 20
