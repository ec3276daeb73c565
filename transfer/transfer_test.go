package transfer

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// memStore is an in-memory BlockStore and Manifests.
type memStore struct {
	mu      sync.Mutex
	blocks  map[cid.Cid][]byte
	roots   map[cid.Cid][]cid.Cid
	corrupt bool      // Get returns flipped bytes
	logGets bool      // record Get calls in gets
	gets    []cid.Cid // what was read, in order
}

func newMemStore() *memStore {
	return &memStore{blocks: map[cid.Cid][]byte{}, roots: map[cid.Cid][]cid.Cid{}}
}

func (m *memStore) Has(_ context.Context, c cid.Cid) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blocks[c]
	return ok, nil
}

func (m *memStore) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[c]
	if !ok {
		return nil, ErrNotFound
	}
	if m.logGets {
		m.gets = append(m.gets, c)
	}
	if m.corrupt {
		b = append([]byte(nil), b...)
		b[0] ^= 0xff
	}
	return b, nil
}

func (m *memStore) Put(_ context.Context, c cid.Cid, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocks[c] = append([]byte(nil), data...)
	return nil
}

func (m *memStore) Leaves(_ context.Context, root cid.Cid) ([]cid.Cid, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.roots[root]
	if !ok {
		return nil, ErrNotFound
	}
	return l, nil
}

func (m *memStore) count(cs []cid.Cid) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range cs {
		if _, ok := m.blocks[c]; ok {
			n++
		}
	}
	return n
}

// content makes n random blocks of size bytes and a fake root naming them.
func content(t testing.TB, n, size int) (cid.Cid, []cid.Cid, map[cid.Cid][]byte) {
	t.Helper()
	blocks := map[cid.Cid][]byte{}
	var leaves []cid.Cid
	for range n {
		b := make([]byte, size)
		rand.Read(b)
		m, _ := mh.Sum(b, mh.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, m)
		blocks[c] = b
		leaves = append(leaves, c)
	}
	m, _ := mh.Sum([]byte(leaves[0].String()), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.DagProtobuf, m), leaves, blocks
}

// listProviders is a Providers backed by a fixed list.
type listProviders []peer.AddrInfo

func (l listProviders) FindProviders(ctx context.Context, _ cid.Cid) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, len(l))
	for _, ai := range l {
		ch <- ai
	}
	close(ch)
	return ch
}

type node struct {
	h   host.Host
	st  *memStore
	svc *Service
}

func newNode(t testing.TB, opts ...Option) *node {
	h := peertest.NewHost(t)
	st := newMemStore()
	svc := New(h, st, st, opts...)
	t.Cleanup(func() { svc.Close() })
	return &node{h, st, svc}
}

// seedWith gives n the root and the leaves selected by keep.
func (n *node) seedWith(root cid.Cid, leaves []cid.Cid, blocks map[cid.Cid][]byte, keep func(i int) bool) {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	n.st.roots[root] = leaves
	for i, c := range leaves {
		if keep(i) {
			n.st.blocks[c] = blocks[c]
		}
	}
}

func all(int) bool { return true }

func download(t *testing.T, d *node, root cid.Cid, leaves []cid.Cid, prov Providers) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.st.mu.Lock()
	d.st.roots[root] = leaves
	d.st.mu.Unlock()
	s := d.svc.NewSession(root, prov)
	t.Cleanup(func() { s.Close() })
	if err := s.Download(ctx, leaves); err != nil {
		t.Fatal(err)
	}
	return s
}

func checkAll(t *testing.T, d *node, blocks map[cid.Cid][]byte) {
	t.Helper()
	for c, want := range blocks {
		got, err := d.st.Get(context.Background(), c)
		if err != nil || string(got) != string(want) {
			t.Fatalf("block %s missing or wrong after download", c)
		}
	}
}

