// Package transfertest serves arbitrary blocks over the real transfer
// protocol, for tests of what a downloader does with what strangers send:
// a Store holds whatever blocks a test puts in it (crafted DAGs included,
// under any hash the test chooses), and a Seed is a real loopback libp2p
// host that serves a Store with transfer.Service.
package transfertest

import (
	"context"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
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
