package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
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
type Session struct {
	svc  *Service
	root cid.Cid
	prov Providers
	bs   BlockStore // where this session's blocks go: the service's, or WithStore's

	life   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once // starts discovery
	// For the Observer: when the session started, whether its last
	// Download completed, and that Close reported it once; notDownload
	// (NotADownload) skips the reports.
	started     time.Time
	completed   atomic.Bool
	closed      sync.Once
	notDownload bool

	mu      sync.Mutex
	remotes map[peer.ID]*remote
	joined  uint64                    // remotes added so far
	known   map[peer.ID]peer.AddrInfo // every peer ever offered, to retry
	dialing map[peer.ID]bool
	banned  map[peer.ID]bool
	// unreached holds, for each peer offered that could not be
	// connected to (and has not been since), why.
	unreached map[peer.ID]error
	stats     map[peer.ID]*PeerStats
	nextID    uint64
	puts      chan arrival // blocks received, for the put workers
	li        *leafIndex   // set by Download
	pk        *picker
	dueAt     map[int]time.Time // when it should arrive, at its peer's rate
	err       error             // why the session cannot go on (a failed Put), ends Download
	changed   chan struct{}
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

func (ss *Session) putLoop() {
	defer ss.wg.Done()
	for {
		select {
		case a := <-ss.puts:
			ss.block(a.r, a.m)
		case <-ss.life.Done():
			return
		}
	}
}

// request is one WANT in flight.
type request struct {
	id       uint64
	c        cid.Cid
	idx      int // leaf index, or -1 for Block
	r        *remote
	sent     time.Time
	timedOut bool
	reply    chan []byte // Block: the verified data, or nil for DONT_HAVE
}

// remote is our stream to one peer for this root.
type remote struct {
	id       peer.ID
	s        network.Stream
	out      chan *Msg
	have     bitfield // the root's leaves it holds; nil if unknown
	count    uint64   // leaves the have-map describes
	win      window
	inflight map[uint64]*request
	asked    map[int]uint64 // leaf index -> request ID
	replied  time.Time      // when it last answered a request
	limited  bool           // the stream runs over a relayed (limited) connection
	gone     bool
	closed   chan struct{} // closed when the remote is dropped
}

func (r *remote) has(i int) bool { return r.have != nil && r.have.has(i) }

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

// silent reports whether r has left requests unanswered for silentAfter
// (or three leaves' time at its measured rate) without answering any.
func (r *remote) silent(now time.Time) bool {
	if len(r.inflight) == 0 {
		return false
	}
	var since time.Time // the oldest request, or the last answer if later
	for _, req := range r.inflight {
		if since.IsZero() || req.sent.Before(since) {
			since = req.sent
		}
	}
	if r.replied.After(since) {
		since = r.replied
	}
	wait := silentAfter
	if r.win.rate > 0 {
		wait = max(wait, r.win.expect(3, typicalLeaf, 0))
	}
	return now.Sub(since) > wait
}

// NewSession starts a session for root; it finds peers through prov and
// through remotes that ask us for the same root. Close it when done.
func (s *Service) NewSession(root cid.Cid, prov Providers, opts ...SessionOption) *Session {
	life, cancel := context.WithCancel(context.Background())
	ss := &Session{
		svc: s, root: root, prov: prov, bs: s.bs, life: life, cancel: cancel,
		remotes: map[peer.ID]*remote{}, known: map[peer.ID]peer.AddrInfo{}, dialing: map[peer.ID]bool{}, banned: map[peer.ID]bool{},
		unreached: map[peer.ID]error{},
		stats:     map[peer.ID]*PeerStats{}, changed: make(chan struct{}, 1),
		puts: make(chan arrival, putQueue), started: time.Now(),
	}
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
		r.s.Reset()
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
func (ss *Session) Unreached() (int, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var last error
	for _, err := range ss.unreached {
		last = err
	}
	return len(ss.unreached), last
}

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

// start begins peer discovery, once.
func (ss *Session) start() {
	ss.once.Do(func() {
		// Ask the peers we are connected to as well, as bitswap does: in a
		// small network or a crowd they often hold the root, and asking
		// them needs no lookup.
		for i, p := range ss.svc.h.Network().Peers() {
			if i == wantPeers {
				break
			}
			ss.addCandidate(peer.AddrInfo{ID: p})
		}
		ss.wg.Add(2)
		go ss.discover()
		go ss.redial()
	})
}

// redial tries again, every rediscoverFew, the peers seen before and since
// gone (a seed that restarted, a peer that was briefly unreachable).
func (ss *Session) redial() {
	defer ss.wg.Done()
	t := time.NewTicker(rediscoverFew)
	defer t.Stop()
	for {
		select {
		case <-ss.life.Done():
			return
		case <-t.C:
		}
		ss.mu.Lock()
		var retry []peer.AddrInfo
		for id, ai := range ss.known {
			if ss.remotes[id] == nil && !ss.dialing[id] && !ss.banned[id] {
				retry = append(retry, ai)
			}
		}
		// A stream through a relay moves to the direct connection once
		// DCUtR (or a dial of ours) has opened one: a new stream goes over
		// it (the swarm prefers direct connections), and what was in
		// flight on the relayed one is asked again.
		var relayed []*remote
		for id, r := range ss.remotes {
			if r.limited && ss.svc.h.Network().Connectedness(id) == network.Connected {
				relayed = append(relayed, r)
			}
		}
		ss.mu.Unlock()
		for _, r := range relayed {
			ss.drop(r, "", nil)
			retry = append(retry, peer.AddrInfo{ID: r.id})
		}
		for _, ai := range retry {
			ss.addCandidate(ai)
		}
	}
}

// discover asks Providers for peers, again and again while the session
// lives: often while it has few, rarely once it has many.
func (ss *Session) discover() {
	defer ss.wg.Done()
	for {
		ctx, cancel := context.WithTimeout(ss.life, 30*time.Second)
		ss.svc.obs.Lookup()
		for ai := range ss.prov.FindProviders(ctx, ss.root) {
			ss.addCandidate(ai)
		}
		cancel()
		wait := rediscoverMany
		if ss.Peers() < wantPeers {
			wait = rediscoverFew
		}
		select {
		case <-ss.life.Done():
			return
		case <-time.After(wait):
		}
	}
}

// addCandidate dials a peer that may hold the root, unless it is known.
func (ss *Session) addCandidate(ai peer.AddrInfo) {
	if ai.ID == ss.svc.h.ID() {
		return
	}
	ss.mu.Lock()
	if ss.life.Err() != nil || ss.banned[ai.ID] || ss.dialing[ai.ID] || ss.remotes[ai.ID] != nil {
		ss.mu.Unlock()
		return
	}
	ss.dialing[ai.ID] = true
	if _, ok := ss.known[ai.ID]; (ok && len(ai.Addrs) > 0) || (!ok && len(ss.known) < maxKnown) {
		ss.known[ai.ID] = ai
	}
	ss.mu.Unlock()
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		err := ss.open(ai)
		ss.mu.Lock()
		delete(ss.dialing, ai.ID)
		if ss.remotes[ai.ID] != nil {
			delete(ss.unreached, ai.ID)
		} else if errors.Is(err, errUnreachable) {
			ss.unreached[ai.ID] = err
		}
		ss.mu.Unlock()
		if err == nil {
			ss.signal()
		}
	}()
}

// open connects to a peer, says HELLO and reads its have-map.
func (ss *Session) open(ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ss.life, dialTimeout)
	defer cancel()
	h := ss.svc.h
	// Relayed connections are "limited" in go-libp2p: a stream over one
	// needs WithAllowLimitedConn. The download starts over the relay and
	// moves to a direct connection once there is one (see redial).
	ctx = network.WithAllowLimitedConn(ctx, "p2pshare: fetch through a relay until a direct connection opens")
	if c := h.Network().Connectedness(ai.ID); c != network.Connected && c != network.Limited {
		// The discover loop paces retries itself (a seed that restarted
		// must be reachable again at once), so skip the swarm's backoff.
		// A forced direct dial skips relay addresses too: a peer behind a
		// NAT is dialed again through its relays (its /p2p-circuit
		// addresses), after which DCUtR tries to punch a direct
		// connection.
		dctx := network.WithForceDirectDial(ctx, "p2pshare: provider of a root being fetched")
		if err := h.Connect(dctx, ai); err != nil {
			if rerr := h.Connect(ctx, ai); rerr != nil {
				return fmt.Errorf("%w %s: %v", errUnreachable, ai.ID, err)
			}
		}
	}
	st, err := h.NewStream(ctx, ai.ID, ID)
	if err != nil {
		return err
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return fmt.Errorf("stream to %s: %w", ai.ID, err)
	}
	st.SetDeadline(time.Now().Add(dialTimeout))
	bw := bufio.NewWriterSize(st, 16<<10)
	if _, err := writeMsg(bw, &Msg{Type: MsgHello, Root: ss.root}, nil); err != nil || bw.Flush() != nil {
		st.Reset()
		return fmt.Errorf("greeting %s: %w", ai.ID, err)
	}
	br := bufio.NewReaderSize(st, 64<<10)
	hm, err := readMsg(ctx, br, br, st.Scope())
	if err != nil || hm.Type != MsgHaveMap {
		if err == nil || errors.Is(err, ErrProtocol) {
			violation(st)
		} else {
			st.Reset()
		}
		return fmt.Errorf("reading %s's have-map: %w", ai.ID, err)
	}
	st.SetDeadline(time.Time{})
	r := &remote{id: ai.ID, s: st, limited: st.Conn().Stat().Limited, out: make(chan *Msg, 2*maxWindow+8), win: newWindow(minWindow, maxWindow),
		inflight: map[uint64]*request{}, asked: map[int]uint64{}, closed: make(chan struct{})}
	if hm.Count > 0 {
		// A copy of its own size: the message buffer is recycled.
		r.have, r.count = bitfield(slices.Clone(hm.Bits)), hm.Count
	}
	hm.Release()
	ss.mu.Lock()
	if ss.life.Err() != nil || ss.remotes[ai.ID] != nil {
		ss.mu.Unlock()
		st.Reset()
		return errors.New("session closed or peer already connected")
	}
	ss.remotes[ai.ID] = r
	ss.joined++
	ss.applyHaveMapLocked(r)
	ss.mu.Unlock()
	ss.wg.Add(2)
	go ss.writeLoop(r, bw)
	go ss.readLoop(r, br)
	return nil
}

