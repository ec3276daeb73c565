package transfer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/peer/peertest"
	"github.com/p2pshare/p2pshare/transfer"
	"github.com/p2pshare/p2pshare/transfer/transfertest"
)

// randomRoot stores n random leaves of size bytes in st under a made-up
// root and returns the root and the leaves.
func randomRoot(st *transfertest.Store, n, size int) (cid.Cid, []cid.Cid) {
	var leaves []cid.Cid
	for range n {
		b := make([]byte, size)
		rand.Read(b)
		leaves = append(leaves, st.Add(cid.Raw, b))
	}
	root := transfertest.Sum(cid.DagProtobuf, mh.SHA2_256, -1, []byte(leaves[0].String()))
	st.SetLeaves(root, leaves)
	return root, leaves
}

// copyRoot gives dst the root's leaf list and those of src's blocks that
// keep selects.
func copyRoot(dst, src *transfertest.Store, root cid.Cid, leaves []cid.Cid, keep func(int) bool) {
	dst.SetLeaves(root, leaves)
	for i, c := range leaves {
		if keep(i) {
			b, _ := src.Get(context.Background(), c)
			dst.Set(c, b)
		}
	}
}

// TestSilentPeerRequestsMoved: a peer that reads WANTs and never answers,
// keeping its stream open, holds its requests for under 3 s: each leaf it
// is asked for is asked of an honest peer within 3 s of reaching it, and
// the download completes.
func TestSilentPeerRequestsMoved(t *testing.T) {
	src := transfertest.NewStore()
	root, leaves := randomRoot(src, 48, 32<<10)
	silent := transfertest.NewHostile(t, nil, transfertest.Silent, 0)
	copyRoot(silent.Store, src, root, leaves, func(int) bool { return true })
	// A honest peer slow enough (60 ms a block) that the download lasts
	// past the moment the silent peer's requests must move.
	honest := transfertest.NewHostile(t, src, transfertest.Serve, 60*time.Millisecond)
	d := transfertest.NewSeed(t, nil) // the downloader
	st := d.Store
	sess := d.Service.NewSession(root, transfertest.Providers{peertest.Info(silent.Host), peertest.Info(honest.Host)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := sess.Download(ctx, leaves); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, c := range leaves {
		if ok, _ := st.Has(ctx, c); !ok {
			t.Fatalf("leaf %s missing after the download", c)
		}
	}
	asked := silent.Wants()
	if len(asked) == 0 {
		t.Fatal("the silent peer was never asked for anything: nothing tested")
	}
	firstHonest := map[cid.Cid]time.Time{}
	for _, w := range honest.Wants() {
		if _, ok := firstHonest[w.CID]; !ok {
			firstHonest[w.CID] = w.At
		}
	}
	var worst time.Duration
	for _, w := range asked {
		at, ok := firstHonest[w.CID]
		if !ok {
			t.Fatalf("leaf %s, asked of the silent peer, was never asked of the honest one", w.CID)
		}
		worst = max(worst, at.Sub(w.At))
	}
	t.Logf("silent peer asked for %d leaves; moved to the honest peer within %.2f s at worst; download took %.2f s", len(asked), worst.Seconds(), took.Seconds())
	if worst > 3*time.Second {
		t.Fatalf("a leaf asked of the silent peer waited %.2f s before it was asked of another, want under 3 s", worst.Seconds())
	}
	if st := sess.Stats()[silent.Host.ID()]; st.Bad || st.Blocks != 0 {
		t.Errorf("silent peer's stats %+v: want no blocks and no ban (silence is no violation)", st)
	}
}

// TestCorruptPeerBanned: a peer that sends a corrupt block is detected,
// banned and never sent a WANT again, even when the providers offer it
// again or it connects to the downloader itself; the download completes
// from an honest peer.
func TestCorruptPeerBanned(t *testing.T) {
	src := transfertest.NewStore()
	root, leaves := randomRoot(src, 40, 16<<10)
	bad := transfertest.NewHostile(t, nil, transfertest.Corrupt, 0)
	copyRoot(bad.Store, src, root, leaves, func(int) bool { return true })
	// Slow enough (160 KiB/s: 4 s) that discovery offers the bad peer
	// again while the download runs (every 2 s).
	good := transfertest.NewSeed(t, src, transfer.WithMaxUpload(160<<10))
	d := transfertest.NewSeed(t, nil) // the downloader
	st := d.Store
	sess := d.Service.NewSession(root, transfertest.Providers{peertest.Info(bad.Host), peertest.Info(good.Host)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sess.Download(ctx, leaves) }()

	badSent, firstBad := bad.FirstBad()
	select {
	case <-badSent:
	case err := <-done:
		t.Fatalf("download ended (%v) before the corrupt peer sent anything", err)
	}
	// The bad peer comes back on its own, as a downloader of the root.
	peertest.Connect(t, bad.Host, d.Host)
	c, err := transfertest.Open(ctx, bad.Host, d.Host.ID(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer c.S.Reset()
	if hm, err := c.Recv(); err != nil || hm.Type != transfer.MsgHaveMap {
		t.Fatalf("the downloader's server answered the returning peer %v, %v", hm, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, c := range leaves {
		got, _ := st.Get(ctx, c)
		want, _ := src.Get(ctx, c)
		if string(got) != string(want) {
			t.Fatalf("leaf %s wrong or missing after the download", c)
		}
	}
	stats := sess.Stats()[bad.Host.ID()]
	if !stats.Bad || stats.Blocks != 0 {
		t.Errorf("corrupt peer's stats %+v: want Bad and no block accepted", stats)
	}
	// Its first window (4 WANTs, sent before any reply) may reach it
	// after its first bad block has left; anything more was sent after
	// the session saw that block.
	var after int
	for _, w := range bad.Wants() {
		if w.At.After(firstBad()) {
			after++
		}
	}
	t.Logf("corrupt peer: %d WANTs in all, %d read after its first bad block", len(bad.Wants()), after)
	if n := len(bad.Wants()); n > 4 || bad.Streams() != 1 {
		t.Errorf("the corrupt peer got %d WANTs over %d streams from the downloader, want its first window (at most 4) over 1", n, bad.Streams())
	}
}

// ban is one PeerBanned call.
type ban struct {
	p      peer.ID
	root   cid.Cid
	why    transfer.BanReason
	detail error
}

// banLog is a transfer.Observer that records bans and ignores the rest.
type banLog struct {
	mu   sync.Mutex
	bans []ban
}

func (l *banLog) PeerBanned(p peer.ID, root cid.Cid, why transfer.BanReason, detail error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bans = append(l.bans, ban{p, root, why, detail})
}

func (l *banLog) all() []ban {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ban(nil), l.bans...)
}

func (*banLog) BlockServed(int)                      {}
func (*banLog) BlockReceived(int)                    {}
func (*banLog) VerifyFailed()                        {}
func (*banLog) Lookup()                              {}
func (*banLog) DownloadStarted()                     {}
func (*banLog) DownloadFinished(time.Duration, bool) {}

// TestBanReasons: a peer that sends a corrupt block, and one that sends a
// malformed message, are each banned once, reported with the reason and
// what they sent; the download completes from an honest peer.
func TestBanReasons(t *testing.T) {
	for _, c := range []struct {
		mode   transfertest.Mode
		why    transfer.BanReason
		detail error
	}{
		{transfertest.Corrupt, transfer.BanBadBlock, chunker.ErrHashMismatch},
		{transfertest.Malformed, transfer.BanMalformed, transfer.ErrProtocol},
	} {
		t.Run(c.why.String(), func(t *testing.T) {
			src := transfertest.NewStore()
			root, leaves := randomRoot(src, 20, 16<<10)
			bad := transfertest.NewHostile(t, nil, c.mode, 0)
			copyRoot(bad.Store, src, root, leaves, func(int) bool { return true })
			// Slow (160 KiB/s: 2 s), so the bad peer is asked too.
			good := transfertest.NewSeed(t, src, transfer.WithMaxUpload(160<<10))
			obs := &banLog{}
			d := transfertest.NewSeed(t, nil, transfer.WithObserver(obs))
			sess := d.Service.NewSession(root, transfertest.Providers{peertest.Info(bad.Host), peertest.Info(good.Host)})
			defer sess.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := sess.Download(ctx, leaves); err != nil {
				t.Fatal(err)
			}
			bans := obs.all()
			if len(bans) != 1 {
				t.Fatalf("bans %+v, want one", bans)
			}
			b := bans[0]
			t.Logf("banned: %s (%s)", b.why, b.detail)
			if b.p != bad.Host.ID() || !b.root.Equals(root) || b.why != c.why || !errors.Is(b.detail, c.detail) {
				t.Errorf("ban %+v, want %s banned from %s for %q with a detail wrapping %q", b, bad.Host.ID(), root, c.why, c.detail)
			}
		})
	}
}

// TestWeakCIDsRefused: a HELLO naming a root under a weak hash is refused
// (the stream reset), and a WANT naming one, or an absurd codec, is
// answered DONT_HAVE even if the store holds bytes under it; the server
// keeps serving.
func TestWeakCIDsRefused(t *testing.T) {
	st := transfertest.NewStore()
	root, leaves := randomRoot(st, 2, 1000)
	data := []byte("weak")
	weak := map[string]cid.Cid{
		"md5":               transfertest.Sum(cid.Raw, mh.MD5, -1, data),
		"sha1":              transfertest.Sum(cid.Raw, mh.SHA1, -1, data),
		"sha2-256 cut":      transfertest.Sum(cid.Raw, mh.SHA2_256, 20, data),
		"absurd codec":      transfertest.Sum(0x7fffffff, mh.SHA2_256, -1, data),
		"sha2-256 dag-cbor": transfertest.Sum(cid.DagCBOR, mh.SHA2_256, -1, data),
	}
	for _, c := range weak {
		st.Set(c, data)
	}
	seed := transfertest.NewSeed(t, st)
	cli := peertest.NewHost(t)
	peertest.Connect(t, cli, seed.Host)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for name, c := range weak {
		t.Run("HELLO "+name, func(t *testing.T) {
			st.SetLeaves(c, leaves)
			cl, err := transfertest.Open(ctx, cli, seed.Host.ID(), c)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.S.Reset()
			if m, err := cl.Recv(); err == nil {
				t.Fatalf("a HELLO for %s was answered %v, want the stream reset", c, m.Type)
			}
		})
	}
	cl, err := transfertest.Open(ctx, cli, seed.Host.ID(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.S.Reset()
	if m, err := cl.Recv(); err != nil || m.Type != transfer.MsgHaveMap {
		t.Fatalf("have-map: %v, %v", m, err)
	}
	id := uint64(0)
	for name, c := range weak {
		id++
		if err := cl.Send(&transfer.Msg{Type: transfer.MsgWant, ID: id, CID: c}); err != nil {
			t.Fatal(err)
		}
		if m, err := cl.Recv(); err != nil || m.Type != transfer.MsgDontHave || m.ID != id {
			t.Fatalf("WANT %s (%s): answered %+v, %v; want DONT_HAVE %d", name, c, m, err, id)
		}
	}
	if err := cl.Send(&transfer.Msg{Type: transfer.MsgWant, ID: 100, CID: leaves[0]}); err != nil {
		t.Fatal(err)
	}
	if m, err := cl.Recv(); err != nil || m.Type != transfer.MsgBlock || m.ID != 100 {
		t.Fatalf("after the weak WANTs, a good one was answered %+v, %v", m, err)
	}
}

// A block no peer holds is asked for again about once a second, not as
// fast as the peers answer DONT_HAVE (a get waiting for providers used to
// keep its CPU and the seed's busy that way).
func TestBlockNobodyHasIsNotAskedInALoop(t *testing.T) {
	hs := transfertest.NewHostile(t, nil, transfertest.Serve, 0)
	d := transfertest.NewSeed(t, nil) // the downloader
	missing := transfertest.Sum(cid.Raw, mh.SHA2_256, -1, []byte("nobody has this"))
	sess := d.Service.NewSession(missing, transfertest.Providers{peertest.Info(hs.Host)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if _, err := sess.Block(ctx, missing); err == nil {
		t.Fatal("Block returned a block nobody has")
	}
	if n := len(hs.Wants()); n == 0 || n > 4 {
		t.Fatalf("the peer was asked %d times in 2.5 s, want 1 to 4", n)
	}
}
