package transfer

import (
	"bufio"
	"context"
	"fmt"
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
	svc := &Service{sent: map[cid.Cid]uint32{}, crowds: map[cid.Cid]*crowd{},
		manifest: map[cid.Cid]*leafIndex{root: newLeafIndex(leaves)}}
	return &fakeSeed{svc, root, leaves}
}

// join subscribes a remote and returns its stream and the leaves its
// have-map shows (nil: everything).
func (f *fakeSeed) join() (*serverStream, []int) {
	ss := &serverStream{svc: f.svc, root: f.root, wake: make(chan struct{}, 1)}
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	cr := f.svc.crowdLocked(f.root)
	cr.join(ss)
	bits, out := cr.start(ss, len(f.leaves))
	for o, idx := range out {
		o.haves.add(idx)
	}
	if bits == nil {
		return ss, nil
	}
	return ss, slices.Collect(bits.all())
}

// reveal shows ss up to k more leaves and queues them as HAVEs.
func reveal(ss *serverStream, k int) {
	ss.svc.mu.Lock()
	cr := ss.svc.crowds[ss.root]
	idx := cr.reveal(cr.remotes[ss], k)
	ss.svc.mu.Unlock()
	ss.sendHaves(idx)
}

// serves reports whether ss may be sent c now.
func (ss *serverStream) serves(c cid.Cid) bool {
	ss.svc.mu.Lock()
	defer ss.svc.mu.Unlock()
	i, _ := ss.svc.leafLocked(ss.root, c)
	return ss.svc.crowds[ss.root].serves(ss, i)
}

// uploaded counts an upload of c to ss, as sending it would.
func (ss *serverStream) uploaded(c cid.Cid) {
	ss.svc.mu.Lock()
	i, n := ss.svc.leafLocked(ss.root, c)
	ss.svc.crowds[ss.root].uploaded(ss, i, n)
	ss.svc.mu.Unlock()
	ss.svc.countSent(c)
}

// superSeeded reports whether ss is still shown leaves a few at a time.
func (ss *serverStream) superSeeded() bool {
	ss.svc.mu.Lock()
	defer ss.svc.mu.Unlock()
	return ss.svc.crowds[ss.root].superSeeded(ss)
}

// haves drains the HAVEs queued for ss.
func haves(ss *serverStream) []int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var out []int
	for _, i := range ss.haves.take(nil, maxLeaves) {
		out = append(out, int(i))
	}
	return out
}

