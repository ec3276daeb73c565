package transfer

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// ID is the transfer protocol's ID. The version is part of it: an
// incompatible change gets a new ID.
const ID protocol.ID = "/p2pshare/transfer/1.0.0"

// ServiceName is the resource manager's service name for the protocol.
const ServiceName = "p2pshare.transfer"

// ErrNotFound is what a BlockStore or Manifests returns for what it does
// not hold (implementations may wrap it or their own sentinel).
var ErrNotFound = errors.New("not found")

// ErrNoPeers is returned when a session ends without any peer to fetch
// from.
var ErrNoPeers = errors.New("no peers hold the content")

// errUnreachable marks a peer the session could not connect to, directly
// or through a relay (see Session.Unreached).
var errUnreachable = errors.New("cannot connect to")

// BlockStore keeps verified blocks. Put is never called with unverified
// data, and must not keep data after it returns (the buffer is reused).
// Implementations must be safe for concurrent use.
type BlockStore interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	Get(ctx context.Context, c cid.Cid) ([]byte, error)
	Put(ctx context.Context, c cid.Cid, data []byte) error
}

// BlockReleaser is a BlockStore that may hand out buffers it reuses: the
// service calls Release with the data of each block Get gave it once that
// block is written to the stream, and touches the data no more.
type BlockReleaser interface {
	Release(data []byte)
}

// Providers reports peers that may hold c. The channel closes when the
// search ends or ctx is done.
type Providers interface {
	FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo
}

// Manifests gives the distinct leaf CIDs of a root in order of first
// appearance in the DAG (chunker.Leaves) if this node holds the root's
// structure; have-map indexes are positions in that list. (Duplicates, if
// an implementation returns them, are dropped: first appearance counts.)
type Manifests interface {
	Leaves(ctx context.Context, root cid.Cid) ([]cid.Cid, error)
}

// Limits on what a remote may ask of us.
const (
	// maxQueuedPerRemote is the most WANTs a remote may have outstanding on
	// one stream; more is a protocol violation.
	maxQueuedPerRemote = 256
	// streamIdleTimeout closes a stream nothing has crossed for this long.
	streamIdleTimeout = 5 * time.Minute
	// writeTimeout bounds a single write to a remote.
	writeTimeout = 60 * time.Second
	// maxHavesPerWrite is how many pending HAVEs the writer sends before it
	// looks at the queue again.
	maxHavesPerWrite = 1024
)

// Option configures a Service.
type Option func(*Service)

// WithMaxUpload caps the block bytes sent to all remotes together, in bytes
// per second (0: no cap).
func WithMaxUpload(bytesPerSec int64) Option {
	return func(s *Service) { s.up = newLimiter(bytesPerSec) }
}

// WithMaxDownload caps the block bytes received by all sessions together,
// in bytes per second (0: no cap).
func WithMaxDownload(bytesPerSec int64) Option {
	return func(s *Service) { s.down = newLimiter(bytesPerSec) }
}

// limiterBurst is the rate limiters' bucket: 64 KiB, so a cap holds within
// a fraction of a percent over any second.
const limiterBurst = 64 << 10

func newLimiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), limiterBurst)
}

// Service serves blocks to remotes and runs download sessions. It is safe
// for concurrent use.
type Service struct {
	h  host.Host
	bs BlockStore
	m  Manifests

	up, down *rate.Limiter
	obs      Observer

	mu       sync.Mutex
	sent     map[cid.Cid]uint32                     // times each block was uploaded
	subs     map[cid.Cid]map[*serverStream]struct{} // remotes interested in a root
	sessions map[cid.Cid]map[*Session]struct{}
	manifest map[cid.Cid]*leafIndex // roots with active sessions or subscribers
	seeding  map[cid.Cid]*superSeed // roots this node super-seeds

	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once
}

