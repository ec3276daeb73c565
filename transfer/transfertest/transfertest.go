// Package transfertest serves arbitrary blocks over the real transfer
// protocol, for tests of what a downloader does with what strangers send
// and of what a server does with what they ask: a Store holds whatever
// blocks a test puts in it (crafted DAGs included, under any hash the test
// chooses), a Seed is a real loopback libp2p host that serves a Store with
// transfer.Service, a Hostile is one whose server is written from the wire
// format up and misbehaves as told (silent, corrupt), and a Client speaks
// the wire format to a server as a test tells it (a flooder that never
// reads).
package transfertest

import (
	"bufio"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
	"github.com/p2pshare/p2pshare/transfer"
)

// Store is an in-memory transfer.BlockStore and transfer.Manifests. It
// serves what it was given without checking it: that is its point.
type Store struct {
	mu     sync.Mutex
	blocks map[cid.Cid][]byte
	roots  map[cid.Cid][]cid.Cid
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{blocks: map[cid.Cid][]byte{}, roots: map[cid.Cid][]cid.Cid{}}
}

// Has reports whether the store holds c.
func (s *Store) Has(_ context.Context, c cid.Cid) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blocks[c]
	return ok, nil
}

// Get returns the bytes stored under c, whatever they are.
func (s *Store) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[c]
	if !ok {
		return nil, transfer.ErrNotFound
	}
	return b, nil
}

// Put stores a copy of data under c.
func (s *Store) Put(_ context.Context, c cid.Cid, data []byte) error {
	s.Set(c, data)
	return nil
}

// Leaves returns the leaf list given to SetLeaves for root.
func (s *Store) Leaves(_ context.Context, root cid.Cid) ([]cid.Cid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.roots[root]
	if !ok {
		return nil, transfer.ErrNotFound
	}
	return l, nil
}

// Set stores data under c, which need not be its hash.
func (s *Store) Set(c cid.Cid, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks[c] = append([]byte(nil), data...)
}

// Add stores data under the CIDv1 of the given codec and its full
// sha2-256 hash, and returns that CID.
func (s *Store) Add(codec uint64, data []byte) cid.Cid {
	c := Sum(codec, mh.SHA2_256, -1, data)
	s.Set(c, data)
	return c
}

// SetLeaves makes the store announce root's leaves (in DAG order) as
// Manifests does for a root whose structure a node holds.
func (s *Store) SetLeaves(root cid.Cid, leaves []cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roots[root] = leaves
}

// Sum returns the CIDv1 of data under the codec and the multihash function
// code, cut to length bytes (-1: the function's full length). It panics on
// an unknown function, which is a bug in the test.
func Sum(codec, code uint64, length int, data []byte) cid.Cid {
	m, err := mh.Sum(data, code, length)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(codec, m)
}

// Seed is a real host serving a Store over the transfer protocol.
type Seed struct {
	Host    host.Host
	Store   *Store
	Service *transfer.Service
}

// NewSeed starts a loopback host that serves st (a new Store if nil). It
// stops when the test ends.
func NewSeed(t testing.TB, st *Store, opts ...transfer.Option) *Seed {
	t.Helper()
	if st == nil {
		st = NewStore()
	}
	h := peertest.NewHost(t)
	svc := transfer.New(h, st, st, opts...)
	t.Cleanup(func() { svc.Close() })
	return &Seed{Host: h, Store: st, Service: svc}
}

// Client speaks the transfer protocol's wire format to a server and
// nothing more: what it sends and when it reads are the test's choice
// (a flooder never reads).
type Client struct {
	S network.Stream
	r *bufio.Reader
	w *bufio.Writer
}

// Open opens a stream from h to p and says HELLO for root. It does not
// read the have-map: call Recv for it.
func Open(ctx context.Context, h host.Host, p peer.ID, root cid.Cid) (*Client, error) {
	s, err := h.NewStream(ctx, p, transfer.ID)
	if err != nil {
		return nil, err
	}
	c := &Client{S: s, r: bufio.NewReader(s), w: bufio.NewWriterSize(s, 64<<10)}
	if err := c.Send(&transfer.Msg{Type: transfer.MsgHello, Root: root}); err != nil {
		s.Reset()
		return nil, err
	}
	return c, nil
}