// applyHaveMapLocked counts a remote's have-map into leaf availability,
// if it describes the same leaf list as ours.
func (ss *Session) applyHaveMapLocked(r *remote) {
	if ss.pk == nil || r.have == nil {
		return
	}
	if r.count != uint64(len(ss.li.leaves)) {
		r.have, r.count = nil, 0 // a different DAG view: trust only HAVEs
		return
	}
	for i := range ss.li.leaves {
		if r.has(i) {
			ss.pk.avail[i]++
		}
	}
}

// writeLoop sends a remote's queued messages, flushing when the queue is
// empty.
func (ss *Session) writeLoop(r *remote, bw *bufio.Writer) {
	defer ss.wg.Done()
	var scratch []byte
	var err error
	for {
		var m *Msg
		select {
		case m = <-r.out:
		case <-r.closed:
			return
		case <-ss.life.Done():
			return
		}
		r.s.SetWriteDeadline(time.Now().Add(writeTimeout))
		if scratch, err = writeMsg(bw, m, scratch); err != nil {
			ss.drop(r, "", nil)
			return
		}
		if len(r.out) == 0 && bw.Flush() != nil {
			ss.drop(r, "", nil)
			return
		}
	}
}

// send queues a message to r without blocking the caller for long.
func (ss *Session) send(r *remote, m *Msg) {
	select {
	case r.out <- m:
	case <-r.closed:
	case <-ss.life.Done():
	}
}

