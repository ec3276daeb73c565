package transfer

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// greeter is a peer that reads HELLO and then the next message before it
// sends anything, then answers that WANT after an empty have-map: with a
// BLOCK of data, or a DONT_HAVE when data is nil; unless silent, when it
// sends nothing at all. A downloader that waited for the have-map before
// its first WANT would get nothing from it.
func greeter(t *testing.T, data []byte, silent bool) (host.Host, <-chan *Msg) {
	h := peertest.NewHost(t)
	wants := make(chan *Msg, 1)
	h.SetStreamHandler(ID, func(st network.Stream) {
		defer st.Reset()
		br := bufio.NewReader(st)
		if m, err := ReadMsg(br, br); err != nil || m.Type != MsgHello {
			return
		}
		want, err := ReadMsg(br, br)
		if err != nil || want.Type != MsgWant {
			return
		}
		wants <- want
		if silent {
			io.Copy(io.Discard, st)
			return
		}
		reply := &Msg{Type: MsgDontHave, ID: want.ID}
		if data != nil {
			reply = &Msg{Type: MsgBlock, ID: want.ID, Data: data}
		}
		bw := bufio.NewWriter(st)
		if _, err := writeMsg(bw, &Msg{Type: MsgHaveMap}, nil); err != nil {
			return
		}
		if _, err := writeMsg(bw, reply, nil); err != nil || bw.Flush() != nil {
			return
		}
		io.Copy(io.Discard, st) // until the session closes its stream
	})
	return h, wants
}

func rawBlock(t *testing.T, data []byte) cid.Cid {
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: mh.SHA2_256, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFirstBlockAskedWithHello: a session's first Block goes out with
// HELLO, a round trip before the have-map comes back.
func TestFirstBlockAskedWithHello(t *testing.T) {
	data := []byte("a file of one leaf, asked for with HELLO")
	root := rawBlock(t, data)
	g, wants := greeter(t, data, false)
	d := newNode(t)
	sess := d.svc.NewSession(root, listProviders{peertest.Info(g)})
	defer sess.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := sess.Block(ctx, root)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Block = %q, %v; want the block, asked for before the have-map", got, err)
	}
	if w := <-wants; !w.CID.Equals(root) {
		t.Errorf("the WANT sent with HELLO names %s, want the root %s", w.CID, root)
	}
	if ok, _ := d.st.Has(ctx, root); !ok {
		t.Error("the block was not stored")
	}
}

// gatedProviders names its peers only once open is closed.
type gatedProviders struct {
	open  <-chan struct{}
	peers []peer.AddrInfo
}

func (g gatedProviders) FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, len(g.peers))
	go func() {
		defer close(ch)
		select {
		case <-g.open:
		case <-ctx.Done():
			return
		}
		for _, ai := range g.peers {
			ch <- ai
		}
	}()
	return ch
}

// TestFirstBlockNotHadAskedElsewhere: a peer that says DONT_HAVE to the
// WANT sent with HELLO costs Block nothing but the answer: it asks the
// peers found later.
func TestFirstBlockNotHadAskedElsewhere(t *testing.T) {
	firstBlockAfterGreeter(t, false)
}

// TestFirstBlockNotHeldUpBySilentPeer: a peer that takes HELLO and the
// WANT with it and then says nothing (no have-map) does not hold Block
// up: a peer that joins meanwhile is asked at once, not after the dial's
// or the request's 10 s.
func TestFirstBlockNotHeldUpBySilentPeer(t *testing.T) {
	if took := firstBlockAfterGreeter(t, true); took > 3*time.Second {
		t.Fatalf("Block took %v behind a silent peer, want well under the 10 s it may wait on one", took)
	}
}

// firstBlockAfterGreeter: Block's first request goes to a greeter (see
// greeter) that does not serve it; a seed found only after the greeter
// has read that request serves the block. It returns how long Block took.
func firstBlockAfterGreeter(t *testing.T, silent bool) time.Duration {
	root, leaves, blocks := content(t, 2, 1000)
	s := newNode(t)
	s.seedWith(root, leaves, blocks, all)
	g, wants := greeter(t, nil, silent)
	d := newNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The greeter is connected, so it is asked at once; the seed is found
	// only after the greeter has read the opening WANT.
	if err := d.h.Connect(ctx, peertest.Info(g)); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	sess := d.svc.NewSession(root, gatedProviders{opened, []peer.AddrInfo{peertest.Info(s.h)}})
	defer sess.Close()
	go func() {
		select {
		case <-wants:
			close(opened)
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	got, err := sess.Block(ctx, leaves[1])
	took := time.Since(start)
	if err != nil || !bytes.Equal(got, blocks[leaves[1]]) {
		t.Fatalf("Block = %d bytes, %v; want leaf 1 from the seed after the greeter (silent: %v)", len(got), err, silent)
	}
	select {
	case <-opened:
	default:
		t.Fatal("the greeter never read a WANT with its HELLO: nothing tested")
	}
	return took
}