// New starts the service on h: it registers the protocol handler.
func New(h host.Host, bs BlockStore, m Manifests, opts ...Option) *Service {
	s := &Service{
		h: h, bs: bs, m: m,
		sent:     map[cid.Cid]uint32{},
		subs:     map[cid.Cid]map[*serverStream]struct{}{},
		sessions: map[cid.Cid]map[*Session]struct{}{},
		manifest: map[cid.Cid]*leafIndex{},
		seeding:  map[cid.Cid]*superSeed{},
		closed:   make(chan struct{}),
		obs:      nopObserver{},
	}
	for _, o := range opts {
		o(s)
	}
	h.SetStreamHandler(ID, s.handle)
	return s
}

// WaitUpload blocks until n more bytes may be sent under the upload cap
// (WithMaxUpload; at once when there is none), for another protocol that
// uploads beside this one, so that one cap covers both. It returns ctx's
// error if ctx ends first.
func (s *Service) WaitUpload(ctx context.Context, n int) error { return waitBytes(ctx, s.up, n) }

// Close removes the handler and waits for the streams it serves to end.
// Closing twice is harmless.
func (s *Service) Close() error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		return nil
	}
	s.h.RemoveStreamHandler(ID)
	close(s.closed)
	s.mu.Lock()
	for _, subs := range s.subs {
		for ss := range subs {
			ss.s.Reset()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// leafIndex is a root's de-duplicated leaf list.
type leafIndex struct {
	leaves []cid.Cid
	pos    map[cid.Cid]int
}

func newLeafIndex(all []cid.Cid) *leafIndex {
	li := &leafIndex{pos: make(map[cid.Cid]int, len(all))}
	for _, c := range all {
		if _, ok := li.pos[c]; !ok {
			li.pos[c] = len(li.leaves)
			li.leaves = append(li.leaves, c)
		}
	}
	return li
}

// index returns the root's leaf index, from the cache or Manifests.
func (s *Service) index(ctx context.Context, root cid.Cid) (*leafIndex, error) {
	s.mu.Lock()
	li := s.manifest[root]
	s.mu.Unlock()
	if li != nil {
		return li, nil
	}
	all, err := s.m.Leaves(ctx, root)
	if err != nil {
		return nil, err
	}
	li = newLeafIndex(all)
	s.mu.Lock()
	if cur := s.manifest[root]; cur != nil {
		li = cur
	} else {
		s.manifest[root] = li
	}
	s.mu.Unlock()
	return li, nil
}

// adoptIndex returns the root's leaf index, made from leaves unless the
// service has one already (from Manifests, for a root it serves too): one
// index per root, which sessions, the server and super-seeding share.
func (s *Service) adoptIndex(root cid.Cid, leaves []cid.Cid) *leafIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	li := s.manifest[root]
	if li == nil {
		li = newLeafIndex(leaves)
		s.manifest[root] = li
	}
	return li
}

// dropIndex forgets a root's cached index once nobody uses it.
func (s *Service) dropIndexLocked(root cid.Cid) {
	if len(s.subs[root]) == 0 && len(s.sessions[root]) == 0 {
		delete(s.manifest, root)
		delete(s.seeding, root)
		delete(s.subs, root)
		delete(s.sessions, root)
	}
}

// announce tells the remotes interested in root that leaf c is now held.
func (s *Service) announce(root, c cid.Cid) {
	s.mu.Lock()
	li := s.manifest[root]
	var subs []*serverStream
	for ss := range s.subs[root] {
		subs = append(subs, ss)
	}
	s.mu.Unlock()
	if li == nil {
		return
	}
	i, ok := li.pos[c]
	if !ok {
		return
	}
	for _, ss := range subs {
		ss.sendHaves([]uint64{uint64(i)})
	}
}

// maxSentCounts bounds the service-wide upload counts (at most this many
// blocks, about 100 bytes each); past it they start over, which only
// reorders queues for a while.
const maxSentCounts = 1 << 16

// serverStream is one remote's stream to us, for one root.
type serverStream struct {
	svc    *Service
	s      network.Stream
	remote peer.ID

	mu    sync.Mutex
	wants wantQueue     // WANTs to serve
	haves haveQueue     // HAVEs to send
	wake  chan struct{} // writer wake-up

	root cid.Cid // the root named in HELLO
	// Super-seeding, guarded by svc.mu: the leaves shown to the remote
	// while this node reveals root a few leaves at a time, else nil.
	shown   bitfield
	stalled bool     // its unrequested leaves were shown to others
	got     bitfield // leaves uploaded to the remote
	// busyAt is when the writer last began or finished sending a block
	// (Unix ns): a remote that stopped reading, its writer stuck, is not
	// being served, however many WANTs it queues.
	busyAt atomic.Int64
}

func (ss *serverStream) signal() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// sendHaves queues HAVEs for the writer.
func (ss *serverStream) sendHaves(idx []uint64) {
	if len(idx) == 0 {
		return
	}
	ss.mu.Lock()
	ss.haves.add(idx)
	ss.mu.Unlock()
	ss.signal()
}

// handle serves one inbound stream: a HELLO naming a root, then WANTs and
// CANCELs from the remote; HAVE_MAP, HAVEs, BLOCKs and DONT_HAVEs back.
//
//	reader: HELLO → HAVE_MAP; WANT → queue; CANCEL → unqueue
//	writer: HAVEs first, then the queue in order, rate-limited
func (s *Service) handle(st network.Stream) {
	s.wg.Add(1)
	defer s.wg.Done()
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	br := bufio.NewReader(st)
	st.SetReadDeadline(time.Now().Add(30 * time.Second))
	hello, err := readMsg(ctx, br, br, st.Scope())
	if err != nil || hello.Type != MsgHello || !acceptableCID(hello.Root) {
		violation(st)
		return
	}
	hello.Release()
	ss := &serverStream{svc: s, s: st, remote: st.Conn().RemotePeer(), root: hello.Root, wake: make(chan struct{}, 1)}
	// Subscribe first, then read the have-map from the store: a leaf
	// stored in between is announced as a HAVE, which the writer sends
	// after the have-map, so no leaf goes unannounced.
	li, err := s.index(ctx, hello.Root)
	s.mu.Lock()
	if s.subs[hello.Root] == nil {
		s.subs[hello.Root] = map[*serverStream]struct{}{}
	}
	s.subs[hello.Root][ss] = struct{}{}
	if err == nil && s.manifest[hello.Root] == nil {
		s.manifest[hello.Root] = li // dropped meanwhile; announce needs it
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.leaveLocked(ss)
		s.mu.Unlock()
	}()
	// The have-map: empty if we do not know the root's structure (yet).
	hm := &Msg{Type: MsgHaveMap}
	complete := false
	if err == nil {
		hm.Count = uint64(len(li.leaves))
		have := newBitfield(len(li.leaves))
		complete = true
		for i, c := range li.leaves {
			if ok, _ := s.bs.Has(ctx, c); ok {
				have.set(i)
			} else {
				complete = false
			}
		}
		hm.Bits = have
	}
	s.mu.Lock()
	var converted map[*serverStream][]uint64
	if complete && len(li.leaves) > 0 {
		var bits bitfield
		if bits, converted = s.startRevealLocked(ss, hello.Root, len(li.leaves)); bits != nil {
			hm.Bits = bits
		}
	}
	var sessions []*Session
	for sess := range s.sessions[hello.Root] {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	sendHaves(converted)
	// A remote fetching the same root may hold leaves we lack.
	for _, sess := range sessions {
		sess.peers.offer(peer.AddrInfo{ID: ss.remote})
	}

	bw := bufio.NewWriterSize(st, 64<<10)
	st.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := writeMsg(bw, hm, nil); err != nil || bw.Flush() != nil {
		st.Reset()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ss.writeLoop(ctx, bw)
		cancel()
	}()
	ss.readLoop(ctx, br)
	cancel()
	<-done
}

func violation(st network.Stream) {
	st.ResetWithError(network.StreamProtocolViolation)
}

func (ss *serverStream) readLoop(ctx context.Context, br *bufio.Reader) {
	for {
		ss.s.SetReadDeadline(time.Now().Add(streamIdleTimeout))
		m, err := readMsg(ctx, br, br, ss.s.Scope())
		if err != nil {
			if !errors.Is(err, io.EOF) && errors.Is(err, ErrProtocol) {
				violation(ss.s)
			}
			return
		}
		m.Release() // what a server reads is small, and decoded now
		if !ss.handleMsg(m) {
			violation(ss.s)
			return
		}
	}
}

// handleMsg handles a message from the remote; it reports false for a
// protocol violation.
func (ss *serverStream) handleMsg(m *Msg) bool {
	switch m.Type {
	case MsgWant:
		ss.mu.Lock()
		ok := ss.wants.add(m)
		ss.mu.Unlock()
		if !ok {
			return false // too many queued
		}
		ss.wanted(m.CID)
		ss.signal()
	case MsgCancel:
		ss.mu.Lock()
		ss.wants.cancel(m.ID)
		ss.mu.Unlock()
	case MsgHello, MsgHaveMap, MsgHave, MsgBlock, MsgDontHave:
		return false // not for a server to receive
	default:
		// unknown type: skipped
	}
	return true
}

// writeLoop sends HAVEs and serves queued WANTs one block at a time.
// Blocks of all remotes share the upload limiter, whose reservations are
// granted in order, so remotes are served in turn. A super-seeded remote
// that asks for nothing for revealIdle is handled by idle.
func (ss *serverStream) writeLoop(ctx context.Context, bw *bufio.Writer) {
	var scratch []byte
	var haves []uint64
	for {
		ss.mu.Lock()
		haves = ss.haves.take(haves[:0], maxHavesPerWrite)
		if !ss.haves.empty() {
			ss.signal() // the rest on the next turn
		}
		ss.mu.Unlock()
		next := ss.next()
		ss.s.SetWriteDeadline(time.Now().Add(writeTimeout))
		var err error
		for _, i := range haves {
			if scratch, err = writeMsg(bw, &Msg{Type: MsgHave, Index: i}, scratch); err != nil {
				return
			}
		}
		if next == nil {
			if bw.Flush() != nil {
				return
			}
			var idle <-chan time.Time
			if ss.superSeeded() {
				ss.feed()
				idle = time.After(revealIdle)
			}
			select {
			case <-ss.wake:
			case now := <-idle:
				ss.idle(now)
			case <-ctx.Done():
				return
			}
			continue
		}
		ss.mu.Lock()
		live := ss.wants.take(next)
		ss.mu.Unlock()
		if !live {
			continue // cancelled meanwhile
		}
		reply := &Msg{Type: MsgDontHave, ID: next.ID}
		// While super-seeding, a leaf kept for another remote is refused.
		data, held, err := ss.block(ctx, next.CID)
		switch {
		case errors.Is(err, errNoMemory) || ctx.Err() != nil:
			return
		case err == nil:
			if err := waitBytes(ctx, ss.svc.up, len(data)); err != nil {
				ss.s.Scope().ReleaseMemory(held)
				ss.svc.release(data)
				return
			}
			ss.busyAt.Store(time.Now().UnixNano())
			reply = &Msg{Type: MsgBlock, ID: next.ID, Data: data}
		}
		scratch, err = writeBlock(bw, reply, scratch)
		if held > 0 {
			ss.s.Scope().ReleaseMemory(held)
			ss.svc.release(data)
		}
		if err != nil {
			return
		}
		if reply.Type == MsgBlock {
			ss.busyAt.Store(time.Now().UnixNano())
			ss.svc.obs.BlockServed(len(reply.Data))
		}
		ss.mu.Lock()
		more := ss.wants.len() > 0
		ss.mu.Unlock()
		if !more && bw.Flush() != nil {
			return
		}
	}
}

// block returns the block c to send to ss, counted as uploaded, and the
// bytes reserved for it in the stream's scope (the caller releases them
// once it is written), or an error: errRefused for a CID not accepted
// from the network, errKept if this node keeps it for another remote (see
// servesLocked), the store's error if it does not hold it, or one
// wrapping errNoMemory if the stream's scope stays full. Counting for
// super-seeding comes first, under the lock that decides, so a leaf
// cannot be given to another remote (stealLocked) while it is on its way
// to this one; a block that then fails to read (a disk error) stays
// counted, which only orders queues.
func (ss *serverStream) block(ctx context.Context, c cid.Cid) ([]byte, int, error) {
	if !acceptableCID(c) {
		return nil, 0, errRefused
	}
	s := ss.svc
	s.mu.Lock()
	if !s.servesLocked(ss, c) {
		s.mu.Unlock()
		return nil, 0, errKept
	}
	out := s.sentLocked(ss, c)
	s.mu.Unlock()
	sendHaves(out)
	// The size is known only once read: reserve the most, keep what it is.
	scope := ss.s.Scope()
	if err := reserve(ctx, scope, MaxBlockSize); err != nil {
		return nil, 0, err
	}
	data, err := s.bs.Get(ctx, c)
	if err == nil && len(data) > MaxBlockSize {
		err = errTooLarge
	}
	if err != nil {
		scope.ReleaseMemory(MaxBlockSize)
		return nil, 0, err
	}
	scope.ReleaseMemory(MaxBlockSize - len(data))
	s.mu.Lock()
	s.countSentLocked(c)
	s.mu.Unlock()
	return data, len(data), nil
}

// release gives the data of a block Get returned back to the store, if
// it takes it (see BlockReleaser).
func (s *Service) release(data []byte) {
	if r, ok := s.bs.(BlockReleaser); ok {
		r.Release(data)
	}
}

// Why a block is not sent.
var (
	errKept     = errors.New("kept for another remote")
	errRefused  = errors.New("CID not accepted from the network")
	errTooLarge = errors.New("block larger than the protocol allows")
)

// waitBytes takes n bytes from lim (nil: no limit) in steps no larger than
// its burst, so the burst can stay small and the cap tight.
func waitBytes(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	for n > 0 {
		k := min(n, lim.Burst())
		if err := lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// next returns the queued WANT to serve next, leaving it queued: one to be
// refused while super-seeding, else the block this node has uploaded
// least, oldest first among equals. (It takes ss.mu
// and svc.mu one after the other: svc.mu is taken before ss.mu elsewhere.)
func (ss *serverStream) next() *Msg {
	ss.mu.Lock()
	live := ss.wants.list()
	ss.mu.Unlock()
	if len(live) == 0 {
		return nil
	}
	s := ss.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.shown != nil {
		// A WANT to be refused is answered first: it costs nothing, and
		// the remote's request slot is free at once.
		for _, m := range live {
			if !s.servesLocked(ss, m.CID) {
				return m
			}
		}
	}
	best := 0
	bestSent := s.sent[live[0].CID]
	for i := 1; i < len(live) && bestSent > 0; i++ {
		if n := s.sent[live[i].CID]; n < bestSent {
			best, bestSent = i, n
		}
	}
	return live[best]
}

// countSentLocked counts an upload of block c, which this node holds.
func (s *Service) countSentLocked(c cid.Cid) {
	if len(s.sent) >= maxSentCounts {
		clear(s.sent) // a bound on memory; the counts only order a queue
	}
	s.sent[c]++
}

// writeBlock writes a message, sending a block's bytes straight from
// m.Data rather than through the scratch buffer.
func writeBlock(bw *bufio.Writer, m *Msg, scratch []byte) ([]byte, error) {
	if m.Type != MsgBlock {
		return writeMsg(bw, m, scratch)
	}
	id := binary.AppendUvarint(nil, m.ID)
	scratch = binary.AppendUvarint(scratch[:0], uint64(1+len(id)+len(m.Data)))
	scratch = append(scratch, byte(MsgBlock))
	scratch = append(scratch, id...)
	if _, err := bw.Write(scratch); err != nil {
		return scratch, err
	}
	_, err := bw.Write(m.Data)
	return scratch, err
}