// readLoop handles what a remote sends: HAVEs, BLOCKs and DONT_HAVEs.
// Each message's buffer is reserved in the stream's resource scope until
// it is released (a BLOCK's once it is stored).
func (ss *Session) readLoop(r *remote, br *bufio.Reader) {
	defer ss.wg.Done()
	for {
		r.s.SetReadDeadline(time.Now().Add(streamIdleTimeout))
		m, err := readMsg(ss.life, br, br, r.s.Scope())
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				ss.drop(r, BanMalformed, err)
			} else {
				ss.drop(r, "", nil)
			}
			return
		}
		if m.Type != MsgBlock {
			m.Release() // small, and decoded now
		}
		switch m.Type {
		case MsgHave:
			ss.mu.Lock()
			if ss.li == nil && r.have != nil && m.Index < r.count {
				// Before Download: kept with the have-map, counted then.
				r.have.set(int(m.Index))
			} else if ss.li != nil && m.Index < uint64(len(ss.li.leaves)) {
				if r.have == nil {
					r.have, r.count = newBitfield(len(ss.li.leaves)), uint64(len(ss.li.leaves))
				}
				i := int(m.Index)
				if !r.has(i) {
					r.have.set(i)
					ss.pk.avail[i]++
				}
			}
			ss.mu.Unlock()
			ss.signal()
		case MsgBlock:
			if !ss.replied(r, m.ID) {
				m.Release()
				ss.drop(r, BanUnsolicited, fmt.Errorf("BLOCK for request %d", m.ID))
				return
			}
			if err := waitBytes(ss.life, ss.svc.down, len(m.Data)); err != nil {
				m.Release()
				return
			}
			select {
			case ss.puts <- arrival{r, m}:
			case <-r.closed:
				m.Release()
				return
			case <-ss.life.Done():
				m.Release()
				return
			}
		case MsgDontHave:
			if !ss.replied(r, m.ID) {
				ss.drop(r, BanUnsolicited, fmt.Errorf("DONT_HAVE for request %d", m.ID))
				return
			}
			ss.mu.Lock()
			req := r.inflight[m.ID]
			if req != nil {
				ss.finishLocked(req)
				if req.idx >= 0 && r.has(req.idx) {
					r.have.unset(req.idx)
					ss.pk.avail[req.idx]--
				}
			}
			ss.mu.Unlock()
			if req != nil && req.reply != nil {
				req.reply <- nil
			}
			ss.signal()
		case MsgHello, MsgWant, MsgCancel, MsgHaveMap:
			ss.drop(r, BanUnexpected, fmt.Errorf("%s", m.Type))
			return
		default:
			// unknown type: skipped
		}
	}
}