func TestOneSeeder(t *testing.T) {
	root, leaves, blocks := content(t, 64, 32<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	d := newNode(t)
	sess := download(t, d, root, leaves, listProviders{peertest.Info(s.h)})
	checkAll(t, d, blocks)
	if st := sess.Stats()[s.h.ID()]; st.Blocks != 64 || st.Bytes != 64*32<<10 {
		t.Fatalf("stats %+v, want 64 blocks of 32 KiB from the seeder", st)
	}
}

func TestThreePartialSeeders(t *testing.T) {
	root, leaves, blocks := content(t, 90, 16<<10)
	var prov listProviders
	var seeds []*node
	for k := range 3 {
		s := newNode(t)
		s.seedWith(root, leaves, blocks, func(i int) bool { return i%3 == k })
		seeds = append(seeds, s)
		prov = append(prov, peertest.Info(s.h))
	}
	d := newNode(t)
	sess := download(t, d, root, leaves, prov)
	checkAll(t, d, blocks)
	stats := sess.Stats()
	for k, s := range seeds {
		if stats[s.h.ID()].Blocks != 30 {
			t.Errorf("seeder %d sent %d blocks, want its 30", k, stats[s.h.ID()].Blocks)
		}
	}
}

// TestCorruptSeederDropped: a peer serving corrupt blocks is detected,
// banned and never asked again, even when offered again or when it comes
// back on its own; the download completes from the honest peer.
func TestCorruptSeederDropped(t *testing.T) {
	root, leaves, blocks := content(t, 40, 16<<10)
	bad := newNode(t)
	bad.seedWith(root, leaves, blocks, all)
	bad.st.corrupt = true
	bad.st.logGets = true // each Get is a WANT served
	// Slow enough (256 KiB/s: 2.5 s) that the bad peer is surely asked.
	good := newNode(t, WithMaxUpload(256<<10))
	good.seedWith(root, leaves, blocks, all)
	d := newNode(t)
	sess := download(t, d, root, leaves, listProviders{peertest.Info(bad.h), peertest.Info(good.h)})
	checkAll(t, d, blocks)
	stats := sess.Stats()
	if !stats[bad.h.ID()].Bad || stats[bad.h.ID()].Blocks != 0 {
		t.Fatalf("corrupt peer's stats %+v: want Bad and no block accepted", stats[bad.h.ID()])
	}
	bad.st.mu.Lock()
	served := len(bad.st.gets)
	bad.st.mu.Unlock()
	if served == 0 || served > minWindow {
		t.Fatalf("the corrupt peer served %d WANTs, want its first window (1 to %d)", served, minWindow)
	}
	// Offered again, and back on its own as a downloader of the root: its
	// stream to d makes d's server offer it to the session.
	sess.peers.offer(peertest.Info(bad.h))
	back := bad.svc.NewSession(root, listProviders{peertest.Info(d.h)})
	defer back.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	back.peers.start()
	for back.Peers() == 0 { // d's server has answered it, so offered it
		select {
		case <-ctx.Done():
			t.Fatal("the corrupt peer never got a stream to d")
		case <-time.After(10 * time.Millisecond):
		}
	}
	sess.peers.mu.Lock()
	banned, dialing := sess.peers.banned[bad.h.ID()], sess.peers.dialing[bad.h.ID()]
	sess.peers.mu.Unlock()
	connected := sess.has(bad.h.ID())
	if !banned || connected || dialing {
		t.Errorf("bad peer banned=%v connected=%v dialing=%v", banned, connected, dialing)
	}
	bad.st.mu.Lock()
	defer bad.st.mu.Unlock()
	if len(bad.st.gets) != served {
		t.Errorf("the corrupt peer served %d WANTs after its ban", len(bad.st.gets)-served)
	}
}

// TestSwarming: a downloader serves what it has to a second downloader of
// the same root while it is still downloading.
func TestSwarming(t *testing.T) {
	root, leaves, blocks := content(t, 60, 16<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, func(i int) bool { return i < 30 })
	half := newNode(t) // has the other half, as a downloader would
	half.seedWith(root, leaves, blocks, func(i int) bool { return i >= 30 })
	d := newNode(t)
	sess := download(t, d, root, leaves, listProviders{peertest.Info(s.h), peertest.Info(half.h)})
	checkAll(t, d, blocks)
	if sess.Stats()[half.h.ID()].Blocks != 30 {
		t.Errorf("got %d blocks from the other downloader, want 30", sess.Stats()[half.h.ID()].Blocks)
	}
	// A third node now downloads from d alone: d serves what it fetched.
	e := newNode(t)
	download(t, e, root, leaves, listProviders{peertest.Info(d.h)})
	checkAll(t, e, blocks)
}

func TestHaveUpdatesReachRemotes(t *testing.T) {
	root, leaves, blocks := content(t, 20, 8<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	a := newNode(t)
	a.seedWith(root, leaves, blocks, func(int) bool { return false })
	// b connects to a (who has nothing yet) and waits for HAVEs.
	b := newNode(t)
	b.st.roots[root] = leaves
	sb := b.svc.NewSession(root, listProviders{peertest.Info(a.h)})
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sb.Download(ctx, leaves) }()
	// a downloads from s; every leaf it gets is announced to b, who then
	// fetches it from a.
	download(t, a, root, leaves, listProviders{peertest.Info(s.h)})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkAll(t, b, blocks)
}

func TestResumeAndNoPeers(t *testing.T) {
	root, leaves, blocks := content(t, 30, 8<<10)
	d := newNode(t)
	d.seedWith(root, leaves, blocks, func(i int) bool { return i < 10 })
	// Nobody to fetch from: Download gives up with ErrNoPeers when ctx ends
	// and keeps what it had.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	sess := d.svc.NewSession(root, listProviders{})
	err := sess.Download(ctx, leaves)
	sess.Close()
	if !errors.Is(err, ErrNoPeers) {
		t.Fatalf("err = %v, want ErrNoPeers", err)
	}
	if got := d.st.count(leaves); got != 10 {
		t.Fatalf("have %d blocks after failure, want the 10 held before", got)
	}
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	sess2 := download(t, d, root, leaves, listProviders{peertest.Info(s.h)})
	if got := sess2.Stats()[s.h.ID()].Blocks; got != 20 {
		t.Fatalf("resumed download fetched %d blocks, want only the 20 missing", got)
	}
	checkAll(t, d, blocks)
}

func TestBlockStructure(t *testing.T) {
	root, leaves, blocks := content(t, 3, 1000)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	d := newNode(t)
	sess := d.svc.NewSession(root, listProviders{peertest.Info(s.h)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := sess.Block(ctx, leaves[1])
	if err != nil || string(got) != string(blocks[leaves[1]]) {
		t.Fatalf("Block = %v, %v", len(got), err)
	}
	if ok, _ := d.st.Has(ctx, leaves[1]); !ok {
		t.Fatal("Block did not store what it fetched")
	}
}

// TestConnectedPeersAsked: a session asks the peers its host is already
// connected to, before and without any provider lookup.
func TestConnectedPeersAsked(t *testing.T) {
	root, leaves, blocks := content(t, 10, 8<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	d := newNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.h.Connect(ctx, peertest.Info(s.h)); err != nil {
		t.Fatal(err)
	}
	download(t, d, root, leaves, listProviders{})
	checkAll(t, d, blocks)
}