func TestSuperSeedShowsEachLeafToOneRemote(t *testing.T) {
	const n = 20
	f := newFakeSeed(t, n)
	a, alone := f.join()
	if alone != nil {
		t.Fatalf("a lone remote was shown only %v", alone)
	}
	a.uploaded(f.leaves[0]) // sent to it while it was alone
	seen := map[int]*serverStream{}
	mark := func(ss *serverStream, idx []int) {
		t.Helper()
		for _, i := range idx {
			if o := seen[i]; o != nil || i == 0 {
				t.Fatalf("leaf %d shown to two remotes before every leaf was shown once", i)
			}
			seen[i] = ss
		}
	}
	streams := []*serverStream{a}
	for range 2 {
		ss, shown := f.join()
		if len(shown) != revealAhead {
			t.Fatalf("a remote joining a crowd is shown %v, want %d leaves", shown, revealAhead)
		}
		mark(ss, shown)
		streams = append(streams, ss)
		if len(streams) == 2 {
			// The crowd formed: the remote that was alone is
			// super-seeded from now on, and shown a few leaves.
			got := haves(a)
			if !a.superSeeded() || len(got) != revealAhead {
				t.Fatalf("once a crowd formed, the first remote was shown %v (super-seeded: %v), want %d leaves", got, a.superSeeded(), revealAhead)
			}
			mark(a, got)
		}
	}
	// want has ss ask for a leaf it was shown.
	want := func(ss *serverStream) {
		for i, o := range seen {
			if o == ss {
				ss.wanted(f.leaves[i])
				return
			}
		}
	}
	// A WANT for a leaf shown to another remote shows nothing.
	for i, o := range seen {
		if o == streams[1] {
			a.wanted(f.leaves[i])
			break
		}
	}
	if got := haves(a); len(got) != 0 {
		t.Fatalf("a WANT for a leaf kept for another remote showed %v", got)
	}
	// Each WANT shows its remote one more leaf nobody has seen, until all
	// but the one already sent were shown.
	for k := 0; len(seen) < n-1; k++ {
		ss := streams[k%3]
		want(ss)
		got := haves(ss)
		if len(got) != 1 {
			t.Fatalf("a WANT showed %d leaves, want 1", len(got))
		}
		mark(ss, got)
	}
	// A remote is sent the leaves it was shown, not those kept for others
	// or already in the crowd (it is told DONT_HAVE).
	for i, c := range f.leaves {
		if want := seen[i] == a; a.serves(c) != want {
			t.Fatalf("leaf %d: served to the first remote: %v, want %v", i, !want, want)
		}
	}
	a, b, c := streams[0], streams[1], streams[2]
	want(a)
	if got := haves(a); len(got) != 0 {
		t.Fatalf("a WANT after every leaf was shown showed %v", got)
	}
	shownTo := func(ss *serverStream) map[int]bool {
		m := map[int]bool{}
		for i, o := range seen {
			m[i] = o == ss
		}
		return m
	}
	shown := map[*serverStream]map[int]bool{a: shownTo(a), b: shownTo(b), c: shownTo(c)}
	// showsRest checks that ss, no longer super-seeded, got HAVEs for
	// exactly the leaves it had not been shown.
	showsRest := func(ss *serverStream, when string) {
		t.Helper()
		if ss.superSeeded() {
			t.Fatalf("%s, a remote is still super-seeded", when)
		}
		got := haves(ss)
		for i := range n {
			if shown[ss][i] == slices.Contains(got, i) {
				t.Fatalf("%s, leaf %d shown to it: %v, in its HAVEs: %v", when, i, shown[ss][i], slices.Contains(got, i))
			}
		}
	}
	// An idle remote, while another is being served, is shown nothing
	// more; what it was shown and nobody was sent goes to the others.
	now := time.Now()
	b.busyAt.Store(now.UnixNano())
	x := slices.IndexFunc(f.leaves, func(c cid.Cid) bool { return seen[slices.Index(f.leaves, c)] == a })
	a.uploaded(f.leaves[x]) // one of a's leaves was sent to it already
	a.idle(now)
	if got := haves(a); len(got) != 0 || !a.superSeeded() {
		t.Fatalf("an idle remote was shown %v (super-seeded: %v) while another was served", got, a.superSeeded())
	}
	if a.feed(); len(haves(a)) != 0 {
		t.Fatal("a remote that stalled was fed more leaves")
	}
	reveal(c, n)
	var back []int
	for i := range n {
		if seen[i] == a && i != x {
			back = append(back, i)
		}
	}
	if a.serves(f.leaves[back[0]]) {
		t.Fatal("an idle remote is still sent a leaf it was shown and did not ask for")
	}
	got := haves(c)
	slices.Sort(got)
	if !slices.Equal(got, back) {
		t.Fatalf("after a remote idled, another was shown %v, want its unsent leaves %v", got, back)
	}
	for _, i := range got {
		shown[c][i], shown[a][i] = true, false
	}
	// Once nobody else is served either, an idle remote is shown
	// everything.
	a.idle(now.Add(2 * revealIdle))
	showsRest(a, "after idling alone")
	// Once every leaf was uploaded, the others are still shown nothing
	// more (the crowd has every leaf), until they idle while nobody else
	// is being served; a new remote sees everything.
	var rest []cid.Cid // the leaves not uploaded yet
	for i, c := range f.leaves {
		if i != 0 && i != x {
			rest = append(rest, c)
		}
	}
	for _, leaf := range rest {
		b.uploaded(leaf)
	}
	if got := append(haves(b), haves(c)...); len(got) != 0 || !b.superSeeded() || !c.superSeeded() {
		t.Fatalf("once every leaf was uploaded, HAVEs %v went out at once (super-seeded: %v, %v)", got, b.superSeeded(), c.superSeeded())
	}
	if _, shown := f.join(); shown != nil {
		t.Fatalf("a remote joining once every leaf was uploaded was shown only %v", shown)
	}
	later := now.Add(4 * revealIdle) // b was served last at now
	b.idle(later)
	showsRest(b, "idling once every leaf was uploaded")
	// b is served what it asks for from now on: c waits its turn, but
	// only maxIdleWaits idles (b could be keeping this node busy while
	// withholding leaves only it was sent).
	for k := 1; k < maxIdleWaits; k++ {
		at := later.Add(time.Duration(k) * revealIdle)
		b.busyAt.Store(at.UnixNano())
		c.idle(at)
		if got := haves(c); len(got) != 0 || !c.superSeeded() {
			t.Fatalf("idle %d: a remote was shown %v while another was served", k, got)
		}
	}
	at := later.Add(maxIdleWaits * revealIdle)
	b.busyAt.Store(at.UnixNano())
	c.idle(at)
	showsRest(c, fmt.Sprintf("idling %d times while another was served, once every leaf was uploaded", maxIdleWaits))
	if got := haves(a); len(got) != 0 {
		t.Fatalf("a remote already shown everything got HAVEs %v", got)
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, hm := rawRemote(ctx, t, s, root); hm.Type != MsgHaveMap {
		t.Fatalf("watcher: %v", hm)
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

// rawRemote opens a stream to s from a host of its own, says HELLO for
// root and returns the stream's writer and reader with the first message
// read (the have-map); the stream is reset when the test ends.
func rawRemote(ctx context.Context, t *testing.T, s *node, root cid.Cid) (*bufio.Writer, *bufio.Reader, *Msg) {
	t.Helper()
	w := peertest.NewHost(t)
	w.Peerstore().AddAddrs(s.h.ID(), s.h.Addrs(), time.Hour)
	st, err := w.NewStream(ctx, s.h.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Reset() })
	bw := bufio.NewWriter(st)
	if _, err := writeMsg(bw, &Msg{Type: MsgHello, Root: root}, nil); err != nil || bw.Flush() != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(st)
	m, err := ReadMsg(br, br)
	if err != nil {
		t.Fatalf("first message from the seed: %v", err)
	}
	return bw, br, m
}

// TestSuperSeedFeeds: a remote with nothing left to ask for is shown new
// leaves while there are, then half of those another remote was shown and
// has not asked for.
func TestSuperSeedFeeds(t *testing.T) {
	const n = 12
	f := newFakeSeed(t, n)
	a, _ := f.join()
	b, shownB := f.join()
	shownA := haves(a)
	if len(shownA) != revealAhead || len(shownB) != revealAhead {
		t.Fatalf("shown %v and %v, want %d each", shownA, shownB, revealAhead)
	}
	b.feed()
	if got := haves(b); len(got) != 0 {
		t.Fatalf("a remote with leaves to ask for was fed %v", got)
	}
	for _, i := range shownB {
		b.uploaded(f.leaves[i])
	}
	// A WANT to be refused is answered before a block is sent.
	kept := slices.IndexFunc(f.leaves, func(c cid.Cid) bool { return !b.serves(c) })
	pooled := slices.IndexFunc(f.leaves, func(c cid.Cid) bool {
		i := slices.Index(f.leaves, c)
		return !slices.Contains(shownA, i) && !slices.Contains(shownB, i)
	})
	b.mu.Lock()
	b.wants.add(&Msg{Type: MsgWant, ID: 1, CID: f.leaves[pooled]}) // older, never sent either
	b.wants.add(&Msg{Type: MsgWant, ID: 2, CID: f.leaves[kept]})
	b.mu.Unlock()
	if m := b.next(); m == nil || m.ID != 2 {
		t.Fatalf("served %v first, want the WANT to be refused", m)
	}
	b.mu.Lock()
	b.wants = wantQueue{}
	b.mu.Unlock()
	b.feed()
	fresh := haves(b)
	if len(fresh) != revealAhead || slices.ContainsFunc(fresh, func(i int) bool { return slices.Contains(shownA, i) || slices.Contains(shownB, i) }) {
		t.Fatalf("a remote with nothing to ask for was fed %v, want %d leaves nobody was shown", fresh, revealAhead)
	}
	for _, i := range fresh {
		b.uploaded(f.leaves[i])
	}
	// Every leaf was shown: b takes half of those a was shown and not sent
	// (asked for or not: a is told DONT_HAVE), while a has 2 or more.
	var stolen []int
	for _, want := range []int{2, 1, 0} {
		b.feed()
		got := haves(b)
		if len(got) != want || slices.ContainsFunc(got, func(i int) bool { return !slices.Contains(shownA, i) || slices.Contains(stolen, i) }) {
			t.Fatalf("a remote with nothing to ask for took %v of %v (taken before: %v), want %d", got, shownA, stolen, want)
		}
		stolen = append(stolen, got...)
		for _, i := range shownA {
			if a.serves(f.leaves[i]) == slices.Contains(stolen, i) || b.serves(f.leaves[i]) != slices.Contains(stolen, i) {
				t.Fatalf("leaf %d: served to its first remote: %v, to the one that took it: %v", i, a.serves(f.leaves[i]), b.serves(f.leaves[i]))
			}
		}
		for _, i := range got {
			b.uploaded(f.leaves[i])
		}
	}
	// a goes away: what it was shown and nobody was sent goes to b.
	var left []int
	for _, i := range shownA {
		if !slices.Contains(stolen, i) {
			left = append(left, i)
		}
	}
	f.svc.mu.Lock()
	f.svc.crowds[f.root].leave(a)
	f.svc.mu.Unlock()
	b.feed()
	got := haves(b)
	slices.Sort(got)
	slices.Sort(left)
	if !slices.Equal(got, left) {
		t.Fatalf("after a remote left, another was fed %v, want the leaves it left %v", got, left)
	}
}

// TestCrowdMethods: the crowd's pure methods, with no Service. A lone
// remote is shown everything; a second one starts super-seeding for both,
// shown disjoint leaves; a remote leaving hands its unsent leaves to the
// other (woken to be fed them); once every leaf was uploaded, a remote
// is fed nothing more and is shown the rest only when it idles.
func TestCrowdMethods(t *testing.T) {
	const n = 16
	cr := newCrowd()
	a, b := new(serverStream), new(serverStream)
	cr.join(a)
	if bits, out := cr.start(a, n); bits != nil || out != nil || cr.superSeeded(a) {
		t.Fatalf("a lone remote was super-seeded: %v %v", bits, out)
	}
	cr.join(b)
	bits, out := cr.start(b, n)
	shownA := out[a]
	shownB := slices.Collect(bits.all())
	if len(shownA) != revealAhead || len(shownB) != revealAhead || !cr.superSeeded(a) || !cr.superSeeded(b) {
		t.Fatalf("once a crowd formed: a shown %v, b shown %v, want %d each", shownA, shownB, revealAhead)
	}
	for _, i := range shownA {
		if slices.Contains(shownB, int(i)) {
			t.Fatalf("leaf %d shown to both remotes", i)
		}
		if cr.serves(b, int(i)) {
			t.Fatalf("b may be sent leaf %d, shown to a", i)
		}
	}
	if !cr.serves(b, -1) {
		t.Fatal("a block that is not a leaf is refused")
	}
	// a leaves: b is woken and fed a's leaves once it has nothing to ask for.
	if wake := cr.leave(a); !slices.Equal(wake, []*serverStream{b}) {
		t.Fatalf("leave woke %v, want b", wake)
	}
	for _, i := range shownB {
		cr.uploaded(b, i, n)
	}
	var got []int
	for len(got)+len(shownB) < n {
		fed := cr.feed(b)
		if len(fed) == 0 {
			t.Fatalf("b, with nothing to ask for, was fed nothing (sent so far: %v)", got)
		}
		for _, i := range fed {
			got = append(got, int(i))
			cr.uploaded(b, int(i), n)
		}
	}
	if fed := cr.feed(b); len(fed) != 0 || !cr.superSeeded(b) || len(got)+len(shownB) != n {
		t.Fatalf("b was sent %d + %d of %d leaves, then fed %v (super-seeded: %v)", len(shownB), len(got), n, fed, cr.superSeeded(b))
	}
	if haves, _ := cr.idle(b, false); len(haves) != 0 || cr.superSeeded(b) {
		t.Fatalf("b idling alone once every leaf was uploaded was shown %v (super-seeded: %v), want nothing new: it has every leaf", haves, cr.superSeeded(b))
	}
	for _, i := range shownA {
		if !slices.Contains(got, int(i)) {
			t.Fatalf("leaf %d, shown to a that left, never reached b", i)
		}
	}
}

// TestSuperSeedWithholderCannotStallTheCrowd: a remote that takes the
// leaves it is shown, serves nobody and keeps asking for them again (so
// the seed is always busy serving it) does not stop an honest downloader
// from getting the leaves only it was sent: once every leaf was uploaded,
// the downloader is shown everything after maxIdleWaits idles.
func TestSuperSeedWithholderCannotStallTheCrowd(t *testing.T) {
	const n, size = 16, 64 << 10
	root, leaves, blocks := content(t, n, size)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The withholder: a raw stream that says HELLO and asks, again and
	// again, for the leaves it was shown.
	bw, br, hm := rawRemote(ctx, t, s, root)
	if hm.Type != MsgHaveMap {
		t.Fatalf("withholder's have-map: %v", hm)
	}
	// Alone, it is shown everything; it takes one leaf, so that it is
	// super-seeded (shown a few) once the downloader joins.
	done := make(chan struct{})
	defer close(done)
	go func() {
		var id uint64
		shown := []int{0}
		for {
			for _, i := range shown {
				id++
				if _, err := writeMsg(bw, &Msg{Type: MsgWant, ID: id, CID: leaves[i]}, nil); err != nil || bw.Flush() != nil {
					return
				}
			}
			for range shown {
				m, err := ReadMsg(br, br)
				for err == nil && m.Type == MsgHave {
					shown = append(shown, int(m.Index))
					m, err = ReadMsg(br, br)
				}
				if err != nil {
					return
				}
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	d := newNode(t)
	d.st.mu.Lock()
	d.st.roots[root] = leaves
	d.st.mu.Unlock()
	sess := d.svc.NewSession(root, listProviders{peertest.Info(s.h)})
	defer sess.Close()
	start := time.Now()
	if err := sess.Download(ctx, leaves); err != nil {
		t.Fatalf("the downloader beside a withholder: %v after %v", err, time.Since(start))
	}
	checkAll(t, d, blocks)
	t.Logf("downloaded beside a withholder in %v", time.Since(start))
}
