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
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

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

	root cid.Cid // the root named in HELLO; its crowd (svc.crowds) has ss
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
	s.crowdLocked(hello.Root).join(ss)
	if err == nil && s.manifest[hello.Root] == nil {
		s.manifest[hello.Root] = li // dropped meanwhile; announce needs it
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		wake := s.crowds[ss.root].leave(ss)
		s.dropIndexLocked(ss.root)
		s.mu.Unlock()
		signal(wake)
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
		if bits, converted = s.crowds[hello.Root].start(ss, len(li.leaves)); bits != nil {
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
			if d := ss.feed(); d > 0 {
				idle = time.After(d)
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
		data, done, err := ss.block(ctx, next.CID)
		switch {
		case errors.Is(err, errNoMemory) || ctx.Err() != nil:
			return
		case err == nil:
			if err := waitBytes(ctx, ss.svc.up, len(data)); err != nil {
				done()
				return
			}
			ss.busyAt.Store(time.Now().UnixNano())
			reply = &Msg{Type: MsgBlock, ID: next.ID, Data: data}
		}
		scratch, err = writeBlock(bw, reply, scratch)
		if done != nil {
			done()
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

// block returns the block c to send to ss, counted as uploaded, and done,
// to call once it is written (it returns the bytes reserved for it in the
// stream's scope and its buffer), or an error: errRefused for a CID not accepted
// from the network, errKept if this node keeps it for another remote (see
// crowd.serves), the store's error if it does not hold it, or one
// wrapping errNoMemory if the stream's scope stays full. Counting for
// super-seeding comes first, under the lock that decides, so a leaf
// cannot be given to another remote (crowd.steal) while it is on its way
// to this one; a block that then fails to read (a disk error) stays
// counted, which only orders queues.
func (ss *serverStream) block(ctx context.Context, c cid.Cid) ([]byte, func(), error) {
	if !acceptableCID(c) {
		return nil, nil, errRefused
	}
	s := ss.svc
	s.mu.Lock()
	cr := s.crowds[ss.root]
	i, n := s.leafLocked(ss.root, c)
	if !cr.serves(ss, i) {
		s.mu.Unlock()
		return nil, nil, errKept
	}
	cr.uploaded(ss, i, n)
	s.mu.Unlock()
	if data, done, ok := s.recent.get(c); ok {
		s.countSent(c)
		return data, done, nil // verified a moment ago, kept in memory
	}
	// The size is known only once read: reserve the most, keep what it is.
	scope := ss.s.Scope()
	if err := reserve(ctx, scope, MaxBlockSize); err != nil {
		return nil, nil, err
	}
	data, err := s.bs.Get(ctx, c)
	if err == nil && len(data) > MaxBlockSize {
		err = errTooLarge
	}
	if err != nil {
		scope.ReleaseMemory(MaxBlockSize)
		return nil, nil, err
	}
	scope.ReleaseMemory(MaxBlockSize - len(data))
	s.countSent(c)
	return data, func() {
		scope.ReleaseMemory(len(data))
		s.release(data)
	}, nil
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
	if cr := s.crowds[ss.root]; cr.superSeeded(ss) {
		// A WANT to be refused is answered first: it costs nothing, and
		// the remote's request slot is free at once.
		for _, m := range live {
			if i, _ := s.leafLocked(ss.root, m.CID); !cr.serves(ss, i) {
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

// countSent counts an upload of block c, which this node holds.
func (s *Service) countSent(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
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

const (
	// revealAhead is how many leaves a super-seeded remote is shown
	// beyond those it has asked for: every WANT shows one more, so a
	// remote can always fill its window.
	revealAhead = 4
	// revealIdle is how long a super-seeded remote may ask for nothing
	// before the leaves it was shown and did not ask for are shown to
	// others (it gets them elsewhere, or it stalled), and, if no remote of
	// the root is asking for anything either, it is shown everything.
	revealIdle = 500 * time.Millisecond
	// maxIdleWaits is how many times a remote that idles once every leaf
	// was uploaded (each a quarter of revealIdle, see serverStream.feed) waits,
	// while others are served, before it is shown everything anyway (see
	// crowd.idle).
	maxIdleWaits = 4
)

// crowdLocked returns root's crowd, made if it has none.
func (s *Service) crowdLocked(root cid.Cid) *crowd {
	cr := s.crowds[root]
	if cr == nil {
		cr = newCrowd()
		s.crowds[root] = cr
	}
	return cr
}

// leafLocked returns c's index among root's n leaves, or -1 if c is not
// one of them (or root's structure is not known).
func (s *Service) leafLocked(root, c cid.Cid) (i, n int) {
	li := s.manifest[root]
	if li == nil {
		return -1, 0
	}
	if i, ok := li.pos[c]; ok {
		return i, len(li.leaves)
	}
	return -1, len(li.leaves)
}

// wanted lets the crowd show a super-seeded remote one more leaf for its
// WANT of c (see crowd.wanted).
func (ss *serverStream) wanted(c cid.Cid) {
	s := ss.svc
	s.mu.Lock()
	i, _ := s.leafLocked(ss.root, c)
	idx := s.crowds[ss.root].wanted(ss, i)
	s.mu.Unlock()
	ss.sendHaves(idx)
}

// feed shows a super-seeded remote with nothing to ask for a few more
// leaves (see crowd.feed) and returns how long it may then ask for
// nothing before it counts as idle (see idle); 0 if it is not
// super-seeded.
func (ss *serverStream) feed() time.Duration {
	s := ss.svc
	s.mu.Lock()
	cr := s.crowds[ss.root]
	if !cr.superSeeded(ss) {
		s.mu.Unlock()
		return 0
	}
	idx := cr.feed(ss)
	// Once every leaf was uploaded an idle remote may be shown everything
	// (see crowd.idle), and this node's upload would otherwise sit unused
	// while the crowd relays its last leaves: it is looked at sooner.
	after := revealIdle
	if cr.allUploaded() {
		after = revealIdle / 4
	}
	s.mu.Unlock()
	ss.sendHaves(idx)
	return after
}

// idle handles a super-seeded remote that asked for nothing for
// revealIdle, up to now (see crowd.idle).
func (ss *serverStream) idle(now time.Time) {
	s := ss.svc
	s.mu.Lock()
	cr := s.crowds[ss.root]
	busy := false
	for o := range cr.remotes {
		busy = busy || (o != ss && o.servedSince(now.Add(-revealIdle)))
	}
	idx, wake := cr.idle(ss, busy)
	s.mu.Unlock()
	ss.sendHaves(idx)
	signal(wake)
}

// servedSince reports whether a block was on its way to ss at or after t.
func (ss *serverStream) servedSince(t time.Time) bool {
	return ss.busyAt.Load() >= t.UnixNano()
}

// sendHaves queues the HAVEs for each stream.
func sendHaves(out map[*serverStream][]uint64) {
	for o, idx := range out {
		o.sendHaves(idx)
	}
}

// signal wakes the streams' writers.
func signal(wake []*serverStream) {
	for _, o := range wake {
		o.signal()
	}
}