// Send writes messages and flushes them.
func (c *Client) Send(ms ...*transfer.Msg) error {
	var b []byte
	for _, m := range ms {
		b = m.Encode(b[:0])
		if _, err := c.w.Write(b); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

// Recv reads one message.
func (c *Client) Recv() (*transfer.Msg, error) { return transfer.ReadMsg(c.r, c.r) }

// FloodWantCancel writes WANT/CANCEL pairs for cids, round and round
// with new request IDs, as fast as the stream takes them and never
// reading, until ctx ends (then it resets the stream) or the stream
// breaks. It returns the pairs written.
func (c *Client) FloodWantCancel(ctx context.Context, cids []cid.Cid) int {
	stop := context.AfterFunc(ctx, func() { c.S.Reset() })
	defer stop()
	var b []byte
	id, n := uint64(1), 0
	for ctx.Err() == nil {
		b = b[:0]
		for range 256 {
			cc := cids[int(id)%len(cids)]
			b = (&transfer.Msg{Type: transfer.MsgWant, ID: id, CID: cc}).Encode(b)
			b = (&transfer.Msg{Type: transfer.MsgCancel, ID: id}).Encode(b)
			id++
		}
		if _, err := c.S.Write(b); err != nil {
			return n
		}
		n += 256
	}
	return n
}

// Mode is what a Hostile server does with the WANTs it reads.
type Mode int

// Hostile modes.
const (
	// Serve answers each WANT with the Store's block, or DONT_HAVE.
	Serve Mode = iota
	// Silent reads WANTs and never answers, keeping the stream open.
	Silent
	// Corrupt answers each WANT with the Store's block, its first byte
	// flipped.
	Corrupt
	// Malformed answers each WANT with a message of length 0, which no
	// message may have.
	Malformed
)

// Want is a WANT a Hostile server read, and when.
type Want struct {
	ID  uint64
	CID cid.Cid
	At  time.Time
}

// Hostile is a real loopback host with a server of the transfer protocol
// written from the wire format up, behaving as its Mode says. It records
// every WANT it reads. Its have-map shows every leaf of a root the Store
// has leaves for (SetLeaves), whether it holds them or not.
type Hostile struct {
	Host  host.Host
	Store *Store
	mode  Mode
	pace  time.Duration

	mu       sync.Mutex
	wants    []Want
	streams  int
	firstBad time.Time
	bad      chan struct{} // closed when the first corrupt block is sent
}

// NewHostile starts a Hostile server for st (a new Store if nil) that
// sends at most one block per pace (0: no pacing). It stops when the test
// ends.
func NewHostile(t testing.TB, st *Store, mode Mode, pace time.Duration) *Hostile {
	t.Helper()
	if st == nil {
		st = NewStore()
	}
	hs := &Hostile{Host: peertest.NewHost(t), Store: st, mode: mode, pace: pace, bad: make(chan struct{})}
	hs.Host.SetStreamHandler(transfer.ID, hs.handle)
	return hs
}

// Wants returns the WANTs read so far, in order.
func (hs *Hostile) Wants() []Want {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]Want(nil), hs.wants...)
}

// Streams returns how many streams remotes opened to it.
func (hs *Hostile) Streams() int {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.streams
}

// FirstBad returns a channel closed once a corrupt block was sent, and
// when that was (valid once closed).
func (hs *Hostile) FirstBad() (<-chan struct{}, func() time.Time) {
	return hs.bad, func() time.Time {
		hs.mu.Lock()
		defer hs.mu.Unlock()
		return hs.firstBad
	}
}

func (hs *Hostile) handle(s network.Stream) {
	defer s.Reset()
	hs.mu.Lock()
	hs.streams++
	hs.mu.Unlock()
	r := bufio.NewReader(s)
	hello, err := transfer.ReadMsg(r, r)
	if err != nil || hello.Type != transfer.MsgHello {
		return
	}
	leaves, _ := hs.Store.Leaves(context.Background(), hello.Root)
	seen := map[cid.Cid]bool{}
	for _, c := range leaves {
		seen[c] = true
	}
	hm := &transfer.Msg{Type: transfer.MsgHaveMap, Count: uint64(len(seen)), Bits: make([]byte, (len(seen)+7)/8)}
	for i := range hm.Bits {
		hm.Bits[i] = 0xff
	}
	if len(seen)%8 != 0 {
		hm.Bits[len(hm.Bits)-1] = 1<<(len(seen)%8) - 1
	}
	if _, err := s.Write(hm.Encode(nil)); err != nil {
		return
	}
	replies := make(chan *transfer.Msg, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range replies {
			if hs.pace > 0 {
				time.Sleep(hs.pace) // the peer's own slowness, not a synchronisation
			}
			b := m.Encode(nil)
			if hs.mode == Malformed {
				b = []byte{0} // the uvarint length 0
			}
			if _, err := s.Write(b); err != nil {
				return
			}
			if m.Type == transfer.MsgBlock && hs.mode == Corrupt {
				hs.mu.Lock()
				if hs.firstBad.IsZero() {
					hs.firstBad = time.Now()
					close(hs.bad)
				}
				hs.mu.Unlock()
			}
		}
	}()
	defer func() { close(replies); <-done }()
	for {
		m, err := transfer.ReadMsg(r, r)
		if err != nil {
			return
		}
		if m.Type != transfer.MsgWant {
			continue
		}
		hs.mu.Lock()
		hs.wants = append(hs.wants, Want{m.ID, m.CID, time.Now()})
		hs.mu.Unlock()
		if hs.mode == Silent {
			continue
		}
		reply := &transfer.Msg{Type: transfer.MsgDontHave, ID: m.ID}
		if data, err := hs.Store.Get(context.Background(), m.CID); err == nil {
			if hs.mode == Corrupt {
				data = append([]byte(nil), data...)
				if len(data) == 0 {
					data = []byte{0}
				}
				data[0] ^= 0xff
			}
			reply = &transfer.Msg{Type: transfer.MsgBlock, ID: m.ID, Data: data}
		}
		select {
		case replies <- reply:
		case <-done:
			return
		}
	}
}

// Providers is a transfer.Providers that offers a fixed list of peers.
type Providers []peer.AddrInfo

// FindProviders sends the list and closes the channel.
func (l Providers) FindProviders(context.Context, cid.Cid) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, len(l))
	for _, ai := range l {
		ch <- ai
	}
	close(ch)
	return ch
}
