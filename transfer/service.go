package transfer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
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
	recent   recentBlocks // leaves just verified, for the crowd that asks next

	mu       sync.Mutex
	sent     map[cid.Cid]uint32 // times each block was uploaded
	crowds   map[cid.Cid]*crowd // the remotes fetching each root from us
	sessions map[cid.Cid]map[*Session]struct{}
	manifest map[cid.Cid]*leafIndex // roots with sessions or remotes

	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once
}

// New starts the service on h: it registers the protocol handler.
func New(h host.Host, bs BlockStore, m Manifests, opts ...Option) *Service {
	s := &Service{
		h: h, bs: bs, m: m,
		sent:     map[cid.Cid]uint32{},
		crowds:   map[cid.Cid]*crowd{},
		sessions: map[cid.Cid]map[*Session]struct{}{},
		manifest: map[cid.Cid]*leafIndex{},
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
	for _, cr := range s.crowds {
		for ss := range cr.remotes {
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
	if (s.crowds[root] == nil || len(s.crowds[root].remotes) == 0) && len(s.sessions[root]) == 0 {
		delete(s.manifest, root)
		delete(s.crowds, root)
		delete(s.sessions, root)
	}
}

// announce tells the remotes interested in root that leaf c is now held.
// m, if not nil, is c's verified block, handed over: it is kept in
// s.recent before the HAVEs go out if there are such remotes (they will
// ask for it next), else released.
func (s *Service) announce(root, c cid.Cid, m *Msg) {
	s.mu.Lock()
	li := s.manifest[root]
	var subs []*serverStream
	if cr := s.crowds[root]; cr != nil {
		for ss := range cr.remotes {
			subs = append(subs, ss)
		}
	}
	s.mu.Unlock()
	if m != nil {
		if len(subs) > 0 {
			s.recent.keep(c, m)
		} else {
			m.Release()
		}
	}
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