// replied notes that r answered request id; it reports false if no
// request ever had that ID (a protocol violation: a reply to a request
// that was cancelled is not).
func (ss *Session) replied(r *remote, id uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if id == 0 || id > ss.nextID {
		return false
	}
	r.replied = time.Now()
	return true
}

// block verifies and stores a BLOCK; a remote that sent a bad one is
// dropped (and its stream reset). It reports whether the block was good.
// A block the store fails to keep ends the session (see fail).
func (ss *Session) block(r *remote, m *Msg) bool {
	ss.mu.Lock()
	req := r.inflight[m.ID]
	if req == nil {
		ss.wastedLocked(r, m) // cancelled or unknown: ignore
		return true
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
		return false
	}
	putErr := ss.bs.Put(ss.life, req.c, m.Data)
	if putErr != nil {
		ss.fail(fmt.Errorf("storing block %s: %w", req.c, putErr))
	} else {
		ss.svc.obs.BlockReceived(len(m.Data))
	}
	now := time.Now()
	ss.mu.Lock()
	if _, ok := r.inflight[m.ID]; !ok {
		ss.wastedLocked(r, m) // another copy came first
		return true
	}
	ss.finishLocked(req)
	r.win.delivered(len(m.Data), now)
	st := ss.statsLocked(r.id)
	st.Bytes += uint64(len(m.Data))
	if r.limited {
		st.Relayed += uint64(len(m.Data))
	}
	st.Blocks++
	var cancels []*request
	if putErr == nil && req.idx >= 0 && ss.pk != nil && ss.pk.need[req.idx] {
		ss.pk.done(req.idx)
		// Endgame duplicates of this leaf are no longer needed.
		for _, o := range ss.remotes {
			if id, ok := o.asked[req.idx]; ok {
				if dup := o.inflight[id]; dup != nil {
					ss.finishLocked(dup)
					cancels = append(cancels, dup)
				}
			}
		}
	}
	ss.mu.Unlock()
	for _, c := range cancels {
		ss.send(c.r, &Msg{Type: MsgCancel, ID: c.id})
	}
	if putErr == nil && req.idx >= 0 {
		ss.svc.announce(ss.root, req.c)
	}
	if req.reply != nil {
		if putErr != nil {
			m.Release()
			req.reply <- nil
		} else {
			m.unreserve()
			req.reply <- m.Data // the caller's now: not recycled
		}
	} else {
		m.Release()
	}
	ss.signal()
	return true
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

// finishLocked removes a request from its remote and the picker.
func (ss *Session) finishLocked(req *request) {
	r := req.r
	if _, ok := r.inflight[req.id]; !ok {
		return
	}
	delete(r.inflight, req.id)
	if req.idx >= 0 {
		delete(r.asked, req.idx)
		if !req.timedOut && ss.pk != nil {
			ss.pk.released(req.idx)
		}
	}
}

// drop forgets a remote. One dropped with a reason (not "") misbehaved:
// it is reset with a protocol violation, reported to the Observer with
// detail, and never asked again in this session.
func (ss *Session) drop(r *remote, why BanReason, detail error) {
	bad := why != ""
	ss.mu.Lock()
	if r.gone {
		ss.mu.Unlock()
		return
	}
	r.gone = true
	close(r.closed)
	if ss.remotes[r.id] == r {
		delete(ss.remotes, r.id)
	}
	if bad {
		ss.banned[r.id] = true
		ss.svc.obs.PeerBanned(r.id, ss.root, why, detail)
	}
	var replies []*request
	for _, req := range r.inflight {
		ss.finishLocked(req)
		if req.reply != nil {
			replies = append(replies, req)
		}
	}
	if ss.pk != nil && r.have != nil {
		for i := range ss.li.leaves {
			if r.has(i) {
				ss.pk.avail[i]--
			}
		}
	}
	ss.mu.Unlock()
	for _, req := range replies {
		req.reply <- nil
	}
	if bad {
		violation(r.s)
	} else {
		r.s.Reset()
	}
	ss.signal()
}

// wantLocked records and returns a new request to r.
func (ss *Session) wantLocked(r *remote, c cid.Cid, idx int, reply chan []byte) *request {
	ss.nextID++
	req := &request{id: ss.nextID, c: c, idx: idx, r: r, sent: time.Now(), reply: reply}
	r.inflight[req.id] = req
	if idx >= 0 {
		r.asked[idx] = req.id
		if ss.pk.inflight[idx] == 0 {
			// The pipeline ahead of it, this request included.
			ss.dueAt[idx] = req.sent.Add(r.win.expect(active(r), typicalLeaf, requestFloor))
		}
		ss.pk.requested(idx)
	}
	return req
}

// Block returns block c, from the store if it is there, else from one of
// the root's peers (verified, then stored). It is meant for the DAG's
// internal nodes, before Download.
func (ss *Session) Block(ctx context.Context, c cid.Cid) ([]byte, error) {
	if data, err := ss.bs.Get(ctx, c); err == nil {
		return data, nil
	}
	ss.start()
	tried := map[peer.ID]bool{}
	for {
		ss.mu.Lock()
		var r *remote
		for _, cand := range ss.remotes {
			if tried[cand.id] {
				continue
			}
			// Prefer peers that know the root.
			if r == nil || (r.have == nil && cand.have != nil) {
				r = cand
			}
		}
		var req *request
		if r != nil {
			tried[r.id] = true
			req = ss.wantLocked(r, c, -1, make(chan []byte, 1))
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
		ss.send(r, &Msg{Type: MsgWant, ID: req.id, CID: c})
		select {
		case data := <-req.reply:
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
			ss.mu.Lock()
			ss.finishLocked(req)
			ss.mu.Unlock()
			ss.send(r, &Msg{Type: MsgCancel, ID: req.id})
		case <-ctx.Done():
			return nil, ss.ctxErr(ctx)
		}
	}
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
// Each round it fills every peer's window with the rarest leaves that
// peer has, moves requests that a slow peer sits on to others, and in the
// endgame asks several peers for the last leaves, cancelling the rest
// when one arrives.
func (ss *Session) Download(ctx context.Context, leaves []cid.Cid) error {
	li := newLeafIndex(leaves)
	pk := newPicker(len(li.leaves), uint64(time.Now().UnixNano()))
	for i, c := range li.leaves {
		if ok, err := ss.bs.Has(ctx, c); err != nil {
			return err
		} else if ok {
			pk.done(i)
		}
	}
	ss.svc.mu.Lock()
	if ss.svc.manifest[ss.root] == nil {
		ss.svc.manifest[ss.root] = li
	}
	ss.svc.mu.Unlock()
	ss.mu.Lock()
	ss.li, ss.pk, ss.dueAt = li, pk, map[int]time.Time{}
	for _, r := range ss.remotes {
		ss.applyHaveMapLocked(r)
	}
	ss.mu.Unlock()
	ss.start()

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ss.mu.Lock()
		if ss.err != nil {
			err := ss.err
			ss.mu.Unlock()
			return err
		}
		if pk.left == 0 {
			ss.mu.Unlock()
			ss.completed.Store(true)
			return nil
		}
		wants := ss.scheduleLocked(time.Now())
		ss.mu.Unlock()
		for _, w := range wants {
			ss.send(w.r, &Msg{Type: MsgWant, ID: w.id, CID: w.c})
		}
		select {
		case <-ss.changed:
		case <-tick.C:
		case <-ctx.Done():
			return ss.ctxErr(ctx)
		}
	}
}

// scheduleLocked expires slow requests and fills every window; it returns
// the requests to send.
func (ss *Session) scheduleLocked(now time.Time) []*request {
	for _, r := range ss.remotes {
		silent := r.silent(now)
		for _, req := range r.inflight {
			if req.idx < 0 || req.timedOut {
				continue
			}
			if silent || now.Sub(req.sent) > r.win.timeout(typicalLeaf, requestFloor) {
				// Let others take it; keep the request in case it arrives.
				req.timedOut = true
				ss.pk.released(req.idx)
				r.win.timedOut()
			}
		}
	}
	var out []*request
	for _, r := range ss.remotes {
		if r.silent(now) {
			continue // not sent more until it answers
		}
		// In the endgame a leaf is asked of another peer too if it is
		// overdue or this peer should deliver it sooner: a leaf stuck
		// behind a slow or busy peer is rescued, one queued at a peer as
		// fast as any is not fetched twice.
		ownDue := now.Add(r.win.expect(active(r)+1, typicalLeaf, requestFloor))
		skip := func(i int) bool {
			_, mine := r.asked[i]
			due := ss.dueAt[i]
			return mine || (now.Before(due) && !ownDue.Before(due))
		}
		for active(r) < r.win.size && len(r.inflight) < maxInflight {
			i, ok := ss.pk.pick(r.has, skip)
			if !ok {
				break
			}
			out = append(out, ss.wantLocked(r, ss.li.leaves[i], i, nil))
		}
	}
	return out
}

// active counts a remote's requests that still hold a window slot.
func active(r *remote) int {
	n := 0
	for _, req := range r.inflight {
		if !req.timedOut {
			n++
		}
	}
	return n
}

// typicalLeaf is the leaf size used to size timeouts (1 MiB, the default
// chunk; smaller leaves only make timeouts more lenient).
const typicalLeaf = 1 << 20
