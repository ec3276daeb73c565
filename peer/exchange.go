package peer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/retrieval"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/transfer"
)

// DefaultBlockTimeout bounds how long the swarm exchange (Node.Exchange)
// waits for one block before it gives up with an error wrapping
// context.DeadlineExceeded (a 504 from the gateway).
const DefaultBlockTimeout = 30 * time.Second

// Bounds of the swarm exchange.
const (
	// exchangeSlots is how many blocks one exchange fetches at once, over
	// all its sessions: the block bytes it has in flight are at most this
	// many blocks of chunker.MaxBlockSize (64 MiB), whatever its callers
	// ask for.
	exchangeSlots = 32
	// exchangeParallel is how many blocks of one GetBlocks call are
	// fetched at once (boxo's file reader asks for the next 10 leaves).
	exchangeParallel = 8
)

// Exchange returns a boxo exchange (github.com/ipfs/boxo/exchange) that
// fetches blocks from the swarm over p2pshare's transfer protocol, for the
// HTTP gateway (peer/gateway), which asks it for the blocks the repo does
// not hold. Each exchange session (one per gateway request) is a
// transfer.Session named after the root of the request's path: it finds
// peers through the DHT's providers of that root and the peers this node
// is connected to, as get does, and keeps nothing itself (the gateway caches what it fetched). Every block is
// hashed against its CID by the session before it is returned, and a peer
// that sends a bad one is dropped from the session for good; only CIDs
// that chunker.CheckCID accepts are fetched. Each block must arrive within
// timeout (0: DefaultBlockTimeout). A session ends with its context or
// when the node closes.
func (n *Node) Exchange(timeout time.Duration) exchange.SessionExchange {
	if timeout <= 0 {
		timeout = DefaultBlockTimeout
	}
	return &swarmExchange{n: n, timeout: timeout, slots: make(chan struct{}, exchangeSlots)}
}

// swarmExchange is Node.Exchange.
type swarmExchange struct {
	n       *Node
	timeout time.Duration
	slots   chan struct{} // one per block being fetched
}

// NewSession returns a fetcher whose blocks come from one transfer
// session, closed when ctx ends.
func (e *swarmExchange) NewSession(ctx context.Context) exchange.Fetcher {
	life, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.n.life, cancel)
	s := &swarmSession{e: e, life: life}
	context.AfterFunc(life, func() {
		stop()
		s.mu.Lock()
		s.closed = true
		sess := s.sess
		s.mu.Unlock()
		if sess != nil {
			sess.Close()
		}
	})
	return s
}

// GetBlock fetches c through a session of its own, rooted at c.
func (e *swarmExchange) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return e.NewSession(ctx).GetBlock(ctx, c)
}

// GetBlocks fetches ks through a session of its own, rooted at the first
// of them; it ends when they have all come or failed, or ctx ends.
func (e *swarmExchange) GetBlocks(ctx context.Context, ks []cid.Cid) (<-chan blocks.Block, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := e.NewSession(ctx).(*swarmSession)
	return s.getBlocks(ctx, ks, cancel), nil
}

// NotifyNewBlocks does nothing: the transfer service serves what the repo
// holds, and the gateway's cache is not served to peers.
func (*swarmExchange) NotifyNewBlocks(context.Context, ...blocks.Block) error { return nil }

// Close does nothing: sessions end with their contexts or the node.
func (*swarmExchange) Close() error { return nil }

// swarmSession is one exchange session: see Node.Exchange.
type swarmSession struct {
	e    *swarmExchange
	life context.Context

	mu     sync.Mutex
	sess   *transfer.Session // nil until the first fetch
	closed bool
}

// session returns the transfer session, or nil once the session has
// ended. The first call starts it, named after the root of the gateway
// request's path, which boxo records on the request's context
// (retrieval.State) before it fetches anything, else after first (the
// first block asked for). The path's root is what peers provide: a later
// request whose first blocks the gateway has cached still finds them.
func (s *swarmSession) session(first cid.Cid) *transfer.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil && !s.closed {
		root := first
		if rs := retrieval.StateFromContext(s.life); rs != nil {
			if r := rs.GetRootCID(); chunker.CheckCID(r) == nil {
				root = r
			}
		}
		s.sess = s.e.n.Transfer.NewSession(root, s.e.n.DHT, transfer.WithStore(noStore{}), transfer.NotADownload())
	}
	if s.closed {
		return nil
	}
	return s.sess
}

// GetBlock fetches c from the swarm, verified, within the exchange's
// timeout.
func (s *swarmSession) GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if err := chunker.CheckCID(c); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.e.timeout,
		fmt.Errorf("block %s: no peer sent it within %s: %w", c, s.e.timeout, context.DeadlineExceeded))
	defer cancel()
	select {
	case s.e.slots <- struct{}{}:
		defer func() { <-s.e.slots }()
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	sess := s.session(c)
	if sess == nil {
		return nil, fmt.Errorf("block %s: %w", c, context.Canceled)
	}
	data, err := sess.Block(ctx, c) // verified against c
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetBlocks fetches ks, exchangeParallel at a time; the channel closes
// when they have all come or failed, or ctx ends. A block that cannot be
// fetched is left out (boxo's readers then report it missing).
func (s *swarmSession) GetBlocks(ctx context.Context, ks []cid.Cid) (<-chan blocks.Block, error) {
	return s.getBlocks(ctx, ks, func() {}), nil
}

// getBlocks is GetBlocks; done is called once the channel is closed.
func (s *swarmSession) getBlocks(ctx context.Context, ks []cid.Cid, done func()) <-chan blocks.Block {
	out := make(chan blocks.Block)
	go func() {
		defer done()
		defer close(out)
		var g errgroup.Group
		g.SetLimit(exchangeParallel)
		for _, c := range ks {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				b, err := s.GetBlock(ctx, c)
				if err == nil {
					select {
					case out <- b:
					case <-ctx.Done():
					}
				}
				return nil
			})
		}
		g.Wait()
	}()
	return out
}

// noStore is the store of the exchange's transfer sessions: it holds and
// keeps nothing, so that each block goes only to the Block call that
// asked for it (and from there to the gateway's cache), never into the
// repo.
type noStore struct{}

func (noStore) Has(context.Context, cid.Cid) (bool, error)   { return false, nil }
func (noStore) Get(context.Context, cid.Cid) ([]byte, error) { return nil, transfer.ErrNotFound }
func (noStore) Put(context.Context, cid.Cid, []byte) error   { return nil }
