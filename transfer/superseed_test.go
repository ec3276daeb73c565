package transfer

import (
	"bufio"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// fakeSeed is a Service holding all of root's n leaves, with remotes
// subscribed through super-seeded streams that never touch the network.
type fakeSeed struct {
	svc    *Service
	root   cid.Cid
	leaves []cid.Cid
}

func newFakeSeed(t *testing.T, n int) *fakeSeed {
	root, leaves, _ := content(t, n, 8)
	svc := &Service{sent: map[cid.Cid]uint32{}, subs: map[cid.Cid]map[*serverStream]struct{}{},
		manifest: map[cid.Cid]*leafIndex{root: newLeafIndex(leaves)}, seeding: map[cid.Cid]*superSeed{}}
	return &fakeSeed{svc, root, leaves}
}

// join subscribes a remote and returns its stream and the leaves its
// have-map shows (nil: everything).
func (f *fakeSeed) join() (*serverStream, []int) {
	ss := &serverStream{svc: f.svc, root: f.root, queued: map[uint64]*Msg{}, wake: make(chan struct{}, 1)}
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	if f.svc.subs[f.root] == nil {
		f.svc.subs[f.root] = map[*serverStream]struct{}{}
	}
	f.svc.subs[f.root][ss] = struct{}{}
	bits := f.svc.startRevealLocked(ss, f.root, len(f.leaves))
	if bits == nil {
		return ss, nil
	}
	var shown []int
	for i := range f.leaves {
		if bits[i/8]&(1<<(i%8)) != 0 {
			shown = append(shown, i)
		}
	}
	return ss, shown
}

// haves drains the HAVEs queued for ss.
func haves(ss *serverStream) []int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []int
	for _, i := range ss.haves {
		out = append(out, int(i))
	}
	ss.haves = nil
	return out
}

func TestSuperSeedShowsEachLeafToOneRemote(t *testing.T) {
	const n = 20
	f := newFakeSeed(t, n)
	if _, shown := f.join(); shown != nil {
		t.Fatalf("a lone remote was shown only %v", shown)
	}
	seen := map[int]*serverStream{}
	mark := func(ss *serverStream, idx []int) {
		t.Helper()
		for _, i := range idx {
			if o := seen[i]; o != nil {
				t.Fatalf("leaf %d shown to two remotes before every leaf was shown once", i)
			}
			seen[i] = ss
		}
	}
	var streams []*serverStream
	for range 3 {
		ss, shown := f.join()
		if len(shown) != revealAhead {
			t.Fatalf("a remote joining a crowd is shown %v, want %d leaves", shown, revealAhead)
		}
		mark(ss, shown)
		streams = append(streams, ss)
	}
	// Each WANT shows its remote one more leaf nobody has seen.
	for k := 0; len(seen) < n; k++ {
		ss := streams[k%3]
		ss.reveal(1)
		got := haves(ss)
		if len(got) != 1 {
			t.Fatalf("a WANT showed %d leaves, want 1", len(got))
		}
		mark(ss, got)
	}
	a, b, c := streams[0], streams[1], streams[2]
	a.reveal(1)
	if got := haves(a); len(got) != 0 {
		t.Fatalf("a WANT after every leaf was shown showed %v", got)
	}
	// showsRest checks that ss, no longer super-seeded, got HAVEs for
	// exactly the leaves it had not been shown.
	showsRest := func(ss *serverStream, when string) {
		t.Helper()
		if ss.superSeeded() {
			t.Fatalf("%s, a remote is still super-seeded", when)
		}
		got := haves(ss)
		for i := range n {
			if (seen[i] == ss) == slices.Contains(got, i) {
				t.Fatalf("%s, leaf %d shown to it: %v, in its HAVEs: %v", when, i, seen[i] == ss, slices.Contains(got, i))
			}
		}
	}
	// An idle remote is shown everything it was not shown.
	a.showAll()
	showsRest(a, "after idling")
	// Once every leaf was uploaded, super-seeding ends: the others are
	// shown the rest, and a new remote sees everything.
	for _, leaf := range f.leaves[:n-1] {
		b.uploaded(leaf)
	}
	if !b.superSeeded() || !c.superSeeded() {
		t.Fatal("super-seeding ended before the last leaf was uploaded")
	}
	b.uploaded(f.leaves[n-1])
	showsRest(b, "once every leaf was uploaded")
	showsRest(c, "once every leaf was uploaded")
	if got := haves(a); len(got) != 0 {
		t.Fatalf("a remote already shown everything got HAVEs %v", got)
	}
	if _, shown := f.join(); shown != nil {
		t.Fatalf("a remote joining after super-seeding ended was shown only %v", shown)
	}
}

// TestSuperSeedCrowd: a seed with a capped upload, facing downloaders that
// start together on real hosts, uploads every leaf once before it uploads
// any twice (nearly), and everyone gets everything.
func TestSuperSeedCrowd(t *testing.T) {
	const n, size = 48, 64 << 10
	root, leaves, blocks := content(t, n, size)
	s := newNode(t, WithMaxUpload(4<<20))
	s.seedWith(root, leaves, blocks, all)
	var dls []*node
	prov := listProviders{}
	for range 4 {
		d := newNode(t)
		dls = append(dls, d)
		prov = append(prov, peertest.Info(d.h))
	}
	prov = append(prov, peertest.Info(s.h))
	s.st.mu.Lock()
	s.st.logGets = true // the seed's uploads, in order
	s.st.mu.Unlock()
	// A remote already watching the root (it asks for nothing): the
	// downloaders join a crowd.
	w := peertest.NewHost(t)
	w.Peerstore().AddAddrs(s.h.ID(), s.h.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := w.NewStream(ctx, s.h.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	bw := bufio.NewWriter(st)
	if _, err := writeMsg(bw, &Msg{Type: MsgHello, Root: root}, nil); err != nil || bw.Flush() != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(st)
	if hm, err := ReadMsg(br, br); err != nil || hm.Type != MsgHaveMap {
		t.Fatalf("watcher: %v %v", hm, err)
	}
	errs := make(chan error, len(dls))
	for _, d := range dls {
		d.st.mu.Lock()
		d.st.roots[root] = leaves
		d.st.mu.Unlock()
		sess := d.svc.NewSession(root, prov)
		t.Cleanup(func() { sess.Close() })
		go func() { errs <- sess.Download(ctx, leaves) }()
	}
	for range dls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dls {
		checkAll(t, d, blocks)
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	first := map[cid.Cid]bool{}
	repeats := 0
	for _, c := range s.st.gets {
		if len(first) == n {
			break
		}
		if first[c] {
			repeats++
		}
		first[c] = true
	}
	// Without super-seeding the seed repeats 6 to 11 leaves here; a remote
	// stalled past revealIdle on a loaded machine may cost one or two.
	if repeats > 2 {
		t.Fatalf("the seed uploaded %d leaves twice before uploading all %d once", repeats, n)
	}
}
