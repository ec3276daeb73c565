package transfer

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// TestWantQueueBoundedUnderFlood: WANT/CANCEL pairs leave nothing behind
// however many arrive while the writer serves nothing, WANTs past the
// limit are a violation, and HAVEs announced again and again take one
// bit each.
func TestWantQueueBoundedUnderFlood(t *testing.T) {
	f := newFakeSeed(t, 64)
	ss, _ := f.join()
	for id := uint64(1); id <= 100_000; id++ {
		c := f.leaves[id%64]
		if !ss.handleMsg(&Msg{Type: MsgWant, ID: id, CID: c}) || !ss.handleMsg(&Msg{Type: MsgCancel, ID: id}) {
			t.Fatalf("pair %d refused", id)
		}
		ss.sendHaves([]uint64{id % 64, 1 << 40})
		if n := ss.wants.len(); n != 0 || len(ss.wants.order) != 0 || len(ss.wants.byID) != 0 {
			t.Fatalf("after %d WANT/CANCEL pairs %d WANTs are held, want 0", id, n)
		}
	}
	if len(ss.haves.bits) > 8 {
		t.Fatalf("pending HAVEs take %d bytes for 64 leaves", len(ss.haves.bits))
	}
	for id := uint64(1); id <= maxQueuedPerRemote; id++ {
		if !ss.handleMsg(&Msg{Type: MsgWant, ID: id, CID: f.leaves[0]}) {
			t.Fatalf("WANT %d of %d refused", id, maxQueuedPerRemote)
		}
	}
	if !ss.handleMsg(&Msg{Type: MsgWant, ID: 1, CID: f.leaves[0]}) || ss.wants.len() != maxQueuedPerRemote {
		t.Fatal("a repeated request ID was not ignored")
	}
	if ss.handleMsg(&Msg{Type: MsgWant, ID: maxQueuedPerRemote + 1, CID: f.leaves[0]}) {
		t.Fatalf("WANT %d was accepted, want a violation", maxQueuedPerRemote+1)
	}
}

// TestFloodWithoutReading: a remote on a real stream sends WANT/CANCEL
// pairs and never reads, so the server's writer is stuck; the server's
// queue stays bounded.
func TestFloodWithoutReading(t *testing.T) {
	root, leaves, blocks := content(t, 16, 256<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	cli := peertest.NewHost(t)
	peertest.Connect(t, cli, s.h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := cli.NewStream(ctx, s.h.ID(), ID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	bw := bufio.NewWriter(st)
	writeMsg(bw, &Msg{Type: MsgHello, Root: root}, nil)
	const pairs = 50_000
	for id := uint64(1); id <= pairs; id++ {
		writeMsg(bw, &Msg{Type: MsgWant, ID: id, CID: leaves[id%16]}, nil)
		writeMsg(bw, &Msg{Type: MsgCancel, ID: id}, nil)
	}
	marker := uint64(pairs + 1)
	writeMsg(bw, &Msg{Type: MsgWant, ID: marker, CID: leaves[0]}, nil)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	// Wait for the server to have read everything: the marker is queued.
	for {
		var held, pending int
		found := false
		s.svc.mu.Lock()
		for ss := range s.svc.crowds[root].remotes {
			ss.mu.Lock()
			_, found = ss.wants.byID[marker]
			held, pending = len(ss.wants.order), len(ss.haves.bits)
			ss.mu.Unlock()
		}
		s.svc.mu.Unlock()
		if held > maxQueuedPerRemote || pending > 2 {
			t.Fatalf("the server holds %d WANTs and %d bytes of HAVEs for a remote that never reads", held, pending)
		}
		if found {
			t.Logf("after %d WANT/CANCEL pairs the server holds %d WANTs", pairs, held)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the server never read the whole flood")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// failingStore is a memStore whose Put fails as a full disk does.
type failingStore struct{ *memStore }

func (failingStore) Put(_ context.Context, c cid.Cid, _ []byte) error {
	return &fs.PathError{Op: "write", Path: "/repo/blocks/" + c.String(), Err: syscall.ENOSPC}
}

// TestPutErrorEndsDownload: a block the store cannot keep ends the
// download at once with the store's error, and the peer is not blamed.
func TestPutErrorEndsDownload(t *testing.T) {
	root, leaves, blocks := content(t, 20, 8<<10)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	h := peertest.NewHost(t)
	st := failingStore{newMemStore()}
	svc := New(h, st, st)
	t.Cleanup(func() { svc.Close() })
	sess := svc.NewSession(root, listProviders{peertest.Info(s.h)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := sess.Download(ctx, leaves)
	if !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), "storing block ") {
		t.Fatalf("Download = %v, want storing block ...: no space left on device", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the Put error ended the download only after %v", took)
	}
	banned := sess.peers.isBanned(s.h.ID())
	if banned || sess.Stats()[s.h.ID()].Bad {
		t.Fatal("the peer was blamed for our store's error")
	}
	if _, err := sess.Block(ctx, leaves[0]); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Block after the failure = %v, want the store's error", err)
	}
	t.Logf("Download: %v", err)
}
