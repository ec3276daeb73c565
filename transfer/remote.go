package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ipfs/go-cid"
)

// remote is a session's stream to one peer for one root. It owns the
// stream's reader and writer goroutines: the reader decodes what the peer
// sends and hands it to the session (remoteEvents); the writer sends what
// the session queues with send.
type remote struct {
	key     uint64 // the scheduler's name for this connection
	id      peer.ID
	s       network.Stream
	limited bool // the stream runs over a relayed (limited) connection
	out     chan *Msg
	closed  chan struct{} // closed by close
	once    sync.Once
	br      *bufio.Reader
	bw      *bufio.Writer
	// haveMap is what the peer's HAVE_MAP said: the leaves it holds and
	// how many leaves its view of the root has (0: it did not say).
	haveMap bitfield
	count   uint64
	// opening is the session's opening request, sent with HELLO on this
	// stream; the session's add records it (nil if none was).
	opening *opening
}

// remoteEvents is what a remote's reader reports to its session. The
// reader stops when a method returns false (the session dropped r).
type remoteEvents interface {
	have(r *remote, idx uint64)
	block(r *remote, m *Msg) bool
	dontHave(r *remote, id uint64) bool
	// drop forgets r; a reason other than "" says it misbehaved.
	drop(r *remote, why BanReason, detail error)
}

// dialRemote connects to a peer (directly, or through a relay if that is
// all there is), opens a stream, says HELLO for root (followed by the
// WANT of o, if not nil, in the same write) and reads the peer's
// have-map. The remote's loops are not started (see run).
func dialRemote(ctx context.Context, h host.Host, root cid.Cid, ai peer.AddrInfo, o *opening) (*remote, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	// Relayed connections are "limited" in go-libp2p: a stream over one
	// needs WithAllowLimitedConn. The download starts over the relay and
	// moves to a direct connection once there is one (see the session's
	// peer source).
	ctx = network.WithAllowLimitedConn(ctx, "p2pshare: fetch through a relay until a direct connection opens")
	if c := h.Network().Connectedness(ai.ID); c != network.Connected && c != network.Limited {
		// The peer source paces retries itself (a seed that restarted
		// must be reachable again at once), so skip the swarm's backoff.
		// A forced direct dial skips relay addresses too: a peer behind a
		// NAT is dialed again through its relays (its /p2p-circuit
		// addresses), after which DCUtR tries to punch a direct
		// connection.
		dctx := network.WithForceDirectDial(ctx, "p2pshare: provider of a root being fetched")
		if err := h.Connect(dctx, ai); err != nil {
			if rerr := h.Connect(ctx, ai); rerr != nil {
				return nil, fmt.Errorf("%w %s: %v", errUnreachable, ai.ID, err)
			}
		}
	}
	st, err := h.NewStream(ctx, ai.ID, ID)
	if err != nil {
		return nil, err
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return nil, fmt.Errorf("stream to %s: %w", ai.ID, err)
	}
	st.SetDeadline(time.Now().Add(dialTimeout))
	bw := bufio.NewWriterSize(st, 16<<10)
	scratch, err := writeMsg(bw, &Msg{Type: MsgHello, Root: root}, nil)
	if err == nil && o != nil {
		_, err = writeMsg(bw, &Msg{Type: MsgWant, ID: o.id, CID: o.c}, scratch)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("greeting %s: %w", ai.ID, err)
	}
	br := bufio.NewReaderSize(st, 64<<10)
	// A session that closes does not wait out the deadline of a peer
	// that took HELLO and says nothing.
	unblock := context.AfterFunc(ctx, func() { st.Reset() })
	hm, err := readMsg(ctx, br, br, st.Scope())
	if !unblock() && err == nil {
		hm.Release()
		return nil, fmt.Errorf("reading %s's have-map: %w", ai.ID, ctx.Err())
	}
	if err != nil || hm.Type != MsgHaveMap {
		if err == nil || errors.Is(err, ErrProtocol) {
			violation(st)
		} else {
			st.Reset()
		}
		return nil, fmt.Errorf("reading %s's have-map: %w", ai.ID, err)
	}
	st.SetDeadline(time.Time{})
	r := &remote{id: ai.ID, s: st, limited: st.Conn().Stat().Limited, out: make(chan *Msg, 2*maxWindow+8),
		closed: make(chan struct{}), br: br, bw: bw, opening: o}
	if hm.Count > 0 {
		// A copy of its own size: the message buffer is recycled.
		r.haveMap, r.count = bitfield(slices.Clone(hm.Bits)), hm.Count
	}
	hm.Release()
	return r, nil
}

// run starts r's reader and writer, counted in wg; they end when the
// stream fails, r is closed or life ends.
func (r *remote) run(life context.Context, wg *sync.WaitGroup, ev remoteEvents) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.writeLoop(life, ev)
	}()
	go func() {
		defer wg.Done()
		r.readLoop(life, ev)
	}()
}

// close stops r's loops and resets its stream: with a protocol violation
// if bad (the peer misbehaved).
func (r *remote) close(bad bool) {
	r.once.Do(func() {
		close(r.closed)
		if bad {
			violation(r.s)
		} else {
			r.s.Reset()
		}
	})
}

// send queues a message to r without blocking the caller for long: it
// gives up once r is closed or life ends.
func (r *remote) send(life context.Context, m *Msg) {
	select {
	case r.out <- m:
	case <-r.closed:
	case <-life.Done():
	}
}

// writeLoop sends queued messages, flushing when the queue is empty.
func (r *remote) writeLoop(life context.Context, ev remoteEvents) {
	var scratch []byte
	var err error
	for {
		var m *Msg
		select {
		case m = <-r.out:
		case <-r.closed:
			return
		case <-life.Done():
			return
		}
		r.s.SetWriteDeadline(time.Now().Add(writeTimeout))
		if scratch, err = writeMsg(r.bw, m, scratch); err != nil {
			ev.drop(r, "", nil)
			return
		}
		if len(r.out) == 0 && r.bw.Flush() != nil {
			ev.drop(r, "", nil)
			return
		}
	}
}

// readLoop decodes what the peer sends: HAVEs, BLOCKs and DONT_HAVEs.
// Each message's buffer is reserved in the stream's resource scope until
// it is released (a BLOCK's once it is stored). Anything a downloader is
// never sent drops the peer as misbehaving.
func (r *remote) readLoop(life context.Context, ev remoteEvents) {
	for {
		r.s.SetReadDeadline(time.Now().Add(streamIdleTimeout))
		m, err := readMsg(life, r.br, r.br, r.s.Scope())
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				ev.drop(r, BanMalformed, err)
			} else {
				ev.drop(r, "", nil)
			}
			return
		}
		if m.Type != MsgBlock {
			m.Release() // small, and decoded now
		}
		switch m.Type {
		case MsgHave:
			ev.have(r, m.Index)
		case MsgBlock:
			if !ev.block(r, m) {
				return
			}
		case MsgDontHave:
			if !ev.dontHave(r, m.ID) {
				return
			}
		case MsgHello, MsgWant, MsgCancel, MsgHaveMap:
			ev.drop(r, BanUnexpected, fmt.Errorf("%s", m.Type))
			return
		default:
			// unknown type: skipped
		}
	}
}
